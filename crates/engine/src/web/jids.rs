//! WhatsApp JIDs ↔ our phones and chats.

use whatsapp_rust::{Jid, Server};

use crate::{Chat, EngineError};
use wagate_core::Phone;

pub(super) fn chat_jid(chat: &Chat) -> Result<Jid, EngineError> {
    match chat {
        Chat::Phone(phone) => Ok(Jid::pn(phone.digits())),
        Chat::Group(jid) => match jid.parse::<Jid>() {
            Ok(jid) if jid.server == Server::Group => Ok(jid),
            _ => Err(EngineError::Other(format!("`{jid}` is not a group JID"))),
        },
    }
}

/// The phone number of a phone-number JID (`6281…@s.whatsapp.net`, device suffix ignored).
pub(super) fn phone_of(jid: &Jid) -> Option<Phone> {
    jid.is_pn().then(|| Phone::parse(&format!("+{}", jid.user), None).ok()).flatten()
}

/// `…@lid` without a device suffix.
pub(super) fn lid_string(jid: &Jid) -> Option<String> {
    jid.is_lid().then(|| jid.to_non_ad().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chats_become_jids_and_back() {
        let phone = Phone::parse("+6281234567890", None).unwrap();
        let jid = chat_jid(&Chat::Phone(phone.clone())).unwrap();
        assert_eq!(jid.to_string(), "6281234567890@s.whatsapp.net");
        assert_eq!(phone_of(&jid), Some(phone));
        let group = chat_jid(&Chat::Group("120363012345678901@g.us".into())).unwrap();
        assert_eq!(group.to_string(), "120363012345678901@g.us");
        assert!(chat_jid(&Chat::Group("6281234567890@s.whatsapp.net".into())).is_err());

        let device: Jid = "6281234567890:3@s.whatsapp.net".parse().unwrap();
        assert_eq!(phone_of(&device).unwrap().e164(), "+6281234567890");
        let lid: Jid = "123456789012345:2@lid".parse().unwrap();
        assert_eq!(lid_string(&lid).as_deref(), Some("123456789012345@lid"));
        assert_eq!(phone_of(&lid), None);
    }
}
