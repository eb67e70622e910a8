//! Phone numbers, always held in E.164 form.

use std::collections::HashMap;
use std::fmt;
use std::sync::{LazyLock, Mutex};

use phonenumber::country::Id as Region;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhoneError {
    #[error("`{0}` is not a phone number")]
    Unparseable(String),
    #[error("`{0}` is not a valid phone number")]
    Invalid(String),
    #[error("`{0}` is not a known region code (expected ISO 3166 alpha-2, e.g. ID or US)")]
    UnknownRegion(String),
}

/// A valid phone number in E.164 form (`+6281234567890`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses `+62 812-3456-7890`, `6281234567890`, `(0812) 3456 7890` (with a default region)…
    ///
    /// Digits without `+` are first read as international (country code first, which is how
    /// WhatsApp users write numbers); if that is not a valid number and a default region is
    /// given, they are read as a national number of that region.
    pub fn parse(raw: &str, default_region: Option<&str>) -> Result<Self, PhoneError> {
        let cleaned: String = crate::address::strip_user_suffix(raw.trim())
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        let region = default_region.map(parse_region).transpose()?;
        let digits_only = !cleaned.is_empty() && cleaned.bytes().all(|b| b.is_ascii_digit());
        if cleaned.len() > 20 || !(digits_only || cleaned.starts_with('+')) {
            return Err(PhoneError::Unparseable(raw.to_owned()));
        }
        let key = (cleaned, default_region.map(str::to_ascii_uppercase));
        if let Some(phone) = recently_parsed().get(&key) {
            return Ok(phone.clone());
        }
        let phone = Self::parse_cleaned(raw, &key.0, region, digits_only)?;
        let mut recent = recently_parsed();
        if recent.len() >= RECENT_NUMBERS {
            recent.clear();
        }
        recent.insert(key, phone.clone());
        Ok(phone)
    }

    /// The costly part of [`Phone::parse`]: checking the number against its country's plan.
    fn parse_cleaned(
        raw: &str,
        cleaned: &str,
        region: Option<Region>,
        digits_only: bool,
    ) -> Result<Self, PhoneError> {
        let candidates: Vec<(Option<Region>, String)> = if digits_only {
            let mut c = Vec::new();
            if !cleaned.starts_with('0') {
                c.push((None, format!("+{cleaned}")));
            }
            if region.is_some() {
                c.push((region, cleaned.to_owned()));
            }
            c
        } else {
            vec![(None, cleaned.to_owned())]
        };
        let mut parsed_any = false;
        for (region, text) in candidates {
            if let Ok(number) = phonenumber::parse(region, &text) {
                parsed_any = true;
                if phonenumber::is_valid(&number) {
                    // What the E.164 formatter writes, without the national formatting rules it
                    // looks up (and does not use) first.
                    return Ok(Phone(format!("+{}{}", number.country().code(), number.national())));
                }
            }
        }
        if parsed_any {
            Err(PhoneError::Invalid(raw.to_owned()))
        } else {
            Err(PhoneError::Unparseable(raw.to_owned()))
        }
    }

    /// A number this program stored after [`Phone::parse`] accepted it: checks the E.164 form
    /// only (`+`, then 7 to 15 digits, the first not 0), not the numbering plan, which is
    /// costly to check again.
    pub fn from_stored(e164: &str) -> Option<Self> {
        let digits = e164.strip_prefix('+')?;
        let well_formed = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        well_formed.then(|| Phone(e164.to_owned()))
    }

    /// `+6281234567890`
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// `6281234567890`: the user part of a WhatsApp JID.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// `6281234567890@s.whatsapp.net`
    pub fn jid(&self) -> String {
        crate::address::user_jid(self.digits())
    }

    fn parsed(&self) -> phonenumber::PhoneNumber {
        phonenumber::parse(None, &self.0).expect("a Phone holds a valid E.164 number")
    }

    /// The ISO 3166 region of the number (`ID`), when it belongs to one.
    pub fn region(&self) -> Option<String> {
        self.parsed().country().id().map(|id| id.as_ref().to_owned())
    }

    /// As written inside its country (`0812-3456-7890`).
    pub fn national(&self) -> String {
        self.parsed().format().mode(phonenumber::Mode::National).to_string()
    }

    /// As written for other countries (`+62 812-3456-7890`).
    pub fn international(&self) -> String {
        self.parsed().format().mode(phonenumber::Mode::International).to_string()
    }
}

impl serde::Serialize for Phone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// How many accepted numbers [`Phone::parse`] remembers (all are forgotten when it is full).
/// A number usually comes back within minutes: a code is sent to it, then checked.
const RECENT_NUMBERS: usize = 16_384;

type RecentNumbers = HashMap<(String, Option<String>), Phone>;

fn recently_parsed() -> std::sync::MutexGuard<'static, RecentNumbers> {
    static RECENT: LazyLock<Mutex<RecentNumbers>> = LazyLock::new(Mutex::default);
    RECENT.lock().unwrap_or_else(|p| p.into_inner())
}

fn parse_region(code: &str) -> Result<Region, PhoneError> {
    code.to_ascii_uppercase().parse().map_err(|_| PhoneError::UnknownRegion(code.to_owned()))
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_formats_users_write() {
        let expect = "+6281234567890";
        for raw in ["+6281234567890", "6281234567890", "+62 812-3456-7890", "6281234567890@s.whatsapp.net"] {
            assert_eq!(Phone::parse(raw, None).unwrap().e164(), expect, "{raw}");
        }
        assert_eq!(Phone::parse("081234567890", Some("ID")).unwrap().e164(), expect);
        assert_eq!(Phone::parse("(0812) 3456 7890", Some("id")).unwrap().e164(), expect);
        // Italian numbers keep the leading zero of their national number.
        assert_eq!(Phone::parse("06 6982 1234", Some("IT")).unwrap().e164(), "+390669821234");
        assert_eq!(Phone::parse("+44 20 7946 0958", None).unwrap().e164(), "+442079460958");
    }

    #[test]
    fn a_number_parsed_again_is_remembered_per_region() {
        for _ in 0..2 {
            assert_eq!(Phone::parse("08123456789", Some("ID")).unwrap().e164(), "+628123456789");
            assert_eq!(Phone::parse("2025550123", Some("us")).unwrap().e164(), "+12025550123");
            assert_eq!(Phone::parse("0812", Some("ID")), Err(PhoneError::Invalid("0812".into())));
        }
    }

    #[test]
    fn derived_forms() {
        let phone = Phone::parse("+14155552671", None).unwrap();
        assert_eq!(phone.digits(), "14155552671");
        assert_eq!(phone.jid(), "14155552671@s.whatsapp.net");
        assert_eq!(phone.region().as_deref(), Some("US"));
        let id = Phone::parse("+6281234567890", None).unwrap();
        assert_eq!(id.region().as_deref(), Some("ID"));
        assert!(id.national().starts_with('0'), "{}", id.national());
        assert!(id.international().starts_with("+62 "), "{}", id.international());
    }

    #[test]
    fn stored_numbers_are_checked_for_form_only() {
        assert_eq!(
            Phone::from_stored("+6281234567890").unwrap(),
            Phone::parse("+6281234567890", None).unwrap()
        );
        for bad in
            ["6281234567890", "+0812345678", "+12345", "+1234567890123456", "+62812x4567890", "120363@g.us"]
        {
            assert_eq!(Phone::from_stored(bad), None, "{bad}");
        }
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(matches!(Phone::parse("hello", None), Err(PhoneError::Unparseable(_))));
        assert!(matches!(Phone::parse("", None), Err(PhoneError::Unparseable(_))));
        assert!(matches!(
            Phone::parse("+999123", None),
            Err(PhoneError::Invalid(_) | PhoneError::Unparseable(_))
        ));
        assert!(Phone::parse("0812345678", None).is_err(), "national number without a region");
        assert!(matches!(Phone::parse("0812", Some("XX")), Err(PhoneError::UnknownRegion(_))));
        assert!(Phone::parse(&"1".repeat(40), None).is_err());
    }
}
