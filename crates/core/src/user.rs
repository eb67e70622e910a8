//! User names.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("username must be 3 to 64 characters: letters, digits, `.`, `_`, `-` or `@`")]
pub struct UsernameError;

/// A login name: `^[A-Za-z0-9._@-]{3,64}$`, compared case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        let ok_len = (3..=64).contains(&raw.len());
        let ok_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
        if ok_len && ok_chars { Ok(Username(raw.to_owned())) } else { Err(UsernameError) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(Username::parse("admin").is_ok());
        assert!(Username::parse("ops.team@acme-1").is_ok());
        assert_eq!(Username::parse("ab"), Err(UsernameError));
        assert_eq!(Username::parse("has space"), Err(UsernameError));
        assert_eq!(Username::parse(&"x".repeat(65)), Err(UsernameError));
    }
}
