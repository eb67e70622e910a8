//! Announces the outbox's status changes: the message observer, the webhook `message.status`,
//! the session's stream. The outbox calls it after every change it made.

use std::sync::Weak;

use async_trait::async_trait;

use super::stream::{StreamEvent, webhook_data};
use super::{Inner, SessionManager};
use crate::outbox::{StatusChange, StatusListener};

/// Holds the session manager weakly: the outbox it is installed in belongs to the manager.
pub(super) struct Announcer(pub Weak<Inner>);

#[async_trait]
impl StatusListener for Announcer {
    async fn status_changed(&self, change: StatusChange) {
        let Some(inner) = self.0.upgrade() else { return };
        SessionManager { inner }.announce_status(change).await;
    }
}

impl SessionManager {
    async fn announce_status(&self, change: StatusChange) {
        let StatusChange { session_id, owner_id, message_id, status, reason, restricted } = change;
        self.inner.pipeline.observer.message_status(&message_id, status, reason.as_deref(), restricted);
        let event = StreamEvent::MessageStatus {
            session_id: session_id.to_string(),
            message_id,
            status: status.to_string(),
            reason,
        };
        self.webhooks().emit(&owner_id, Some(&session_id), "message.status", webhook_data(&event)).await;
        if let Some(runtime) = self.live_runtime(&session_id) {
            runtime.publish(event);
        }
    }
}
