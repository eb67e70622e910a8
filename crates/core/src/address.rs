//! WhatsApp addresses (JIDs). Every layer builds and recognises them here, and nowhere else.
//!
//! A person is `<digits>@s.whatsapp.net` (or `<id>@lid`, WhatsApp's privacy-preserving id); a
//! group is `<digits>-<digits>@g.us`. wagate stores a message's recipient as E.164 for a person
//! and as the JID for a group.

use std::fmt;

use crate::Phone;

const USER_SUFFIX: &str = "@s.whatsapp.net";
const GROUP_SUFFIX: &str = "@g.us";
const LID_SUFFIX: &str = "@lid";

/// `6281234567890@s.whatsapp.net` for the digits of a phone number.
pub fn user_jid(digits: &str) -> String {
    format!("{digits}{USER_SUFFIX}")
}

/// The JID of a stored recipient: a group JID as it is, an E.164 number as a user JID.
pub fn jid_of_stored(recipient: &str) -> String {
    if is_group(recipient) { recipient.to_owned() } else { user_jid(recipient.trim_start_matches('+')) }
}

/// `…@g.us`
pub fn is_group(address: &str) -> bool {
    address.ends_with(GROUP_SUFFIX)
}

/// `…@lid`
pub fn is_lid(address: &str) -> bool {
    address.ends_with(LID_SUFFIX)
}

/// A person's JID: `…@s.whatsapp.net` or `…@lid`.
pub fn is_user(address: &str) -> bool {
    address.ends_with(USER_SUFFIX) || is_lid(address)
}

/// The digits before `@s.whatsapp.net`, when `address` is a phone-number JID.
pub fn strip_user_suffix(address: &str) -> &str {
    address.strip_suffix(USER_SUFFIX).unwrap_or(address)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a group JID (expected digits and dashes before @g.us)")]
pub struct GroupJidError(pub String);

/// A group's JID, `120363041234567890@g.us` (older groups: `6281234567890-1600000000@g.us`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupJid(String);

impl GroupJid {
    pub fn parse(raw: &str) -> Result<Self, GroupJidError> {
        let Some(id) = raw.strip_suffix(GROUP_SUFFIX) else { return Err(GroupJidError(raw.to_owned())) };
        let valid = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if valid { Ok(GroupJid(raw.to_owned())) } else { Err(GroupJidError(raw.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a message goes: a person, by phone number, or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(Phone),
    Group(GroupJid),
}

impl Recipient {
    /// A recipient as the outbox stores it (E.164 or a group JID); `None` if it is neither.
    pub fn from_stored(stored: &str) -> Option<Recipient> {
        if is_group(stored) {
            return GroupJid::parse(stored).ok().map(Recipient::Group);
        }
        Phone::from_stored(stored).map(Recipient::Phone)
    }

    /// How the outbox stores it.
    pub fn stored(&self) -> &str {
        match self {
            Recipient::Phone(phone) => phone.e164(),
            Recipient::Group(group) => group.as_str(),
        }
    }

    pub fn jid(&self) -> String {
        match self {
            Recipient::Phone(phone) => phone.jid(),
            Recipient::Group(group) => group.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_recognised_and_built_here() {
        assert_eq!(user_jid("6281234567890"), "6281234567890@s.whatsapp.net");
        assert_eq!(jid_of_stored("+6281234567890"), "6281234567890@s.whatsapp.net");
        assert_eq!(jid_of_stored("120363041234567890@g.us"), "120363041234567890@g.us");
        assert!(is_user("1@lid") && is_user("62@s.whatsapp.net") && !is_user("1@g.us"));
        assert_eq!(strip_user_suffix("62812@s.whatsapp.net"), "62812");
        assert!(GroupJid::parse("6281234567890-1600000000@g.us").is_ok());
        for bad in ["@g.us", "abc@g.us", "1203630412@s.whatsapp.net", "120363"] {
            assert!(GroupJid::parse(bad).is_err(), "{bad}");
        }
        let group = Recipient::from_stored("120363041234567890@g.us").unwrap();
        assert_eq!(group.stored(), "120363041234567890@g.us");
        let person = Recipient::from_stored("+6281234567890").unwrap();
        assert_eq!(person.jid(), "6281234567890@s.whatsapp.net");
        assert_eq!(Recipient::from_stored("not a number"), None);
    }
}
