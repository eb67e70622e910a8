//! One-time passwords: codes, their keyed hashes, verification statuses and modes.
//!
//! A code is drawn from the operating system's random generator, shown to its recipient once,
//! and kept only as `HMAC-SHA256(pepper, verification id ‖ code)`. [`OtpCode`] never prints
//! its digits through `Debug`, so a stray `{:?}` cannot leak one into a log.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::{Rng, TryRngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const MIN_LENGTH: usize = 4;
pub const MAX_LENGTH: usize = 10;
pub const DEFAULT_LENGTH: usize = 6;

/// Marks a message body that is stored encrypted because it carries a code.
pub const SEALED_PREFIX: &str = "wagate:sealed:v1:";

/// Whether a stored message body is a sealed one-time-password message.
pub fn is_sealed(body: &str) -> bool {
    body.starts_with(SEALED_PREFIX)
}

/// A one-time password: 4 to 10 decimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("the code must contain only digits")]
    NotDigits,
    #[error("the code must have {MIN_LENGTH} to {MAX_LENGTH} digits")]
    Length,
}

impl OtpCode {
    /// A fresh code of `length` uniformly random digits from the OS generator.
    ///
    /// # Panics
    /// When `length` is outside 4..=10 (callers validate it first) or the OS generator fails.
    pub fn generate(length: usize) -> OtpCode {
        assert!((MIN_LENGTH..=MAX_LENGTH).contains(&length), "code length {length} out of range");
        let mut rng = OsRng.unwrap_err();
        OtpCode((0..length).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect())
    }

    /// A code typed by someone: digits only, 4 to 10 of them (spaces and dashes are ignored,
    /// as people copy `482 913` or `482-913`).
    pub fn parse(raw: &str) -> Result<OtpCode, CodeError> {
        let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(CodeError::NotDigits);
        }
        if !(MIN_LENGTH..=MAX_LENGTH).contains(&digits.len()) {
            return Err(CodeError::Length);
        }
        Ok(OtpCode(digits))
    }

    /// The digits. Call only where the code must leave the process (the message itself, or a
    /// response the tenant explicitly asked to include it in).
    pub fn reveal(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `HMAC-SHA256(pepper, verification_id ‖ code)`, hex. Ids have a fixed length, so the
    /// concatenation is unambiguous.
    pub fn mac(&self, pepper: &[u8], verification_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("HMAC takes any key length");
        mac.update(verification_id.as_bytes());
        mac.update(self.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether this code is the one whose MAC was stored, compared in constant time.
    pub fn matches(&self, pepper: &[u8], verification_id: &str, stored_mac: &str) -> bool {
        let computed = self.mac(pepper, verification_id);
        computed.as_bytes().ct_eq(stored_mac.as_bytes()).into()
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtpCode({} digits)", self.0.len())
    }
}

/// Runs of exactly `length` digits in a text (candidates for a code someone sent back).
pub fn codes_in(text: &str, length: usize) -> Vec<OtpCode> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == length)
        .take(5)
        .map(|run| OtpCode(run.to_owned()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtpStatus {
    /// Sent (or waiting for the user's message, in inbound mode) and not yet used.
    Pending,
    Approved,
    Expired,
    /// Canceled by request, or replaced by a newer verification of the same phone.
    Canceled,
    /// Too many wrong codes.
    MaxAttempts,
    /// The message could not be delivered.
    Failed,
}

impl OtpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OtpStatus::Pending => "pending",
            OtpStatus::Approved => "approved",
            OtpStatus::Expired => "expired",
            OtpStatus::Canceled => "canceled",
            OtpStatus::MaxAttempts => "max_attempts",
            OtpStatus::Failed => "failed",
        }
    }
}

impl FromStr for OtpStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            OtpStatus::Pending,
            OtpStatus::Approved,
            OtpStatus::Expired,
            OtpStatus::Canceled,
            OtpStatus::MaxAttempts,
            OtpStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| {
            format!(
                "unknown status `{s}` (expected pending, approved, expired, canceled, max_attempts or failed)"
            )
        })
    }
}

impl fmt::Display for OtpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the code travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtpMode {
    /// We send the code to the user.
    #[default]
    Push,
    /// The user sends a code to us (from a `wa.me` link), proving they own the number.
    Inbound,
    /// Push, falling back to inbound when WhatsApp restricts the session (error 463).
    Auto,
}

impl OtpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OtpMode::Push => "push",
            OtpMode::Inbound => "inbound",
            OtpMode::Auto => "auto",
        }
    }
}

impl FromStr for OtpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "push" => Ok(OtpMode::Push),
            "inbound" => Ok(OtpMode::Inbound),
            "auto" => Ok(OtpMode::Auto),
            other => Err(format!("unknown mode `{other}` (expected push, inbound or auto)")),
        }
    }
}

impl fmt::Display for OtpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_length_and_only_digits() {
        for length in MIN_LENGTH..=MAX_LENGTH {
            let code = OtpCode::generate(length);
            assert_eq!(code.len(), length);
            assert!(code.reveal().chars().all(|c| c.is_ascii_digit()));
        }
    }

    #[test]
    fn digits_are_uniform() {
        // 60,000 digits: each of the ten should appear close to 6,000 times (±6σ ≈ ±440).
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            for c in OtpCode::generate(6).reveal().bytes() {
                counts[usize::from(c - b'0')] += 1;
            }
        }
        assert!(counts.iter().all(|&n| (5_560..=6_440).contains(&n)), "{counts:?}");
    }

    #[test]
    fn parsing_rejects_letters_and_bad_lengths() {
        assert_eq!(OtpCode::parse("48a913"), Err(CodeError::NotDigits));
        assert_eq!(OtpCode::parse("123"), Err(CodeError::Length));
        assert_eq!(OtpCode::parse("12345678901"), Err(CodeError::Length));
        assert_eq!(OtpCode::parse("482 913").unwrap().reveal(), "482913");
        assert_eq!(OtpCode::parse("482-913").unwrap().reveal(), "482913");
    }

    #[test]
    fn macs_bind_the_code_to_its_verification() {
        let code = OtpCode::parse("482913").unwrap();
        let mac = code.mac(b"pepper", "verification-a");
        assert!(code.matches(b"pepper", "verification-a", &mac));
        assert!(!code.matches(b"pepper", "verification-b", &mac));
        assert!(!code.matches(b"other pepper", "verification-a", &mac));
        assert!(!OtpCode::parse("482914").unwrap().matches(b"pepper", "verification-a", &mac));
        assert!(!mac.contains("482913"));
    }

    #[test]
    fn debug_never_shows_the_digits() {
        let code = OtpCode::parse("482913").unwrap();
        assert_eq!(format!("{code:?}"), "OtpCode(6 digits)");
    }

    #[test]
    fn codes_are_found_in_a_sent_back_text() {
        let found = codes_in("My code: 482913, thanks 12", 6);
        assert_eq!(found.iter().map(OtpCode::reveal).collect::<Vec<_>>(), ["482913"]);
        assert!(codes_in("no digits", 6).is_empty());
    }
}
