//! What a session announces: the events of its live stream (SSE or WebSocket) and their
//! webhook form.

use serde::Serialize;
use tokio::sync::{broadcast, watch};
use wagate_core::SessionStatus;
use wagate_engine::Account;
use wagate_store::LinkedAccount;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// E.164.
    pub phone: String,
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

impl From<&LinkedAccount> for AccountView {
    fn from(a: &LinkedAccount) -> Self {
        AccountView { phone: a.phone.clone(), lid: a.lid.clone(), push_name: a.push_name.clone() }
    }
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView { phone: a.phone.e164().to_owned(), lid: a.lid.clone(), push_name: a.push_name.clone() }
    }
}

/// What a session's event stream (SSE or WebSocket) carries.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    Status { session_id: String, status: SessionStatus, reason: Option<String>, account: Option<AccountView> },
    Qr { session_id: String, qr: String, expires_at: String },
    PairCode { session_id: String, code: String, expires_at: String },
    Paired { session_id: String, account: AccountView },
    Error { session_id: String, code: String, message: String },
    MessageReceived { session_id: String, message_id: String, from: String, chat: String, timestamp: String },
    MessageStatus { session_id: String, message_id: String, status: String, reason: Option<String> },
    Deleted { session_id: String },
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Status { .. } => "status",
            StreamEvent::Qr { .. } => "qr",
            StreamEvent::PairCode { .. } => "pair_code",
            StreamEvent::Paired { .. } => "paired",
            StreamEvent::Error { .. } => "error",
            StreamEvent::MessageReceived { .. } => "message_received",
            StreamEvent::MessageStatus { .. } => "message_status",
            StreamEvent::Deleted { .. } => "deleted",
        }
    }
}

/// A session's event stream: its current state, then what happens next, until `ended`
/// changes (another node started running the session: the client should reconnect).
pub struct Subscription {
    pub snapshot: Vec<StreamEvent>,
    pub events: broadcast::Receiver<StreamEvent>,
    pub ended: watch::Receiver<u64>,
}

/// A stream event as webhook data: the same fields, without the `event` tag.
pub(super) fn webhook_data(event: &StreamEvent) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("event");
    }
    value
}
