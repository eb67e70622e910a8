//! What the OTP service hears from the delivery pipeline: status changes of the messages that
//! carry codes, and inbound texts (codes sent back in inbound mode). Sessions publish here
//! through [`MessageObserver`] without knowing about one-time passwords; the OTP worker
//! consumes the channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use wagate_core::{MessageStatus, OtpMode, SessionId};
use wagate_store::OtpRecord;

use crate::sessions::MessageObserver;
use crate::time::now_ms;

/// How long a message is followed after it was queued (longer than any code lives).
const WATCH_FOR_MS: i64 = 60 * 60 * 1000;

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
    /// Message id → when it started to be followed, and whose code it carries.
    watched: Mutex<HashMap<String, (i64, WatchedOtp)>>,
    sender: mpsc::UnboundedSender<FeedEvent>,
}

impl OtpFeed {
    pub fn new() -> (Arc<OtpFeed>, mpsc::UnboundedReceiver<FeedEvent>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Arc::new(OtpFeed { watched: Mutex::new(HashMap::new()), sender }), receiver)
    }

    fn watched(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, WatchedOtp)>> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follow this message's status changes.
    pub fn watch(&self, message_id: &str, otp: WatchedOtp) {
        let now = now_ms();
        let mut watched = self.watched();
        if watched.len() >= 4096 && watched.len().is_power_of_two() {
            watched.retain(|_, (since, _)| now - *since < WATCH_FOR_MS);
        }
        watched.insert(message_id.to_owned(), (now, otp));
    }

    pub fn message_status(
        &self,
        message_id: &str,
        status: MessageStatus,
        reason: Option<&str>,
        restricted: bool,
    ) {
        let followed = {
            let mut watched = self.watched();
            if matches!(status, MessageStatus::Read | MessageStatus::Failed | MessageStatus::Canceled) {
                watched.remove(message_id).map(|(_, otp)| otp)
            } else {
                watched.get(message_id).map(|(_, otp)| otp.clone())
            }
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
