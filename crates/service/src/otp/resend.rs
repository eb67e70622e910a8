//! A new code for a pending verification (after the cooldown, within the send cap), and
//! canceling one.

use std::time::Duration;

use wagate_core::{OtpMode, OtpStatus, Phone};
use wagate_store::{NewCode, OtpRecord};

use super::limits::Caller;
use super::request::{Issued, Tracked};
use super::{OtpError, OtpService};
use crate::auth::Principal;
use crate::feed::WatchedOtp;
use crate::time::now_ms;

impl OtpService {
    /// A new code for the caller's verification `id`, after the cooldown and within the send
    /// cap. `mode: inbound` switches a push verification to inbound (e.g. after a 463).
    pub async fn resend(
        &self,
        principal: &Principal,
        caller: &Caller,
        id: &str,
        mode: Option<OtpMode>,
    ) -> Result<Issued, OtpError> {
        let record = self.visible(principal, id).await?;
        self.renew(principal, caller, record, mode).await
    }

    /// A new code for the tenant's latest verification of `phone` (seed routes).
    pub async fn resend_latest(
        &self,
        principal: &Principal,
        caller: &Caller,
        phone: &Phone,
    ) -> Result<Issued, OtpError> {
        let record = self.latest_record(principal, phone).await?;
        self.renew(principal, caller, record, None).await
    }

    async fn renew(
        &self,
        principal: &Principal,
        caller: &Caller,
        record: OtpRecord,
        mode: Option<OtpMode>,
    ) -> Result<Issued, OtpError> {
        let now = now_ms();
        let status = record.effective_status(now);
        if status != OtpStatus::Pending {
            return Err(OtpError::NotPending(status));
        }
        if record.sends >= i64::from(self.config.max_sends) {
            return Err(OtpError::ResendLimit);
        }
        let cooldown = self.config.resend_cooldown_secs as i64 * 1000;
        let ready_at = record.last_sent_at + cooldown;
        if ready_at > now {
            return Err(OtpError::ResendCooldown(Duration::from_millis((ready_at - now) as u64)));
        }
        self.limits.check_send(&record.owner_id, &record.phone, caller).await?;
        self.check_phone_lock(&record.owner_id, &record.phone).await?;
        let mode = match mode.unwrap_or(record.mode) {
            OtpMode::Auto => record.mode,
            other => other,
        };
        let explicit = match &record.session_id {
            Some(id) if record.pool.is_none() => {
                let id = wagate_core::SessionId::parse(id).map_err(|_| OtpError::NotFound)?;
                Some(self.sessions.get(&id).await?)
            }
            _ => None,
        };
        let session = self.route(principal, explicit, record.pool.as_deref(), mode).await?;
        self.limits.record_send(&record.owner_id, &record.phone, caller).await;
        let phone = Phone::parse(&record.phone, None).map_err(|e| OtpError::InvalidPhone(e.to_string()))?;
        let code = self.new_code(&session, &phone, record.code_length as usize);
        let mut renewed = OtpRecord {
            mode,
            session_id: Some(session.id.to_string()),
            code_mac: code.mac(&self.pepper, &record.id),
            expires_at: now + record.ttl_ms,
            ..record.clone()
        };
        let carrier = self.carrier(&session, &renewed, &code).await?;
        let message = self.outbox_message(&carrier, &session, &renewed);
        let replaced = self
            .store
            .replace_otp_code(NewCode {
                id: &record.id,
                session_id: session.id.as_str(),
                code_mac: &renewed.code_mac,
                mode,
                message,
                expires_at: renewed.expires_at,
                max_sends: i64::from(self.config.max_sends),
                sent_before: now - cooldown,
            })
            .await?;
        let Some(updated) = replaced else {
            // Another request changed it first: report what it is now.
            let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
            return Err(match current.effective_status(now_ms()) {
                OtpStatus::Pending if current.sends >= i64::from(self.config.max_sends) => {
                    OtpError::ResendLimit
                }
                OtpStatus::Pending => OtpError::ResendCooldown(Duration::from_millis(cooldown as u64)),
                other => OtpError::NotPending(other),
            });
        };
        renewed = updated;
        if let Some(message_id) = carrier.message_id() {
            self.feed.watch(&message_id, WatchedOtp::of(&renewed));
            self.sessions.notify_urgent_work(&session);
        }
        tracing::info!(otp = %renewed.id, sends = renewed.sends, mode = %mode, "new code sent");
        let settings = self.settings(&renewed.owner_id).await?;
        let code = (settings.return_code_in_response && carrier.link.is_none()).then_some(code);
        Ok(Issued { record: renewed, code, link: carrier.link, fallback_reason: None })
    }

    /// Cancels the caller's pending verification `id` (its code stops working; a queued
    /// message is withdrawn).
    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<Tracked, OtpError> {
        let record = self.visible(principal, id).await?;
        let canceled = self.cancel_record(&record).await?;
        self.tracked(canceled).await
    }

    /// Cancels the tenant's latest verification of `phone` (seed routes' "expire"); one that
    /// is no longer pending as stored is refused.
    pub async fn cancel_latest(&self, principal: &Principal, phone: &Phone) -> Result<Tracked, OtpError> {
        let record = self.latest_record(principal, phone).await?;
        if record.status != OtpStatus::Pending {
            return Err(OtpError::NotPending(record.status));
        }
        let canceled = self.cancel_record(&record).await?;
        self.tracked(canceled).await
    }

    /// Cancels a pending verification already found (see [`OtpService::visible`]).
    pub async fn cancel_record(&self, record: &OtpRecord) -> Result<OtpRecord, OtpError> {
        let now = now_ms();
        let status = record.effective_status(now);
        if status != OtpStatus::Pending
            || !self
                .store
                .set_otp_status(
                    &record.id,
                    OtpStatus::Canceled,
                    OtpStatus::Pending,
                    Some("canceled by request"),
                )
                .await?
        {
            let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
            return Err(OtpError::NotPending(current.effective_status(now)));
        }
        self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)
    }
}
