//! What can be sent: one enum with a variant per WhatsApp message type, validated at the edge.

use serde::{Deserialize, Serialize};

/// A WhatsApp-style message id, chosen before the first attempt and reused on every retry.
pub use crate::message_id::new_message_id;

/// WhatsApp's limit for a text message body, in characters.
pub const MAX_TEXT_CHARS: usize = 65_536;
/// WhatsApp's limit for a caption, in characters.
pub const MAX_CAPTION_CHARS: usize = 1_024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageContent {
    Text {
        body: String,
        /// JIDs mentioned in the text (`6281234567890@s.whatsapp.net`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
        /// Id of the message this one replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
    },
    Image {
        media: MediaRef,
        caption: Option<String>,
    },
    Video {
        media: MediaRef,
        caption: Option<String>,
    },
    Audio {
        media: MediaRef,
        voice: bool,
    },
    Document {
        media: MediaRef,
        file_name: String,
        caption: Option<String>,
    },
    Sticker {
        media: MediaRef,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contact {
        display_name: String,
        vcard: String,
    },
    Reaction {
        message_id: String,
        emoji: String,
    },
    Poll {
        question: String,
        options: Vec<String>,
        selectable_count: u32,
    },
    /// Best effort: WhatsApp delivers interactive messages unreliably to linked devices.
    Buttons {
        body: String,
        footer: Option<String>,
        buttons: Vec<Button>,
    },
    /// Best effort, like buttons.
    List {
        body: String,
        button_text: String,
        sections: Vec<ListSection>,
    },
}

/// Media of a message: where its bytes are (a stored upload or a URL to download when sending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// `upload:<file>` for stored uploads, or an `http(s)` URL.
    pub source: String,
    pub mimetype: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    pub title: String,
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct ContentError {
    pub field: &'static str,
    pub problem: String,
}

fn fail<T>(field: &'static str, problem: impl Into<String>) -> Result<T, ContentError> {
    Err(ContentError { field, problem: problem.into() })
}

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), ContentError> {
    let n = value.chars().count();
    if n < min {
        return fail(
            field,
            if min == 1 {
                "must not be empty".to_owned()
            } else {
                format!("needs at least {min} characters")
            },
        );
    }
    if n > max {
        return fail(field, format!("must be at most {max} characters"));
    }
    Ok(())
}

impl MessageContent {
    /// The type name used in the API and in storage (`text`, `image`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Image { .. } => "image",
            MessageContent::Video { .. } => "video",
            MessageContent::Audio { .. } => "audio",
            MessageContent::Document { .. } => "document",
            MessageContent::Sticker { .. } => "sticker",
            MessageContent::Location { .. } => "location",
            MessageContent::Contact { .. } => "contact",
            MessageContent::Reaction { .. } => "reaction",
            MessageContent::Poll { .. } => "poll",
            MessageContent::Buttons { .. } => "buttons",
            MessageContent::List { .. } => "list",
        }
    }

    /// Interactive messages that linked devices cannot deliver reliably.
    pub fn is_best_effort(&self) -> bool {
        matches!(self, MessageContent::Buttons { .. } | MessageContent::List { .. })
    }

    pub fn media(&self) -> Option<&MediaRef> {
        match self {
            MessageContent::Image { media, .. }
            | MessageContent::Video { media, .. }
            | MessageContent::Audio { media, .. }
            | MessageContent::Document { media, .. }
            | MessageContent::Sticker { media } => Some(media),
            _ => None,
        }
    }

    /// Text to search in, when there is any.
    pub fn text(&self) -> Option<&str> {
        match self {
            MessageContent::Text { body, .. }
            | MessageContent::Buttons { body, .. }
            | MessageContent::List { body, .. } => Some(body),
            MessageContent::Image { caption, .. } | MessageContent::Video { caption, .. } => {
                caption.as_deref()
            }
            MessageContent::Document { caption, .. } => caption.as_deref(),
            MessageContent::Poll { question, .. } => Some(question),
            _ => None,
        }
    }

    /// Checks WhatsApp's limits.
    pub fn validate(&self) -> Result<(), ContentError> {
        let caption = |caption: &Option<String>| match caption {
            Some(c) => check_len("caption", c, 0, MAX_CAPTION_CHARS),
            None => Ok(()),
        };
        match self {
            MessageContent::Text { body, mentions, reply_to } => {
                check_len("text", body, 1, MAX_TEXT_CHARS)?;
                if mentions.len() > 256 || mentions.iter().any(|m| !crate::address::is_user(m)) {
                    return fail("mentions", "must be up to 256 user JIDs (…@s.whatsapp.net)");
                }
                if let Some(id) = reply_to {
                    check_len("reply_to", id, 1, 128)?;
                }
                Ok(())
            }
            MessageContent::Image { caption: c, .. } | MessageContent::Video { caption: c, .. } => caption(c),
            MessageContent::Document { file_name, caption: c, .. } => {
                check_len("file_name", file_name, 1, 255)?;
                if file_name.contains(['/', '\\', '\0']) {
                    return fail("file_name", "must be a plain file name");
                }
                caption(c)
            }
            MessageContent::Audio { .. } | MessageContent::Sticker { .. } => Ok(()),
            MessageContent::Location { latitude, longitude, name, address } => {
                if !(-90.0..=90.0).contains(latitude) || !latitude.is_finite() {
                    return fail("latitude", "must be between -90 and 90");
                }
                if !(-180.0..=180.0).contains(longitude) || !longitude.is_finite() {
                    return fail("longitude", "must be between -180 and 180");
                }
                if let Some(name) = name {
                    check_len("name", name, 0, 1000)?;
                }
                if let Some(address) = address {
                    check_len("address", address, 0, 1000)?;
                }
                Ok(())
            }
            MessageContent::Contact { display_name, vcard } => {
                check_len("name", display_name, 1, 256)?;
                check_len("vcard", vcard, 1, 16_384)?;
                if !vcard.trim_start().starts_with("BEGIN:VCARD") {
                    return fail("vcard", "must be a vCard (BEGIN:VCARD … END:VCARD)");
                }
                Ok(())
            }
            MessageContent::Reaction { message_id, emoji } => {
                check_len("message_id", message_id, 1, 128)?;
                // An empty emoji removes a reaction.
                check_len("emoji", emoji, 0, 16)
            }
            MessageContent::Poll { question, options, selectable_count } => {
                check_len("question", question, 1, 255)?;
                if !(2..=12).contains(&options.len()) {
                    return fail("options", "a poll needs 2 to 12 options");
                }
                for option in options {
                    check_len("options", option, 1, 100)?;
                }
                let mut unique = options.clone();
                unique.sort();
                unique.dedup();
                if unique.len() != options.len() {
                    return fail("options", "options must be distinct");
                }
                if *selectable_count < 1 || *selectable_count as usize > options.len() {
                    return fail("selectable_count", "must be between 1 and the number of options");
                }
                Ok(())
            }
            MessageContent::Buttons { body, footer, buttons } => {
                check_len("text", body, 1, 1024)?;
                if let Some(footer) = footer {
                    check_len("footer", footer, 0, 60)?;
                }
                if !(1..=3).contains(&buttons.len()) {
                    return fail("buttons", "1 to 3 buttons");
                }
                for button in buttons {
                    check_len("buttons.id", &button.id, 1, 256)?;
                    check_len("buttons.title", &button.title, 1, 20)?;
                }
                Ok(())
            }
            MessageContent::List { body, button_text, sections } => {
                check_len("text", body, 1, 1024)?;
                check_len("button_text", button_text, 1, 20)?;
                let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                if sections.is_empty() || !(1..=10).contains(&rows) {
                    return fail("sections", "1 to 10 rows in at least one section");
                }
                for section in sections {
                    check_len("sections.title", &section.title, 0, 24)?;
                    for row in &section.rows {
                        check_len("rows.id", &row.id, 1, 200)?;
                        check_len("rows.title", &row.title, 1, 24)?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Failed,
    Canceled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 7] = [
        MessageStatus::Queued,
        MessageStatus::Sending,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
        MessageStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Canceled => "canceled",
        }
    }

    /// Statuses a message may move out of towards `self`: it never goes backwards, and a
    /// message that failed or was canceled stays so (until an explicit retry).
    pub fn reachable_from(self) -> &'static [MessageStatus] {
        use MessageStatus::*;
        match self {
            Sent => &[Queued, Sending],
            Delivered => &[Queued, Sending, Sent],
            Read => &[Queued, Sending, Sent, Delivered],
            Failed => &[Queued, Sending],
            Canceled => &[Queued],
            Queued | Sending => &[],
        }
    }
}

impl std::str::FromStr for MessageStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown message status `{s}`"))
    }
}

impl std::fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> MessageContent {
        MessageContent::Text { body: body.into(), mentions: vec![], reply_to: None }
    }

    #[test]
    fn text_limits() {
        assert!(text("hi").validate().is_ok());
        assert_eq!(text("").validate().unwrap_err().field, "text");
        assert!(text(&"x".repeat(MAX_TEXT_CHARS)).validate().is_ok());
        assert!(text(&"x".repeat(MAX_TEXT_CHARS + 1)).validate().is_err());
    }

    #[test]
    fn polls_and_locations() {
        let poll = |options: &[&str], n| MessageContent::Poll {
            question: "Lunch?".into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            selectable_count: n,
        };
        assert!(poll(&["a", "b"], 1).validate().is_ok());
        assert_eq!(poll(&["a"], 1).validate().unwrap_err().field, "options");
        assert_eq!(poll(&["a", "a"], 1).validate().unwrap_err().field, "options");
        assert_eq!(poll(&["a", "b"], 3).validate().unwrap_err().field, "selectable_count");
        let at =
            |lat, lng| MessageContent::Location { latitude: lat, longitude: lng, name: None, address: None };
        assert!(at(-6.2, 106.8).validate().is_ok());
        assert_eq!(at(91.0, 0.0).validate().unwrap_err().field, "latitude");
        assert_eq!(at(0.0, f64::NAN).validate().unwrap_err().field, "longitude");
    }

    #[test]
    fn statuses_never_go_backwards() {
        assert!(MessageStatus::Delivered.reachable_from().contains(&MessageStatus::Sent));
        assert!(!MessageStatus::Sent.reachable_from().contains(&MessageStatus::Delivered));
        assert!(!MessageStatus::Failed.reachable_from().contains(&MessageStatus::Sent));
        assert!(MessageStatus::Queued.reachable_from().is_empty());
    }
}
