//! Received WhatsApp messages as our inbound messages.

use wagate_core::Phone;
use wagate_core::message::{MediaRef, MessageContent};
use whatsapp_rust::proto_helpers::MessageExt;
use whatsapp_rust::types::message::MessageInfo;
use whatsapp_rust::waproto::whatsapp as wa;

use whatsapp_rust::Jid;
use whatsapp_rust::types::events::InboundMessage as WaInbound;

use super::jids::{lid_string, phone_of};
use super::session::Shared;
use crate::InboundMessage;

/// The sender as both identities WhatsApp uses: phone number and LID.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sender {
    pub phone: Phone,
    pub lid: Option<String>,
}

/// The JIDs a message names its sender by: the sender itself and its alternative identity
/// (a LID-addressed message carries the phone number as `sender_alt`, and the reverse).
fn sender_jids(info: &MessageInfo) -> (Option<Phone>, Option<String>) {
    let source = &info.source;
    let candidates = [Some(&source.sender), source.sender_alt.as_ref()];
    let phone = candidates.iter().flatten().find_map(|jid| phone_of(jid));
    let lid = candidates.iter().flatten().find_map(|jid| lid_string(jid));
    (phone, lid)
}

/// A received message as ours, with both sender identities; `None` when it is not a user's
/// message or its sender's phone number is unknown.
pub(super) async fn convert(shared: &Shared, message: &WaInbound) -> Option<InboundMessage> {
    let info = &message.info;
    let (mut phone, mut lid) = sender_jids(info);
    // A message names its sender by one identity or both; the other comes from the client's
    // LID ↔ phone-number map, which it keeps in the session's store.
    if (phone.is_none() || lid.is_none())
        && let Some(client) = shared.client()
        && let Ok(Some(entry)) = client.get_lid_pn_entry(&info.source.sender.to_non_ad()).await
    {
        phone = phone.or_else(|| phone_of(&Jid::pn(&*entry.phone_number)));
        lid = lid.or_else(|| lid_string(&Jid::lid(&*entry.lid)));
    }
    let Some(phone) = phone else {
        tracing::warn!(session = %shared.spec.id, id = %info.id, "message from an unknown phone number dropped");
        return None;
    };
    inbound_message(info, &message.message, Sender { phone, lid })
}

/// `None` for what is not a user's message (protocol messages, key shares, our own echoes).
fn inbound_message(info: &MessageInfo, message: &wa::Message, sender: Sender) -> Option<InboundMessage> {
    if info.source.is_from_me {
        return None;
    }
    let (content, quoted_id) = content_of(message.get_base_message())?;
    let chat =
        if info.source.is_group { info.source.chat.to_non_ad().to_string() } else { sender.phone.jid() };
    Some(InboundMessage {
        id: info.id.to_string(),
        from: sender.phone,
        from_lid: sender.lid,
        push_name: Some(info.push_name.clone()).filter(|name| !name.is_empty()),
        chat,
        content,
        quoted_id,
        timestamp: info.timestamp.timestamp_millis(),
    })
}

fn media(direct_path: &Option<String>, mimetype: &Option<String>, length: Option<u64>) -> MediaRef {
    MediaRef {
        source: format!("whatsapp:{}", direct_path.as_deref().unwrap_or_default()),
        mimetype: mimetype.clone(),
        size: length,
    }
}

fn context_of(
    context: &whatsapp_rust::buffa::MessageField<wa::ContextInfo>,
) -> (Vec<String>, Option<String>) {
    context.as_option().map(|c| (c.mentioned_jid.clone(), c.stanza_id.clone())).unwrap_or_default()
}

/// The content and the id of the message it quotes.
pub(super) fn content_of(message: &wa::Message) -> Option<(MessageContent, Option<String>)> {
    if let Some(body) = &message.conversation {
        return Some((MessageContent::Text { body: body.clone(), mentions: vec![], reply_to: None }, None));
    }
    if let Some(text) = message.extended_text_message.as_option() {
        let (mentions, quoted) = context_of(&text.context_info);
        let body = text.text.clone().unwrap_or_default();
        return Some((MessageContent::Text { body, mentions, reply_to: None }, quoted));
    }
    if let Some(image) = message.image_message.as_option() {
        let media = media(&image.direct_path, &image.mimetype, image.file_length);
        let quoted = context_of(&image.context_info).1;
        return Some((MessageContent::Image { media, caption: image.caption.clone() }, quoted));
    }
    if let Some(video) = message.video_message.as_option() {
        let media = media(&video.direct_path, &video.mimetype, video.file_length);
        let quoted = context_of(&video.context_info).1;
        return Some((MessageContent::Video { media, caption: video.caption.clone() }, quoted));
    }
    if let Some(audio) = message.audio_message.as_option() {
        let media = media(&audio.direct_path, &audio.mimetype, audio.file_length);
        let voice = audio.ptt.unwrap_or(false);
        return Some((MessageContent::Audio { media, voice }, context_of(&audio.context_info).1));
    }
    if let Some(document) = message.document_message.as_option() {
        let media = media(&document.direct_path, &document.mimetype, document.file_length);
        let file_name = document.file_name.clone().unwrap_or_else(|| "document".into());
        let content = MessageContent::Document { media, file_name, caption: document.caption.clone() };
        return Some((content, context_of(&document.context_info).1));
    }
    if let Some(sticker) = message.sticker_message.as_option() {
        let media = media(&sticker.direct_path, &sticker.mimetype, sticker.file_length);
        return Some((MessageContent::Sticker { media }, None));
    }
    if let Some(location) = message.location_message.as_option() {
        let content = MessageContent::Location {
            latitude: location.degrees_latitude.unwrap_or_default(),
            longitude: location.degrees_longitude.unwrap_or_default(),
            name: location.name.clone(),
            address: location.address.clone(),
        };
        return Some((content, None));
    }
    if let Some(contact) = message.contact_message.as_option() {
        let content = MessageContent::Contact {
            display_name: contact.display_name.clone().unwrap_or_default(),
            vcard: contact.vcard.clone().unwrap_or_default(),
        };
        return Some((content, None));
    }
    if let Some(reaction) = message.reaction_message.as_option() {
        let message_id = reaction.key.as_option().and_then(|key| key.id.clone())?;
        let emoji = reaction.text.clone().unwrap_or_default();
        return Some((MessageContent::Reaction { message_id, emoji }, None));
    }
    let poll = [
        &message.poll_creation_message,
        &message.poll_creation_message_v3,
        &message.poll_creation_message_v2,
    ]
    .into_iter()
    .find_map(|poll| poll.as_option());
    if let Some(poll) = poll {
        let content = MessageContent::Poll {
            question: poll.name.clone().unwrap_or_default(),
            options: poll.options.iter().filter_map(|option| option.option_name.clone()).collect(),
            selectable_count: poll.selectable_options_count.unwrap_or(1),
        };
        return Some((content, None));
    }
    None
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::buffa::MessageField;

    use super::*;

    #[test]
    fn received_kinds_become_our_content() {
        let text = wa::Message { conversation: Some("hello".into()), ..Default::default() };
        assert_eq!(
            content_of(&text),
            Some((MessageContent::Text { body: "hello".into(), mentions: vec![], reply_to: None }, None))
        );

        let reply = wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some("yes".into()),
                context_info: MessageField::some(wa::ContextInfo {
                    stanza_id: Some("3EB0QUOTED".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (content, quoted) = content_of(&reply).unwrap();
        assert_eq!(content.text(), Some("yes"));
        assert_eq!(quoted.as_deref(), Some("3EB0QUOTED"));

        let voice = wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                ptt: Some(true),
                direct_path: Some("/v/t62/a".into()),
                mimetype: Some("audio/ogg".into()),
                file_length: Some(99),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (content, _) = content_of(&voice).unwrap();
        let MessageContent::Audio { media, voice } = content else { panic!("{content:?}") };
        assert!(voice);
        assert_eq!((media.source.as_str(), media.size), ("whatsapp:/v/t62/a", Some(99)));

        let nothing = wa::Message::default();
        assert_eq!(content_of(&nothing), None, "protocol-only messages are not inbound messages");
    }
}
