//! The `message.received` webhook's data.

use wagate_engine::InboundMessage;

use super::runtime::Runtime;
use crate::time::rfc3339;

/// `me`: the session's own number (E.164), when it is linked.
pub(super) fn webhook_data(
    runtime: &Runtime,
    message: &InboundMessage,
    me: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "session_id": runtime.id.as_str(),
        "id": message.id,
        "chat": message.chat,
        "from": message.from.e164(),
        "from_jid": message.from.jid(),
        "from_lid": message.from_lid,
        "push_name": message.push_name,
        "to": me,
        "to_jid": me.map(wagate_core::address::jid_of_stored),
        "type": message.content.kind(),
        "text": message.content.text(),
        "content": message.content,
        "quoted_id": message.quoted_id,
        "timestamp": rfc3339(message.timestamp),
        "timestamp_unix": message.timestamp / 1000,
    })
}
