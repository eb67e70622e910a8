//! Our message content as WhatsApp protobuf messages.

use rand::RngCore;
use whatsapp_rust::upload::UploadResponse;
use whatsapp_rust::waproto::whatsapp as wa;
use whatsapp_rust::waproto::whatsapp::message::{buttons_message, list_message, poll_creation_message};
use whatsapp_rust::{buffa::MessageField, download::MediaType};

use crate::MessageContent;

/// A message that first needs its media uploaded to WhatsApp's servers.
pub(super) fn media_type(content: &MessageContent) -> Option<MediaType> {
    Some(match content {
        MessageContent::Image { .. } => MediaType::Image,
        MessageContent::Video { .. } => MediaType::Video,
        MessageContent::Audio { .. } => MediaType::Audio,
        MessageContent::Document { .. } => MediaType::Document,
        MessageContent::Sticker { .. } => MediaType::Sticker,
        _ => return None,
    })
}

/// Where WhatsApp's media servers keep an uploaded file, and the keys to read it.
#[derive(Debug, Clone)]
pub(super) struct Uploaded {
    pub url: String,
    pub direct_path: String,
    pub media_key: Vec<u8>,
    pub file_sha256: Vec<u8>,
    pub file_enc_sha256: Vec<u8>,
    pub file_length: u64,
    pub media_key_timestamp: i64,
    pub streaming_sidecar: Option<Vec<u8>>,
}

impl From<UploadResponse> for Uploaded {
    fn from(upload: UploadResponse) -> Self {
        Uploaded {
            url: upload.url,
            direct_path: upload.direct_path,
            media_key: upload.media_key.to_vec(),
            file_sha256: upload.file_sha256.to_vec(),
            file_enc_sha256: upload.file_enc_sha256.to_vec(),
            file_length: upload.file_length,
            media_key_timestamp: upload.media_key_timestamp,
            streaming_sidecar: upload.streaming_sidecar,
        }
    }
}

/// A media protobuf (`ImageMessage`, `VideoMessage` …) pointing at the uploaded file, with
/// the fields particular to its kind.
macro_rules! uploaded {
    ($kind:ident, $upload:expr, $mimetype:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let upload: Uploaded = $upload;
        MessageField::some(wa::message::$kind {
            url: Some(upload.url),
            direct_path: Some(upload.direct_path),
            media_key: Some(upload.media_key),
            file_sha256: Some(upload.file_sha256),
            file_enc_sha256: Some(upload.file_enc_sha256),
            file_length: Some(upload.file_length),
            media_key_timestamp: Some(upload.media_key_timestamp),
            mimetype: Some($mimetype.to_owned()),
            $($field: $value,)*
            ..Default::default()
        })
    }};
}

/// The protobuf for a media message whose bytes were uploaded as `upload`.
pub(super) fn media_message(content: &MessageContent, upload: Uploaded, mimetype: &str) -> wa::Message {
    let sidecar = upload.streaming_sidecar.clone();
    let mut message = wa::Message::default();
    match content {
        MessageContent::Image { caption, .. } => {
            message.image_message = uploaded!(ImageMessage, upload, mimetype, { caption: caption.clone() });
        }
        MessageContent::Video { caption, .. } => {
            message.video_message = uploaded!(VideoMessage, upload, mimetype, {
                caption: caption.clone(),
                streaming_sidecar: sidecar,
            });
        }
        MessageContent::Audio { voice, .. } => {
            message.audio_message = uploaded!(AudioMessage, upload, mimetype, {
                ptt: Some(*voice),
                streaming_sidecar: sidecar,
            });
        }
        MessageContent::Document { file_name, caption, .. } => {
            message.document_message = uploaded!(DocumentMessage, upload, mimetype, {
                file_name: Some(file_name.clone()),
                title: Some(file_name.clone()),
                caption: caption.clone(),
            });
        }
        _ => message.sticker_message = uploaded!(StickerMessage, upload, mimetype, {}),
    }
    message
}

/// The protobuf for a message without media; `chat` is the recipient's JID (reactions name
/// the message they react to within that chat). `None` for media messages.
pub(super) fn plain_message(content: &MessageContent, chat: &str) -> Option<wa::Message> {
    let message = match content {
        MessageContent::Text { body, mentions, reply_to } => {
            if mentions.is_empty() && reply_to.is_none() {
                wa::Message { conversation: Some(body.clone()), ..Default::default() }
            } else {
                let context = wa::ContextInfo {
                    mentioned_jid: mentions.clone(),
                    stanza_id: reply_to.clone(),
                    participant: reply_to.as_ref().map(|_| chat.to_owned()),
                    remote_jid: reply_to.as_ref().map(|_| chat.to_owned()),
                    ..Default::default()
                };
                wa::Message {
                    extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                        text: Some(body.clone()),
                        context_info: MessageField::some(context),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
        }
        MessageContent::Location { latitude, longitude, name, address } => wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageContent::Contact { display_name, vcard } => wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(display_name.clone()),
                vcard: Some(vcard.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageContent::Reaction { message_id, emoji } => {
            let key = wa::MessageKey {
                remote_jid: Some(chat.to_owned()),
                from_me: Some(false),
                id: Some(message_id.clone()),
                ..Default::default()
            };
            whatsapp_rust::proto_helpers::build_reaction_message(key, emoji.clone(), now_ms())
        }
        MessageContent::Poll { question, options, selectable_count } => {
            poll_message(question, options, *selectable_count)
        }
        MessageContent::Buttons { body, footer, buttons } => wa::Message {
            buttons_message: MessageField::some(wa::message::ButtonsMessage {
                content_text: Some(body.clone()),
                footer_text: footer.clone(),
                header_type: Some(buttons_message::HeaderType::EMPTY),
                buttons: buttons
                    .iter()
                    .map(|button| buttons_message::Button {
                        button_id: Some(button.id.clone()),
                        button_text: MessageField::some(buttons_message::button::ButtonText {
                            display_text: Some(button.title.clone()),
                        }),
                        r#type: Some(buttons_message::button::Type::RESPONSE),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageContent::List { body, button_text, sections } => wa::Message {
            list_message: MessageField::some(wa::message::ListMessage {
                description: Some(body.clone()),
                button_text: Some(button_text.clone()),
                list_type: Some(list_message::ListType::SINGLE_SELECT),
                sections: sections
                    .iter()
                    .map(|section| list_message::Section {
                        title: Some(section.title.clone()),
                        rows: section
                            .rows
                            .iter()
                            .map(|row| list_message::Row {
                                title: Some(row.title.clone()),
                                description: row.description.clone(),
                                row_id: Some(row.id.clone()),
                            })
                            .collect(),
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        },
        MessageContent::Image { .. }
        | MessageContent::Video { .. }
        | MessageContent::Audio { .. }
        | MessageContent::Document { .. }
        | MessageContent::Sticker { .. } => return None,
    };
    Some(message)
}

/// A poll as WhatsApp Web sends it: v3 for single choice, v1 for several, with the random
/// secret voters derive their vote encryption key from.
fn poll_message(question: &str, options: &[String], selectable_count: u32) -> wa::Message {
    let poll = wa::message::PollCreationMessage {
        name: Some(question.to_owned()),
        options: options
            .iter()
            .map(|name| poll_creation_message::Option {
                option_name: Some(name.clone()),
                ..Default::default()
            })
            .collect(),
        selectable_options_count: Some(selectable_count),
        ..Default::default()
    };
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let mut message = wa::Message {
        message_context_info: MessageField::some(wa::MessageContextInfo {
            message_secret: Some(secret),
            ..Default::default()
        }),
        ..Default::default()
    };
    if selectable_count == 1 {
        message.poll_creation_message_v3 = MessageField::some(poll);
    } else {
        message.poll_creation_message = MessageField::some(poll);
    }
    message
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use wagate_core::message::{Button, ListRow, ListSection, MediaRef};

    use super::*;

    const CHAT: &str = "6281234567890@s.whatsapp.net";

    fn plain(content: MessageContent) -> wa::Message {
        plain_message(&content, CHAT).expect("a message without media")
    }

    fn upload() -> Uploaded {
        Uploaded {
            url: "https://mmg.example/x".into(),
            direct_path: "/v/t62/x".into(),
            media_key: vec![1; 32],
            file_enc_sha256: vec![2; 32],
            file_sha256: vec![3; 32],
            file_length: 1234,
            media_key_timestamp: 1_700_000_000,
            streaming_sidecar: None,
        }
    }

    fn media() -> MediaRef {
        MediaRef { source: "upload:x".into(), mimetype: None, size: None }
    }

    #[test]
    fn text_is_a_conversation_until_it_needs_context() {
        let text = plain(MessageContent::Text { body: "hi".into(), mentions: vec![], reply_to: None });
        assert_eq!(text.conversation.as_deref(), Some("hi"));

        let reply = plain(MessageContent::Text {
            body: "hi @628".into(),
            mentions: vec!["628111@s.whatsapp.net".into()],
            reply_to: Some("3EB0ABC".into()),
        });
        let extended = reply.extended_text_message.as_option().expect("extended text");
        assert_eq!(extended.text.as_deref(), Some("hi @628"));
        let context = extended.context_info.as_option().expect("context");
        assert_eq!(context.mentioned_jid, ["628111@s.whatsapp.net"]);
        assert_eq!(context.stanza_id.as_deref(), Some("3EB0ABC"));
        assert_eq!(context.remote_jid.as_deref(), Some(CHAT));
    }

    #[test]
    fn every_plain_kind_maps_to_its_protobuf() {
        let location = plain(MessageContent::Location {
            latitude: -6.2,
            longitude: 106.8,
            name: Some("Monas".into()),
            address: None,
        });
        let location = location.location_message.as_option().unwrap();
        assert_eq!((location.degrees_latitude, location.name.as_deref()), (Some(-6.2), Some("Monas")));

        let contact =
            plain(MessageContent::Contact { display_name: "Ana".into(), vcard: "BEGIN:VCARD".into() });
        assert_eq!(contact.contact_message.as_option().unwrap().vcard.as_deref(), Some("BEGIN:VCARD"));

        let reaction = plain(MessageContent::Reaction { message_id: "3EB0X".into(), emoji: "👍".into() });
        let reaction = reaction.reaction_message.as_option().unwrap();
        assert_eq!(reaction.text.as_deref(), Some("👍"));
        let key = reaction.key.as_option().unwrap();
        assert_eq!((key.id.as_deref(), key.remote_jid.as_deref()), (Some("3EB0X"), Some(CHAT)));

        let single = plain(MessageContent::Poll {
            question: "Lunch?".into(),
            options: vec!["yes".into(), "no".into()],
            selectable_count: 1,
        });
        let poll = single.poll_creation_message_v3.as_option().expect("single choice is v3");
        assert_eq!(poll.options.len(), 2);
        assert_eq!(
            single.message_context_info.as_option().unwrap().message_secret.as_ref().unwrap().len(),
            32
        );
        let multi = plain(MessageContent::Poll {
            question: "Pick".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            selectable_count: 2,
        });
        assert_eq!(multi.poll_creation_message.as_option().unwrap().selectable_options_count, Some(2));

        let buttons = plain(MessageContent::Buttons {
            body: "Choose".into(),
            footer: None,
            buttons: vec![Button { id: "b1".into(), title: "One".into() }],
        });
        let buttons = buttons.buttons_message.as_option().unwrap();
        assert_eq!(buttons.buttons[0].button_id.as_deref(), Some("b1"));

        let list = plain(MessageContent::List {
            body: "Menu".into(),
            button_text: "Open".into(),
            sections: vec![ListSection {
                title: "Food".into(),
                rows: vec![ListRow { id: "r1".into(), title: "Rice".into(), description: None }],
            }],
        });
        let list = list.list_message.as_option().unwrap();
        assert_eq!(list.sections[0].rows[0].row_id.as_deref(), Some("r1"));
    }

    #[test]
    fn media_messages_carry_the_upload_and_their_options() {
        let voice = MessageContent::Audio { media: media(), voice: true };
        assert!(plain_message(&voice, CHAT).is_none());
        assert_eq!(media_type(&voice), Some(MediaType::Audio));
        let audio = media_message(&voice, upload(), "audio/ogg");
        let audio = audio.audio_message.as_option().unwrap();
        assert_eq!((audio.ptt, audio.file_length), (Some(true), Some(1234)));

        let document =
            MessageContent::Document { media: media(), file_name: "a.pdf".into(), caption: Some("c".into()) };
        let message = media_message(&document, upload(), "application/pdf");
        let document = message.document_message.as_option().unwrap();
        assert_eq!(document.file_name.as_deref(), Some("a.pdf"));
        assert_eq!(document.mimetype.as_deref(), Some("application/pdf"));

        let image = MessageContent::Image { media: media(), caption: Some("look".into()) };
        let message = media_message(&image, upload(), "image/png");
        assert_eq!(message.image_message.as_option().unwrap().caption.as_deref(), Some("look"));

        let sticker = MessageContent::Sticker { media: media() };
        let message = media_message(&sticker, upload(), "image/webp");
        assert_eq!(message.sticker_message.as_option().unwrap().direct_path.as_deref(), Some("/v/t62/x"));
        assert_eq!(media_type(&sticker), Some(MediaType::Sticker));
    }
}
