//! The wire form of a send request (JSON or multipart fields), documented for OpenAPI, and
//! its conversion into the messages service's request.

use serde::Deserialize;
use utoipa::ToSchema;
use wagate_service::messages;
use wagate_service::sessions::PoolStrategy;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The contact's name as shown in the chat.
    pub name: String,
    /// A full vCard; or give `phone` and one is made.
    pub vcard: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionBody {
    pub message_id: String,
    /// An emoji; empty removes the reaction.
    pub emoji: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    pub question: String,
    pub options: Vec<String>,
    #[serde(default = "one")]
    pub selectable_count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonsBody {
    pub text: String,
    pub footer: Option<String>,
    pub buttons: Vec<ButtonBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonBody {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    pub text: String,
    pub button_text: String,
    pub sections: Vec<ListSectionBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSectionBody {
    pub title: String,
    pub rows: Vec<ListRowBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRowBody {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// Media by URL (fetched when the message is sent). To upload a file instead, send the request
/// as `multipart/form-data` with the file in a field named after the type (`image`, `video`,
/// `audio`, `document`, `sticker`) and the other fields as text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    /// An http(s) URL to fetch the media from.
    pub url: String,
    pub mimetype: Option<String>,
    /// For documents: the name the recipient sees.
    pub file_name: Option<String>,
    /// For audio: send as a voice note (push-to-talk).
    #[serde(default)]
    pub voice: bool,
}

/// A message: `to` and exactly one content field (`text`, `location`, `contact`, `reaction`,
/// `poll`, `buttons`, `list`, `image`, `video`, `audio`, `document`, `sticker`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// A phone number in any accepted format, or a group JID (`…@g.us`).
    pub to: String,
    /// For `POST /api/v1/messages`: the session to send from…
    pub session: Option<String>,
    /// …or the phone number of one of your linked sessions (seed 003's "phone")…
    pub from: Option<String>,
    /// …or a pool: a healthy session of the pool sends it, and the message moves to another
    /// member if that session stops being healthy.
    pub pool: Option<String>,
    /// How the pool picks the session (default `round_robin`).
    #[schema(value_type = Option<String>)]
    pub strategy: Option<PoolStrategy>,
    pub text: Option<String>,
    /// Phone numbers to mention in `text`.
    pub mentions: Option<Vec<String>>,
    /// Id of a message to reply to.
    pub reply_to: Option<String>,
    pub location: Option<LocationBody>,
    pub contact: Option<ContactBody>,
    pub reaction: Option<ReactionBody>,
    pub poll: Option<PollBody>,
    /// Best effort: WhatsApp delivers buttons unreliably to linked devices.
    pub buttons: Option<ButtonsBody>,
    /// Best effort, like buttons.
    pub list: Option<ListBody>,
    pub image: Option<MediaBody>,
    pub video: Option<MediaBody>,
    pub audio: Option<MediaBody>,
    pub document: Option<MediaBody>,
    pub sticker: Option<MediaBody>,
    /// Caption of an image, video or document.
    pub caption: Option<String>,
    /// A file sent as `multipart/form-data` (not part of JSON bodies).
    #[serde(skip)]
    #[schema(ignore)]
    pub upload: Option<messages::Upload>,
}

impl From<LocationBody> for messages::LocationBody {
    fn from(b: LocationBody) -> Self {
        messages::LocationBody {
            latitude: b.latitude,
            longitude: b.longitude,
            name: b.name,
            address: b.address,
        }
    }
}

impl From<ContactBody> for messages::ContactBody {
    fn from(b: ContactBody) -> Self {
        messages::ContactBody { name: b.name, vcard: b.vcard, phone: b.phone }
    }
}

impl From<ReactionBody> for messages::ReactionBody {
    fn from(b: ReactionBody) -> Self {
        messages::ReactionBody { message_id: b.message_id, emoji: b.emoji }
    }
}

impl From<PollBody> for messages::PollBody {
    fn from(b: PollBody) -> Self {
        messages::PollBody { question: b.question, options: b.options, selectable_count: b.selectable_count }
    }
}

impl From<ButtonsBody> for messages::ButtonsBody {
    fn from(b: ButtonsBody) -> Self {
        let buttons =
            b.buttons.into_iter().map(|b| messages::ButtonBody { id: b.id, title: b.title }).collect();
        messages::ButtonsBody { text: b.text, footer: b.footer, buttons }
    }
}

impl From<ListBody> for messages::ListBody {
    fn from(b: ListBody) -> Self {
        let sections = b
            .sections
            .into_iter()
            .map(|s| messages::ListSectionBody {
                title: s.title,
                rows: s
                    .rows
                    .into_iter()
                    .map(|r| messages::ListRowBody { id: r.id, title: r.title, description: r.description })
                    .collect(),
            })
            .collect();
        messages::ListBody { text: b.text, button_text: b.button_text, sections }
    }
}

impl From<MediaBody> for messages::MediaBody {
    fn from(b: MediaBody) -> Self {
        messages::MediaBody { url: b.url, mimetype: b.mimetype, file_name: b.file_name, voice: b.voice }
    }
}

impl From<SendMessageRequest> for messages::SendMessageRequest {
    fn from(r: SendMessageRequest) -> Self {
        messages::SendMessageRequest {
            to: r.to,
            session: r.session,
            from: r.from,
            pool: r.pool,
            strategy: r.strategy,
            text: r.text,
            mentions: r.mentions,
            reply_to: r.reply_to,
            location: r.location.map(Into::into),
            contact: r.contact.map(Into::into),
            reaction: r.reaction.map(Into::into),
            poll: r.poll.map(Into::into),
            buttons: r.buttons.map(Into::into),
            list: r.list.map(Into::into),
            image: r.image.map(Into::into),
            video: r.video.map(Into::into),
            audio: r.audio.map(Into::into),
            document: r.document.map(Into::into),
            sticker: r.sticker.map(Into::into),
            caption: r.caption,
            upload: r.upload,
        }
    }
}
