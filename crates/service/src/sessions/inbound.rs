//! Received messages: stored first, then announced (webhook `message.received`, the session's
//! stream, the message observer). A message that cannot be stored is not announced, and the
//! network delivers it again.

use wagate_engine::InboundMessage;

use super::runtime::Runtime;
use super::stream::StreamEvent;
use super::{SessionManager, inbound_json};
use crate::time::rfc3339;

/// The store's view of an engine's inbound message.
struct StoredInbound<'a>(&'a InboundMessage);

impl wagate_store::InboundFields for StoredInbound<'_> {
    fn wa_id(&self) -> &str {
        &self.0.id
    }
    fn chat(&self) -> &str {
        &self.0.chat
    }
    fn sender_phone(&self) -> Option<String> {
        Some(self.0.from.e164().to_owned())
    }
    fn sender_lid(&self) -> Option<&str> {
        self.0.from_lid.as_deref()
    }
    fn push_name(&self) -> Option<&str> {
        self.0.push_name.as_deref()
    }
    fn content(&self) -> &wagate_core::MessageContent {
        &self.0.content
    }
    fn quoted_id(&self) -> Option<&str> {
        self.0.quoted_id.as_deref()
    }
    fn sent_at(&self) -> i64 {
        self.0.timestamp
    }
}

impl SessionManager {
    /// Stores and announces a received message; false when it could not be stored.
    pub(super) async fn on_inbound(&self, runtime: &Runtime, message: InboundMessage) -> bool {
        let me = self.routing_record(runtime).await.and_then(|r| r.account.map(|a| a.phone));
        let Some(fence) = self.fence(&runtime.id) else {
            tracing::warn!(session = %runtime.id, "an inbound message after this node let the session go is left to its new node");
            return false;
        };
        match self.store().insert_inbound_message(&runtime.id, &fence, &StoredInbound(&message)).await {
            Ok(false) => return true, // seen before (the network may deliver twice)
            Ok(true) => {}
            Err(wagate_store::StoreError::Fenced { .. }) => {
                tracing::warn!(session = %runtime.id, "an inbound message after this node lost the session is left to its new node");
                self.fenced_off(&runtime.id).await;
                return false;
            }
            Err(err) => {
                tracing::error!(session = %runtime.id, error = %err, "cannot store inbound message");
                return false;
            }
        }
        let detail = serde_json::json!({ "id": message.id, "from": message.from.e164() });
        self.log(&runtime.id, "message_received", detail).await;
        let data = inbound_json::webhook_data(runtime, &message, me.as_deref());
        self.webhooks().emit(&runtime.owner_id, Some(&runtime.id), "message.received", data).await;
        if let Some(text) = message.content.text() {
            self.inner.pipeline.observer.inbound(&runtime.id, message.from.e164(), text);
        }
        runtime.publish(StreamEvent::MessageReceived {
            session_id: runtime.id.to_string(),
            message_id: message.id,
            from: message.from.e164().to_owned(),
            chat: message.chat,
            timestamp: rfc3339(message.timestamp),
        });
        true
    }
}
