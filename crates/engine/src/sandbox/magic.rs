//! Recipient numbers that fail in documented ways.

use wagate_core::Phone;

/// Test numbers for one-time passwords: numbers ending in these digits always receive the code
/// `1234567890` cut to the requested length, so integrators can test without reading an inbox.
pub const FIXED_CODE_SUFFIX: &str = "1234";

/// The fixed code of a test number, if `phone` is one.
pub fn fixed_test_code(phone: &Phone, length: usize) -> Option<String> {
    let length = length.min(10);
    phone.digits().ends_with(FIXED_CODE_SUFFIX).then(|| "1234567890"[..length].to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MagicNumber {
    NotOnWhatsApp,
    ReachOutRestricted,
    SendFailure,
    SlowDelivery,
}

impl MagicNumber {
    pub fn of(phone: &Phone) -> Option<MagicNumber> {
        let digits = phone.digits();
        [
            ("0000", MagicNumber::NotOnWhatsApp),
            ("0463", MagicNumber::ReachOutRestricted),
            ("0500", MagicNumber::SendFailure),
            ("0999", MagicNumber::SlowDelivery),
        ]
        .into_iter()
        .find(|(suffix, _)| digits.ends_with(suffix))
        .map(|(_, magic)| magic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_numbers_have_fixed_codes() {
        let phone = |raw| Phone::parse(raw, None).unwrap();
        assert_eq!(fixed_test_code(&phone("+6281200001234"), 6).as_deref(), Some("123456"));
        assert_eq!(fixed_test_code(&phone("+6281200001234"), 4).as_deref(), Some("1234"));
        assert_eq!(fixed_test_code(&phone("+6281200005678"), 6), None);
    }
}
