//! Turning a request into one validated message content and its recipient.

use wagate_core::message::{Button, ListRow, ListSection, MediaRef};
use wagate_core::{GroupJid, MessageContent, Phone};

use wagate_store::SessionRecord;

use super::request::{MediaBody, SendMessageRequest, Upload};
use super::{MessageError, Messages};
use crate::auth::Principal;

impl Upload {
    fn into_content(self, caption: Option<String>) -> MessageContent {
        let media = self.media;
        match self.kind {
            "image" => MessageContent::Image { media, caption },
            "video" => MessageContent::Video { media, caption },
            "audio" => MessageContent::Audio { media, voice: self.voice },
            "sticker" => MessageContent::Sticker { media },
            _ => MessageContent::Document {
                media,
                file_name: self.file_name.unwrap_or_else(|| "file".into()),
                caption,
            },
        }
    }
}

fn file_name_from_url(url: &str) -> String {
    let last = url.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
    if last.is_empty() { "file".into() } else { last.chars().take(255).collect() }
}

/// A contact card for `name` at `phone` (vCard 3.0 with the WhatsApp id).
fn vcard_of(name: &str, phone: &Phone) -> String {
    format!(
        "BEGIN:VCARD\nVERSION:3.0\nFN:{}\nTEL;type=CELL;waid={}:{}\nEND:VCARD",
        name.replace(['\n', '\r'], " "),
        phone.digits(),
        phone.e164()
    )
}

fn group_recipient(to: &str) -> Result<String, MessageError> {
    GroupJid::parse(to).map(|group| group.as_str().to_owned()).map_err(|_| MessageError::InvalidGroup)
}

fn invalid(detail: impl Into<String>) -> MessageError {
    MessageError::Invalid(detail.into())
}

impl Messages {
    /// A phone number in any accepted format that `session` sends to: national numbers are
    /// read in the session's country (see [`PhoneReader`](crate::phones::PhoneReader)).
    fn phone_for(&self, raw: &str, session: &SessionRecord) -> Result<Phone, MessageError> {
        Ok(self.phones.read_for_session(raw, session)?)
    }

    /// `…@g.us` group JIDs as they are, phone numbers in E.164.
    pub(super) fn recipient_of(&self, to: &str, session: &SessionRecord) -> Result<String, MessageError> {
        if wagate_core::address::is_group(to) {
            return group_recipient(to);
        }
        self.phone_for(to, session).map(|p| p.e164().to_owned())
    }

    /// A recipient as the caller writes it in a search, national numbers read in the country
    /// of the caller's sessions.
    pub async fn recipient_for_caller(
        &self,
        to: &str,
        principal: &Principal,
    ) -> Result<String, MessageError> {
        if wagate_core::address::is_group(to) {
            return group_recipient(to);
        }
        Ok(self.phones.read_for_caller(to, principal).await?.e164().to_owned())
    }

    /// Turns the request into one validated content value.
    pub(super) fn content_of(
        &self,
        request: SendMessageRequest,
        session: &SessionRecord,
    ) -> Result<MessageContent, MessageError> {
        let mut contents = Vec::new();
        if let Some(body) = request.text {
            let mentions = request
                .mentions
                .unwrap_or_default()
                .iter()
                .map(|m| self.phone_for(m, session).map(|p| p.jid()))
                .collect::<Result<Vec<_>, _>>()?;
            contents.push(MessageContent::Text { body, mentions, reply_to: request.reply_to.clone() });
        }
        if let Some(l) = request.location {
            contents.push(MessageContent::Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: l.name,
                address: l.address,
            });
        }
        if let Some(c) = request.contact {
            let vcard = match (c.vcard, c.phone) {
                (Some(vcard), _) => vcard,
                (None, Some(phone)) => vcard_of(&c.name, &self.phone_for(&phone, session)?),
                (None, None) => return Err(invalid("contact: give `vcard` or `phone`")),
            };
            contents.push(MessageContent::Contact { display_name: c.name, vcard });
        }
        if let Some(r) = request.reaction {
            contents.push(MessageContent::Reaction { message_id: r.message_id, emoji: r.emoji });
        }
        if let Some(p) = request.poll {
            contents.push(MessageContent::Poll {
                question: p.question,
                options: p.options,
                selectable_count: p.selectable_count,
            });
        }
        if let Some(b) = request.buttons {
            let buttons = b.buttons.into_iter().map(|b| Button { id: b.id, title: b.title }).collect();
            contents.push(MessageContent::Buttons { body: b.text, footer: b.footer, buttons });
        }
        if let Some(l) = request.list {
            let sections = l
                .sections
                .into_iter()
                .map(|s| ListSection {
                    title: s.title,
                    rows: s
                        .rows
                        .into_iter()
                        .map(|r| ListRow { id: r.id, title: r.title, description: r.description })
                        .collect(),
                })
                .collect();
            contents.push(MessageContent::List { body: l.text, button_text: l.button_text, sections });
        }
        let caption = request.caption.clone();
        let by_url = |media: &MediaBody| MediaRef {
            source: media.url.clone(),
            mimetype: media.mimetype.clone(),
            size: None,
        };
        if let Some(m) = &request.image {
            contents.push(MessageContent::Image { media: by_url(m), caption: caption.clone() });
        }
        if let Some(m) = &request.video {
            contents.push(MessageContent::Video { media: by_url(m), caption: caption.clone() });
        }
        if let Some(m) = &request.audio {
            contents.push(MessageContent::Audio { media: by_url(m), voice: m.voice });
        }
        if let Some(m) = &request.document {
            let file_name = m.file_name.clone().unwrap_or_else(|| file_name_from_url(&m.url));
            contents.push(MessageContent::Document { media: by_url(m), file_name, caption: caption.clone() });
        }
        if let Some(m) = &request.sticker {
            contents.push(MessageContent::Sticker { media: by_url(m) });
        }
        if let Some(upload) = request.upload {
            contents.push(upload.into_content(caption));
        }
        let mut contents = contents.into_iter();
        let (Some(content), None) = (contents.next(), contents.next()) else {
            return Err(invalid(
                "give exactly one of text, location, contact, reaction, poll, buttons, list",
            ));
        };
        content.validate().map_err(|err| invalid(err.to_string()))?;
        Ok(content)
    }
}
