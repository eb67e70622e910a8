//! How verifications and verdicts are shown: the JSON of the v1 routes (also the `data` of
//! the seed routes).

use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;
use wagate_core::OtpStatus;
use wagate_service::otp::{Issued, Tracked, Verdict};
use wagate_service::time::{now_ms, rfc3339};
use wagate_store::OtpRecord;

/// A verification. The code is never part of it, except in a send response when the tenant
/// enabled `return_code_in_response`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OtpView {
    pub id: String,
    /// `pending`, `approved`, `expired`, `canceled`, `max_attempts` or `failed`.
    pub status: String,
    /// E.164.
    pub to: String,
    pub phone: String,
    pub channel: &'static str,
    /// How the code travels: `push` or `inbound`.
    pub mode: String,
    /// What the request asked for (`auto` may become either).
    pub requested_mode: String,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub message_id: Option<String>,
    /// The message's id under seed 004's name.
    #[serde(rename = "jobId")]
    pub job_id: Option<String>,
    /// Status of the message carrying the code (`queued`, `sent`, `delivered`, `read`, `failed`…).
    pub delivery_status: Option<String>,
    pub attempts: i64,
    pub attempts_left: i64,
    pub max_attempts: i64,
    pub sends: i64,
    pub length: i64,
    pub locale: String,
    pub reason: Option<String>,
    pub expires_at: String,
    pub otp_expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub approved_at: Option<String>,
    /// Inbound mode: the `wa.me` link that opens WhatsApp with the text to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Inbound mode: the link as a QR code (PNG data URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    /// `auto` mode fell back to inbound, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Only with `return_code_in_response` (insecure; off by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Same as `code`, under seed 004's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// A human-readable summary (send responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl OtpView {
    fn new(record: &OtpRecord, delivery_status: Option<String>) -> Self {
        let status = record.effective_status(now_ms());
        OtpView {
            id: record.id.clone(),
            status: status.to_string(),
            to: record.phone.clone(),
            phone: record.phone.clone(),
            channel: "whatsapp",
            mode: record.mode.to_string(),
            requested_mode: record.requested_mode.to_string(),
            session_id: record.session_id.clone(),
            pool: record.pool.clone(),
            message_id: record.message_id.clone(),
            job_id: record.message_id.clone(),
            delivery_status,
            attempts: record.attempts,
            attempts_left: if status == OtpStatus::Pending { record.attempts_left() } else { 0 },
            max_attempts: record.max_attempts,
            sends: record.sends,
            length: record.code_length,
            locale: record.locale.clone(),
            reason: record.reason.clone(),
            expires_at: rfc3339(record.expires_at),
            otp_expires_at: rfc3339(record.expires_at),
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            approved_at: record.approved_at.map(rfc3339),
            link: None,
            qr: None,
            fallback_reason: None,
            code: None,
            otp: None,
            message: None,
        }
    }

    pub(crate) fn from_tracked(tracked: &Tracked) -> Self {
        OtpView::new(&tracked.record, tracked.delivery_status.map(|s| s.to_string()))
    }

    pub(crate) fn from_issued(issued: Issued) -> Self {
        let delivery_status = issued.record.message_id.as_ref().map(|_| "queued".to_owned());
        let mut view = OtpView::new(&issued.record, delivery_status);
        view.message = Some(match &issued.link {
            Some(_) => "Verification created: the user sends the code from the link".into(),
            None => "OTP request accepted and queued for sending".into(),
        });
        view.qr = issued.link.as_deref().map(|link| {
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(crate::qr::png(link))
            )
        });
        view.link = issued.link;
        view.fallback_reason = issued.fallback_reason;
        view.code = issued.code.as_ref().map(|c| c.reveal().to_owned());
        view.otp = view.code.clone();
        view
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    pub valid: bool,
    pub status: String,
    pub attempts_left: i64,
    /// Only when verified by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl From<&Verdict> for VerifyResult {
    fn from(v: &Verdict) -> Self {
        VerifyResult {
            valid: v.valid,
            status: v.status.to_string(),
            attempts_left: v.attempts_left,
            id: v.record.as_ref().map(|r| r.id.clone()),
        }
    }
}
