//! Sessions: one linked WhatsApp account each.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("session id must be 1 to 64 characters: letters, digits, `_` or `-`")]
pub struct SessionIdError;

/// A session identifier: `^[A-Za-z0-9_-]{1,64}$`.
///
/// It names a directory under the data directory, so nothing that could climb out of it
/// (`/`, `..`, spaces, control characters) is ever accepted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, SessionIdError> {
        let ok_len = !raw.is_empty() && raw.len() <= Self::MAX_LEN;
        let ok_chars = raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok_len && ok_chars { Ok(SessionId(raw.to_owned())) } else { Err(SessionIdError) }
    }

    /// A fresh random id such as `s-k3v9q2m7x1c8`.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        let mut rng = rand::rng();
        let suffix: String = (0..12).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        SessionId(format!("s-{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionNameError {
    #[error("session name must not be empty")]
    Empty,
    #[error("session name must be at most {max} characters")]
    TooLong { max: usize },
    #[error("session name must not contain control characters")]
    ControlCharacter,
}

/// A human-readable session label (1–100 characters, no control characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionName(String);

impl SessionName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, SessionNameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(SessionNameError::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(SessionNameError::TooLong { max: Self::MAX_CHARS });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(SessionNameError::ControlCharacter);
        }
        Ok(SessionName(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Which implementation talks to WhatsApp for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// A linked device on the real WhatsApp network.
    Web,
    /// The in-process simulated network.
    Sandbox,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Web => "web",
            EngineKind::Sandbox => "sandbox",
        }
    }
}

impl FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "web" => Ok(EngineKind::Web),
            "sandbox" => Ok(EngineKind::Sandbox),
            other => Err(format!("unknown engine `{other}` (expected web or sandbox)")),
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a session is in its life.
///
/// `created → connecting → qr | pairing_code → connected ⇄ disconnected → logged_out`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Exists, never connected.
    Created,
    /// Opening a connection (or reconnecting).
    Connecting,
    /// Waiting for a QR code to be scanned.
    Qr,
    /// Waiting for a pairing code to be entered on the phone.
    PairingCode,
    /// Linked and online.
    Connected,
    /// Not online; `status_reason` tells why (stopped by a user, QR codes ran out, network…).
    Disconnected,
    /// Unlinked from the phone; the next connect shows a new QR code.
    LoggedOut,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 7] = [
        SessionStatus::Created,
        SessionStatus::Connecting,
        SessionStatus::Qr,
        SessionStatus::PairingCode,
        SessionStatus::Connected,
        SessionStatus::Disconnected,
        SessionStatus::LoggedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Created => "created",
            SessionStatus::Connecting => "connecting",
            SessionStatus::Qr => "qr",
            SessionStatus::PairingCode => "pairing_code",
            SessionStatus::Connected => "connected",
            SessionStatus::Disconnected => "disconnected",
            SessionStatus::LoggedOut => "logged_out",
        }
    }

    /// True while a connection is open or being opened.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            SessionStatus::Connecting
                | SessionStatus::Qr
                | SessionStatus::PairingCode
                | SessionStatus::Connected
        )
    }
}

impl FromStr for SessionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown session status `{s}`"))
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_reject_anything_that_could_leave_the_data_dir() {
        assert!(SessionId::parse("sales_1-A").is_ok());
        assert!(SessionId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a/b", "..", "../x", "a b", "a\0b", "é", &"a".repeat(65), &"a".repeat(1000)] {
            assert_eq!(SessionId::parse(bad), Err(SessionIdError), "{bad:?} was accepted");
        }
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert!(SessionId::parse(a.as_str()).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn session_names() {
        assert_eq!(SessionName::parse("  Sales ").unwrap().as_str(), "Sales");
        assert_eq!(SessionName::parse("   "), Err(SessionNameError::Empty));
        assert_eq!(SessionName::parse(&"n".repeat(101)), Err(SessionNameError::TooLong { max: 100 }));
        assert_eq!(SessionName::parse("a\nb"), Err(SessionNameError::ControlCharacter));
        assert!(SessionName::parse("Toko Budi 🛒").is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for status in SessionStatus::ALL {
            assert_eq!(status.as_str().parse::<SessionStatus>().unwrap(), status);
        }
    }
}
