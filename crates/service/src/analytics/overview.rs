//! The figures of the dashboard's overview page, for what the caller may see, and whether the
//! database answers (for readiness).

use wagate_core::OtpStatus;
use wagate_store::{SessionRecord, StoreError};

use super::Analytics;
use crate::auth::Principal;
use crate::time::now_ms;

const HOUR: i64 = 3_600_000;

/// The overview's figures, as counted now.
#[derive(Debug)]
pub struct Figures {
    /// The sessions the caller may see.
    pub sessions: Vec<SessionRecord>,
    /// Messages per status (statuses without messages are absent).
    pub messages: Vec<(String, i64)>,
    /// One-time passwords of the last 24 hours per status.
    pub otp: Vec<(OtpStatus, i64)>,
    /// Messages per hour (start of the hour in unix ms) over the last 25 hours.
    pub per_hour: Vec<(i64, i64)>,
    /// Webhook deliveries given up on.
    pub dead_webhooks: i64,
}

impl Analytics {
    pub async fn figures(&self, principal: &Principal) -> Result<Figures, StoreError> {
        let owner = principal.owner_filter();
        let sessions = self.visible_sessions(principal).await?;
        let messages = self.store.message_counts(owner).await?;
        let since = now_ms() - 24 * HOUR;
        let otp = self.store.otp_counts(owner, since).await?;
        let per_hour = self.store.messages_per_hour(owner, since - HOUR).await?;
        let dead_webhooks = self.store.dead_webhook_deliveries(owner).await?;
        Ok(Figures { sessions, messages, otp, per_hour, dead_webhooks })
    }

    /// Whether the database answers.
    pub async fn database_reachable(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}
