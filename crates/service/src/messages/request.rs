//! A message as a caller asks for it: `to` and exactly one content field, in plain types.
//!
//! The field layout matches the HTTP request it comes from on purpose: the idempotency
//! fingerprint is taken from this value's `Debug` form, so equal requests stay equal.

use wagate_core::message::MediaRef;

use crate::sessions::PoolStrategy;

#[derive(Debug)]
pub struct LocationBody {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug)]
pub struct ContactBody {
    pub name: String,
    /// A full vCard; or `phone`, and one is made.
    pub vcard: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug)]
pub struct ReactionBody {
    pub message_id: String,
    pub emoji: String,
}

#[derive(Debug)]
pub struct PollBody {
    pub question: String,
    pub options: Vec<String>,
    pub selectable_count: u32,
}

#[derive(Debug)]
pub struct ButtonsBody {
    pub text: String,
    pub footer: Option<String>,
    pub buttons: Vec<ButtonBody>,
}

#[derive(Debug)]
pub struct ButtonBody {
    pub id: String,
    pub title: String,
}

#[derive(Debug)]
pub struct ListBody {
    pub text: String,
    pub button_text: String,
    pub sections: Vec<ListSectionBody>,
}

#[derive(Debug)]
pub struct ListSectionBody {
    pub title: String,
    pub rows: Vec<ListRowBody>,
}

#[derive(Debug)]
pub struct ListRowBody {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// Media fetched from a URL when the message is sent.
#[derive(Debug)]
pub struct MediaBody {
    pub url: String,
    pub mimetype: Option<String>,
    pub file_name: Option<String>,
    pub voice: bool,
}

/// A message to accept. `session`, `from`, `pool` and `strategy` choose the sending session
/// and are read before the message is accepted.
#[derive(Debug, Default)]
pub struct SendMessageRequest {
    pub to: String,
    pub session: Option<String>,
    pub from: Option<String>,
    pub pool: Option<String>,
    pub strategy: Option<PoolStrategy>,
    pub text: Option<String>,
    pub mentions: Option<Vec<String>>,
    pub reply_to: Option<String>,
    pub location: Option<LocationBody>,
    pub contact: Option<ContactBody>,
    pub reaction: Option<ReactionBody>,
    pub poll: Option<PollBody>,
    pub buttons: Option<ButtonsBody>,
    pub list: Option<ListBody>,
    pub image: Option<MediaBody>,
    pub video: Option<MediaBody>,
    pub audio: Option<MediaBody>,
    pub document: Option<MediaBody>,
    pub sticker: Option<MediaBody>,
    pub caption: Option<String>,
    pub upload: Option<Upload>,
}

/// A file received with the request, already stored.
#[derive(Debug)]
pub struct Upload {
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: &'static str,
    pub media: MediaRef,
    pub file_name: Option<String>,
    pub voice: bool,
}
