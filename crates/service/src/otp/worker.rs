//! The OTP worker: follows the delivery of code messages (webhooks, `auto` fallbacks,
//! failures), approves codes sent back in inbound mode, marks expired verifications and
//! applies the retention period.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use wagate_core::otp::codes_in;
use wagate_core::{MessageStatus, OtpMode, OtpStatus, SessionId};

use super::OtpService;
use super::auto::PushOutcome;
use crate::cluster::Cluster;
use crate::feed::{FeedEvent, WatchedOtp};
use crate::time::now_ms;

impl OtpService {
    pub async fn run(
        self: Arc<Self>,
        mut feed: mpsc::UnboundedReceiver<FeedEvent>,
        cluster: Arc<Cluster>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.follow_recent_messages().await;
        let mut sweep = tokio::time::interval(Duration::from_millis(self.config.sweep_interval_ms));
        loop {
            tokio::select! {
                event = feed.recv() => match event {
                    Some(event) => self.on_feed_event(event).await,
                    None => break,
                },
                _ = sweep.tick() => {
                    if cluster.runs_jobs() {
                        self.sweep_expired().await;
                        self.apply_retention().await;
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    /// After a restart: keep following the messages of verifications still in play.
    async fn follow_recent_messages(&self) {
        let since = now_ms() - self.config.max_ttl_secs as i64 * 1000 - 60_000;
        match self
            .store
            .otps(&wagate_store::OtpFilter { since: Some(since), limit: 100_000, ..Default::default() })
            .await
        {
            Ok(records) => {
                for record in records.iter().filter(|r| r.message_id.is_some()) {
                    self.feed.watch(record.message_id.as_deref().unwrap_or_default(), WatchedOtp::of(record));
                }
            }
            Err(err) => tracing::error!(error = %err, "cannot load recent verifications"),
        }
    }

    async fn on_feed_event(&self, event: FeedEvent) {
        match event {
            FeedEvent::Status { otp, message_id, status, reason, restricted } => {
                self.on_message_status(otp, &message_id, status, reason, restricted).await;
            }
            FeedEvent::Inbound { session_id, from, text } => {
                self.on_inbound_text(&session_id, &from, &text).await
            }
        }
    }

    async fn on_message_status(
        &self,
        otp: WatchedOtp,
        message_id: &str,
        status: MessageStatus,
        reason: Option<String>,
        restricted: bool,
    ) {
        let event_type = match status {
            MessageStatus::Sent => "otp.sent",
            MessageStatus::Delivered => "otp.delivered",
            MessageStatus::Read => "otp.read",
            MessageStatus::Failed => {
                return self.on_message_failed(otp, message_id, reason, restricted).await;
            }
            _ => return,
        };
        if status == MessageStatus::Sent
            && let Some(waiter) = self.waiters.take(&otp.verification_id)
        {
            let _ = waiter.send(PushOutcome::Sent);
        }
        let data = serde_json::json!({
            "id": otp.verification_id,
            "phone": otp.phone,
            "mode": otp.mode,
            "session_id": otp.session_id,
            "message_id": message_id,
            "delivery_status": status,
        });
        let session = otp.session_id.as_deref().and_then(|s| SessionId::parse(s).ok());
        self.sessions.webhooks().emit(&otp.owner_id, session.as_ref(), event_type, data).await;
    }

    async fn on_message_failed(
        &self,
        otp: WatchedOtp,
        message_id: &str,
        reason: Option<String>,
        restricted: bool,
    ) {
        let waiter = self.waiters.take(&otp.verification_id);
        if restricted && otp.requested_mode == OtpMode::Auto {
            // The sender is waiting and turns the verification into an inbound one.
            if let Some(waiter) = waiter
                && waiter.send(PushOutcome::Restricted).is_ok()
            {
                return;
            }
        } else if let Some(waiter) = waiter {
            let _ = waiter.send(PushOutcome::Failed);
        }
        let record = match self.store.otp_by_message(message_id).await {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(err) => return tracing::error!(error = %err, "cannot read verification"),
        };
        if record.effective_status(now_ms()) == OtpStatus::Expired {
            // The message was dropped because its code expired first: that is an expiry.
            return self.expire(&record).await;
        }
        let reason = reason.unwrap_or_else(|| "the message could not be sent".into());
        match self
            .store
            .set_otp_status(&record.id, OtpStatus::Failed, OtpStatus::Pending, Some(&reason))
            .await
        {
            Ok(true) => {
                let mut failed = record;
                failed.status = OtpStatus::Failed;
                failed.reason = Some(reason.clone());
                tracing::info!(otp = %failed.id, reason = %reason, "verification failed: its message was not delivered");
                let hint =
                    restricted.then_some("WhatsApp restricts this sender (463): resend with mode `inbound`");
                self.emit(
                    &failed,
                    "otp.failed",
                    serde_json::json!({ "reason": reason, "restricted": restricted, "hint": hint }),
                )
                .await;
            }
            Ok(false) => {}
            Err(err) => tracing::error!(otp = %record.id, error = %err, "cannot record verification failure"),
        }
    }

    /// Inbound mode: a message from the phone to the session, containing the code, approves.
    async fn on_inbound_text(&self, session_id: &SessionId, from: &str, text: &str) {
        let pending = match self.store.pending_inbound_otps(session_id.as_str(), from).await {
            Ok(pending) => pending,
            Err(err) => return tracing::error!(error = %err, "cannot read pending verifications"),
        };
        let now = now_ms();
        for record in pending.iter().filter(|r| r.effective_status(now) == OtpStatus::Pending) {
            let sent_back = codes_in(text, record.code_length as usize)
                .iter()
                .any(|code| code.matches(&self.pepper, &record.id, &record.code_mac));
            if !sent_back {
                continue;
            }
            match self.store.approve_otp(&record.id, now).await {
                Ok(true) => {
                    let _ = self.store.clear_phone_failures(&record.owner_id, &record.phone).await;
                    let mut approved = record.clone();
                    approved.status = OtpStatus::Approved;
                    approved.approved_at = Some(now);
                    tracing::info!(otp = %record.id, "verification approved by the user's message");
                    self.emit(&approved, "otp.approved", serde_json::json!({ "method": "inbound" })).await;
                }
                Ok(false) => {}
                Err(err) => tracing::error!(otp = %record.id, error = %err, "cannot approve verification"),
            }
        }
    }

    async fn sweep_expired(&self) {
        loop {
            let expired = match self.store.expire_otps(now_ms(), 500).await {
                Ok(expired) => expired,
                Err(err) => return tracing::error!(error = %err, "cannot mark expired verifications"),
            };
            for record in &expired {
                self.emit(record, "otp.expired", serde_json::json!({})).await;
            }
            if expired.len() < 500 {
                break;
            }
        }
    }

    async fn apply_retention(&self) {
        let cutoff = now_ms() - self.config.retention_days as i64 * 24 * 3_600_000;
        match self.store.delete_otps_before(cutoff).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "old verifications deleted (retention)"),
            Err(err) => tracing::error!(error = %err, "cannot apply the OTP retention"),
        }
        // Rate-limit keys counted in the database (several nodes) that are back at their full
        // allowance: the table holds only keys used within the last window.
        if let Err(err) = self.store.prune_rate_limits(now_ms()).await {
            tracing::warn!(error = %err, "cannot forget idle rate-limit keys");
        }
    }
}
