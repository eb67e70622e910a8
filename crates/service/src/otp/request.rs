//! What callers hand the OTP service and what it answers: send requests, issued
//! verifications, verify targets and verdicts, verifications with their delivery.

use wagate_core::otp::OtpCode;
use wagate_core::{MessageStatus, OtpMode, OtpStatus, Phone, SessionId};
use wagate_store::OtpRecord;

/// What `send` asks for; the phone and the session id are already parsed.
pub struct SendRequest {
    pub phone: Phone,
    /// Send from this session (it must be the caller's)…
    pub session: Option<SessionId>,
    /// …or from a connected member of this pool.
    pub pool: Option<String>,
    pub length: Option<i64>,
    pub ttl_secs: Option<i64>,
    pub locale: Option<String>,
    /// As given: trimmed and checked by the service.
    pub brand: Option<String>,
    pub template: Option<String>,
    pub custom_code: Option<String>,
    pub mode: OtpMode,
}

/// A verification as issued: the record, plus what only the issuing response may carry.
pub struct Issued {
    pub record: OtpRecord,
    /// Only when the tenant enabled `return_code_in_response`.
    pub code: Option<OtpCode>,
    /// Inbound mode: the `wa.me` link with the text the user sends.
    pub link: Option<String>,
    /// Why `auto` mode fell back to inbound.
    pub fallback_reason: Option<String>,
}

pub enum VerifyTarget {
    Id(String),
    Phone(Phone),
}

pub struct Verdict {
    pub valid: bool,
    pub status: OtpStatus,
    pub attempts_left: i64,
    /// Set when verified by id (by phone, the answer must not reveal whether one exists).
    pub record: Option<OtpRecord>,
}

/// A verification with the status of the message carrying its code (none in inbound mode).
pub struct Tracked {
    pub record: OtpRecord,
    pub delivery_status: Option<MessageStatus>,
}

/// One page of the OTP log.
pub struct Listing {
    /// The verifications the caller may see, newest first.
    pub verifications: Vec<Tracked>,
    /// `(created_at, id)` of the last record when the page is full: where the next one starts.
    pub next: Option<(i64, String)>,
}

/// A phone's consecutive wrong codes and, while it is locked, until when.
pub struct PhoneStanding {
    pub failures: i64,
    pub locked_until: Option<i64>,
}

/// A message template: a tenant's own, or a built-in one (without `updated_at`).
pub struct TemplateEntry {
    pub name: String,
    pub locale: String,
    pub body: String,
    pub updated_at: Option<i64>,
}

/// The tenant's templates and the built-in ones.
pub struct TemplateCatalog {
    pub own: Vec<TemplateEntry>,
    pub built_in: Vec<TemplateEntry>,
}
