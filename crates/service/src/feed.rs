//! What the OTP service hears from the delivery pipeline: status changes of the messages that
//! carry codes, and inbound texts (codes sent back in inbound mode). Sessions publish here
//! through [`MessageObserver`] without knowing about one-time passwords; the OTP worker
//! consumes the channel.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use tokio::sync::mpsc;
use wagate_core::{MessageStatus, OtpMode, SessionId};
use wagate_store::OtpRecord;

use crate::sessions::MessageObserver;

/// How long a message is followed after it was queued (longer than any code lives).
const WATCH_FOR: Duration = Duration::from_secs(60 * 60);

/// What the worker needs to tell a code's delivery without reading the database.
#[derive(Debug, Clone)]
pub struct WatchedOtp {
    pub verification_id: String,
    pub owner_id: String,
    pub phone: String,
    pub session_id: Option<String>,
    pub mode: OtpMode,
    pub requested_mode: OtpMode,
}

impl WatchedOtp {
    pub fn of(record: &OtpRecord) -> Self {
        WatchedOtp {
            verification_id: record.id.clone(),
            owner_id: record.owner_id.clone(),
            phone: record.phone.clone(),
            session_id: record.session_id.clone(),
            mode: record.mode,
            requested_mode: record.requested_mode,
        }
    }
}

#[derive(Debug, Clone)]
pub enum FeedEvent {
    Status {
        otp: WatchedOtp,
        message_id: String,
        status: MessageStatus,
        reason: Option<String>,
        /// WhatsApp refused it with a reach-out restriction (463).
        restricted: bool,
    },
    Inbound {
        session_id: SessionId,
        /// E.164.
        from: String,
        text: String,
    },
}

pub struct OtpFeed {
    /// Message id → whose code it carries; each entry lives [`WATCH_FOR`] at most, so memory
    /// follows the codes of the last hour, and no request pays for scanning it.
    watched: Cache<String, WatchedOtp>,
    sender: mpsc::UnboundedSender<FeedEvent>,
}

impl OtpFeed {
    pub fn new() -> (Arc<OtpFeed>, mpsc::UnboundedReceiver<FeedEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let watched = Cache::builder().time_to_live(WATCH_FOR).build();
        (Arc::new(OtpFeed { watched, sender }), receiver)
    }

    /// Follow this message's status changes.
    pub fn watch(&self, message_id: &str, otp: WatchedOtp) {
        self.watched.insert(message_id.to_owned(), otp);
    }

    pub fn message_status(
        &self,
        message_id: &str,
        status: MessageStatus,
        reason: Option<&str>,
        restricted: bool,
    ) {
        let followed =
            if matches!(status, MessageStatus::Read | MessageStatus::Failed | MessageStatus::Canceled) {
                self.watched.remove(message_id)
            } else {
                self.watched.get(message_id)
            };
        if let Some(otp) = followed {
            let _ = self.sender.send(FeedEvent::Status {
                otp,
                message_id: message_id.to_owned(),
                status,
                reason: reason.map(str::to_owned),
                restricted,
            });
        }
    }

    /// A text someone sent to a session; only texts with digits can carry a code.
    pub fn inbound(&self, session_id: &SessionId, from: &str, text: &str) {
        if text.bytes().any(|b| b.is_ascii_digit()) {
            let _ = self.sender.send(FeedEvent::Inbound {
                session_id: session_id.clone(),
                from: from.to_owned(),
                text: text.to_owned(),
            });
        }
    }
}

impl MessageObserver for OtpFeed {
    fn message_status(
        &self,
        message_id: &str,
        status: MessageStatus,
        reason: Option<&str>,
        restricted: bool,
    ) {
        OtpFeed::message_status(self, message_id, status, reason, restricted);
    }

    fn inbound(&self, session_id: &SessionId, from: &str, text: &str) {
        OtpFeed::inbound(self, session_id, from, text);
    }
}
