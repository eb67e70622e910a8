//! One-time-password verifications, per-phone failure counters, templates and settings.
//!
//! Every change of a verification's state is one conditional `UPDATE` (`… WHERE status =
//! 'pending'`), so concurrent requests cannot both approve a code or both take the last
//! attempt.

use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{OtpMode, OtpStatus};

use crate::{NewMessage, Result, parse_column};

mod lookups;
mod phone_failures;
mod templates;
mod verifications;

#[cfg(test)]
pub(crate) use lookups::otp_listing;

#[derive(Debug, Clone)]
pub struct OtpRecord {
    pub id: String,
    pub owner_id: String,
    pub phone: String,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub message_id: Option<String>,
    pub requested_mode: OtpMode,
    pub mode: OtpMode,
    pub code_mac: String,
    pub code_length: i64,
    pub locale: String,
    pub brand: Option<String>,
    pub template: Option<String>,
    pub status: OtpStatus,
    pub reason: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    pub sends: i64,
    pub ttl_ms: i64,
    pub expires_at: i64,
    pub last_sent_at: i64,
    pub api_key_id: Option<String>,
    pub client_ip: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub approved_at: Option<i64>,
}

impl OtpRecord {
    /// `pending` until it expires, even before the sweeper marks it.
    pub fn effective_status(&self, now: i64) -> OtpStatus {
        if self.status == OtpStatus::Pending && self.expires_at <= now {
            OtpStatus::Expired
        } else {
            self.status
        }
    }

    pub fn attempts_left(&self) -> i64 {
        (self.max_attempts - self.attempts).max(0)
    }
}

const COLUMNS: &str = "id, owner_id, phone, session_id, pool, message_id, requested_mode, mode, code_mac, \
                       code_length, locale, brand, template, status, reason, attempts, max_attempts, sends, \
                       ttl_ms, expires_at, last_sent_at, api_key_id, client_ip, created_at, updated_at, approved_at";

fn from_row(row: &AnyRow) -> Result<OtpRecord> {
    Ok(OtpRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        phone: row.try_get("phone")?,
        session_id: row.try_get("session_id")?,
        pool: row.try_get("pool")?,
        message_id: row.try_get("message_id")?,
        requested_mode: parse_column(&row.try_get::<String, _>("requested_mode")?, "otp.requested_mode")?,
        mode: parse_column(&row.try_get::<String, _>("mode")?, "otp.mode")?,
        code_mac: row.try_get("code_mac")?,
        code_length: row.try_get("code_length")?,
        locale: row.try_get("locale")?,
        brand: row.try_get("brand")?,
        template: row.try_get("template")?,
        status: parse_column(&row.try_get::<String, _>("status")?, "otp.status")?,
        reason: row.try_get("reason")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        sends: row.try_get("sends")?,
        ttl_ms: row.try_get("ttl_ms")?,
        expires_at: row.try_get("expires_at")?,
        last_sent_at: row.try_get("last_sent_at")?,
        api_key_id: row.try_get("api_key_id")?,
        client_ip: row.try_get("client_ip")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        approved_at: row.try_get("approved_at")?,
    })
}

/// A verification to store; `message` carries its code (push mode).
pub struct NewOtp<'a> {
    pub record: &'a OtpRecord,
    pub message: Option<NewMessage<'a>>,
}

/// A new code for a pending verification (resend, or the switch to inbound mode).
pub struct NewCode<'a> {
    pub id: &'a str,
    /// The session that sends it (may differ from the first one's).
    pub session_id: &'a str,
    pub code_mac: &'a str,
    pub mode: OtpMode,
    pub message: Option<NewMessage<'a>>,
    pub expires_at: i64,
    /// Refused unless fewer sends than this were made…
    pub max_sends: i64,
    /// …and the last one is at least this old.
    pub sent_before: i64,
}

#[derive(Debug, Default, Clone)]
pub struct OtpFilter {
    pub owner_id: Option<String>,
    pub phone: Option<String>,
    pub status: Option<OtpStatus>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneFailures {
    pub failures: i64,
    pub last_failure_at: i64,
}

#[derive(Debug, Clone)]
pub struct OtpTemplateRecord {
    pub name: String,
    pub locale: String,
    pub body: String,
    pub updated_at: i64,
}

const REPLACED: &str = "replaced by a newer verification";
