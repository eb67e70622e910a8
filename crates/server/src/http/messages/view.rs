//! How a message is shown to callers.

use serde::Serialize;
use utoipa::ToSchema;
use wagate_core::MessageContent;
use wagate_service::time::rfc3339;
use wagate_store::{MessageEventRecord, MessageRecord};

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub session_id: String,
    /// E.164 phone number or group JID.
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub content: MessageContent,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed` or `canceled`.
    pub status: String,
    /// Why it failed (or why it is waiting).
    pub reason: Option<String>,
    pub attempts: i64,
    /// `otp` messages jump the queue.
    pub priority: String,
    /// Buttons and lists reach linked devices unreliably.
    pub best_effort: bool,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    pub status_url: String,
    /// Every transition, oldest first (only on `GET /api/v1/messages/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<StatusChange>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChange {
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
}

impl From<&MessageRecord> for MessageView {
    fn from(m: &MessageRecord) -> Self {
        MessageView {
            id: m.id.clone(),
            session_id: m.session_id.to_string(),
            to: m.recipient.clone(),
            kind: m.content.kind().to_owned(),
            content: shown_content(&m.content),
            status: m.status.to_string(),
            reason: m.reason.clone(),
            attempts: m.attempts,
            priority: if m.priority > 0 { "otp" } else { "normal" }.to_owned(),
            best_effort: m.content.is_best_effort(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            sent_at: m.sent_at.map(rfc3339),
            delivered_at: m.delivered_at.map(rfc3339),
            read_at: m.read_at.map(rfc3339),
            status_url: format!("/api/v1/messages/{}", m.id),
            history: None,
        }
    }
}

/// The content as callers see it: the text of a one-time-password message is sealed in the
/// database and never shown.
fn shown_content(content: &MessageContent) -> MessageContent {
    match content {
        MessageContent::Text { body, mentions, reply_to } if wagate_core::otp::is_sealed(body) => {
            MessageContent::Text {
                body: "[one-time password: hidden]".into(),
                mentions: mentions.clone(),
                reply_to: reply_to.clone(),
            }
        }
        other => other.clone(),
    }
}

impl From<MessageEventRecord> for StatusChange {
    fn from(h: MessageEventRecord) -> Self {
        StatusChange { status: h.status.to_string(), reason: h.reason, at: rfc3339(h.created_at) }
    }
}
