//! Phone numbers as users type them: whatever the text, parsing answers (never panics), and a
//! number it accepts is E.164 that reads back as itself, however it was spaced or punctuated.

use proptest::prelude::*;
use wagate_core::Phone;

fn is_e164(text: &str) -> bool {
    text.len() >= 8
        && text.len() <= 16
        && text.starts_with('+')
        && text[1..].bytes().all(|b| b.is_ascii_digit())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_read_or_refused(raw in "\\PC{0,40}", region in prop::option::of("[A-Za-z]{0,3}")) {
        if let Ok(phone) = Phone::parse(&raw, region.as_deref()) {
            prop_assert!(is_e164(phone.e164()), "{raw:?} gave {}", phone.e164());
        }
    }

    #[test]
    fn digit_strings_that_are_numbers_read_back_as_themselves(digits in "[0-9+ ()\\-.]{1,24}") {
        if let Ok(phone) = Phone::parse(&digits, Some("ID")) {
            prop_assert!(is_e164(phone.e164()));
            prop_assert_eq!(Phone::parse(phone.e164(), None).unwrap(), phone.clone());
            prop_assert_eq!(Phone::parse(&phone.e164()[1..], None).unwrap(), phone);
        }
    }

    /// Spaces, dashes, dots and brackets between the digits of a valid number change nothing.
    #[test]
    fn punctuation_between_digits_changes_nothing(
        subscriber in 10_000_000u64..99_999_999,
        separators in prop::collection::vec(prop::sample::select(vec!["", " ", "-", ".", "(", ")"]), 13),
    ) {
        let plain = format!("+62812{subscriber}");
        let expected = Phone::parse(&plain, None).unwrap();
        let mut typed = String::new();
        for (n, c) in plain.chars().enumerate() {
            typed.push(c);
            if n > 0 {
                typed.push_str(separators.get(n - 1).copied().unwrap_or(""));
            }
        }
        prop_assert_eq!(Phone::parse(&typed, None).unwrap(), expected.clone());
        let national = format!("0812{subscriber}");
        prop_assert_eq!(Phone::parse(&national, Some("ID")).unwrap(), expected);
    }
}
