//! How a status change leaves the outbox: the outbox moves a message, then hands what moved to
//! the one [`StatusListener`] the sessions layer installed (webhook `message.status`, the
//! session's stream, the OTP feed).

use async_trait::async_trait;
use wagate_core::{MessageStatus, SessionId};

/// Whose message moved, and where to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub session_id: SessionId,
    pub owner_id: String,
    pub message_id: String,
    pub status: MessageStatus,
    pub reason: Option<String>,
    /// WhatsApp refused it with a reach-out restriction (463).
    pub restricted: bool,
}

/// The session a message belongs to, as the announcement needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub session_id: SessionId,
    pub owner_id: String,
}

impl Sender {
    pub(crate) fn change(
        &self,
        message_id: String,
        status: MessageStatus,
        reason: Option<String>,
        restricted: bool,
    ) -> StatusChange {
        StatusChange {
            session_id: self.session_id.clone(),
            owner_id: self.owner_id.clone(),
            message_id,
            status,
            reason,
            restricted,
        }
    }
}

/// Told about every status change the outbox made.
#[async_trait]
pub trait StatusListener: Send + Sync {
    async fn status_changed(&self, change: StatusChange);
}
