//! `otp.*` webhook events of the OTP service (the code is never part of them), and marking a
//! verification expired with its event.

use wagate_core::OtpStatus;
use wagate_store::OtpRecord;

use super::OtpService;

impl OtpService {
    /// Marks a pending verification expired and tells the tenant's webhooks.
    pub(super) async fn expire(&self, record: &OtpRecord) {
        match self.store.set_otp_status(&record.id, OtpStatus::Expired, OtpStatus::Pending, None).await {
            Ok(true) => {
                let mut expired = record.clone();
                expired.status = OtpStatus::Expired;
                self.emit(&expired, "otp.expired", serde_json::json!({})).await;
            }
            Ok(false) => {}
            Err(err) => tracing::error!(otp = %record.id, error = %err, "cannot mark verification expired"),
        }
    }

    /// Queues an `otp.*` webhook event. The code is never part of it.
    pub(super) async fn emit(&self, record: &OtpRecord, event_type: &str, extra: serde_json::Value) {
        let mut data = serde_json::json!({
            "id": record.id,
            "phone": record.phone,
            "status": record.status,
            "mode": record.mode,
            "session_id": record.session_id,
            "message_id": record.message_id,
            "attempts": record.attempts,
            "sends": record.sends,
            "expires_at": crate::time::rfc3339(record.expires_at),
        });
        if let (Some(map), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
            map.extend(extra);
        }
        self.sessions.metrics().otp_event(event_type.strip_prefix("otp.").unwrap_or(event_type));
        let session = record.session_id.as_deref().and_then(|s| wagate_core::SessionId::parse(s).ok());
        self.sessions.webhooks().emit(&record.owner_id, session.as_ref(), event_type, data).await;
    }
}
