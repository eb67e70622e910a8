//! One-time passwords over WhatsApp: issue, send, verify, resend, cancel.
//!
//! A verification and the message carrying its code are written in one transaction before the
//! caller hears back; the code itself exists only in that message, sealed (see [`seal`]), and
//! as an HMAC in the verification. Codes are never logged, never in webhooks, and returned to
//! the caller only when the tenant turned `return_code_in_response` on.

mod limits;
mod settings;
pub mod templates;
mod worker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::oneshot;
use wagate_core::otp::{CodeError, OtpCode};
use wagate_core::{MessageContent, OtpMode, OtpStatus, Phone, SessionStatus};
use wagate_store::{
    MessageRecord, NewCode, NewMessage, OtpFilter, OtpRecord, PhoneFailures, SessionRecord, Store, StoreError,
};

pub use crate::feed::{FeedEvent, OtpFeed, WatchedOtp};
pub use limits::Caller;
pub use settings::{OtpSettings, SettingsError};

use self::limits::Limits;
use self::templates::{TemplateError, Vars};
use super::group_commit::{GroupCommit, WriteError};
use super::sessions::{SessionError, SessionManager};
use crate::auth::Principal;
use crate::seal::Sealer;
use crate::time::now_ms;

/// Priority of one-time-password messages in a session's queue (ordinary messages: 0).
pub const OTP_PRIORITY: i64 = 1;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpConfig {
    /// Wrong codes allowed per verification.
    pub max_attempts: u32,
    /// Consecutive wrong codes for one phone (across verifications) before it is locked; at
    /// most 100. Only a correct code clears the count.
    pub phone_failure_cap: u32,
    /// How long a phone stays locked after its last wrong code once the cap is reached.
    pub phone_lock_secs: u64,
    pub default_ttl_secs: u64,
    /// At most 600 (10 minutes).
    pub max_ttl_secs: u64,
    pub resend_cooldown_secs: u64,
    /// Messages per verification, the first one included.
    pub max_sends: u32,
    /// Window of the send and verify rate limits below.
    pub limit_window_secs: u64,
    pub sends_per_phone: u32,
    pub sends_per_ip: u32,
    pub sends_per_api_key: u32,
    pub verifies_per_ip: u32,
    /// Header with the end user's IP, set by the backend that calls wagate (e.g.
    /// `X-End-User-IP`). Without it, the client IP is the caller's.
    pub client_ip_header: Option<String>,
    /// `auto` mode: how long a send waits for WhatsApp to accept or refuse the message.
    pub auto_wait_ms: u64,
    /// Verifications are deleted this long after they were created.
    pub retention_days: u64,
    /// How often expired verifications are marked.
    pub sweep_interval_ms: u64,
}

impl Default for OtpConfig {
    fn default() -> Self {
        OtpConfig {
            max_attempts: 5,
            phone_failure_cap: 20,
            phone_lock_secs: 3_600,
            default_ttl_secs: 300,
            max_ttl_secs: 600,
            resend_cooldown_secs: 30,
            max_sends: 5,
            limit_window_secs: 600,
            sends_per_phone: 10,
            sends_per_ip: 100,
            sends_per_api_key: 10_000,
            verifies_per_ip: 1_000,
            client_ip_header: None,
            auto_wait_ms: 10_000,
            retention_days: 7,
            sweep_interval_ms: 5_000,
        }
    }
}

impl OtpConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=100).contains(&self.phone_failure_cap) {
            return Err("phone_failure_cap must be 1 to 100".into());
        }
        if !(1..=100).contains(&self.max_attempts) || self.max_sends == 0 {
            return Err("max_attempts must be 1 to 100 and max_sends positive".into());
        }
        if self.max_ttl_secs == 0 || self.max_ttl_secs > 600 || self.default_ttl_secs == 0 {
            return Err("max_ttl_secs must be 1 to 600 and default_ttl_secs positive".into());
        }
        if self.default_ttl_secs > self.max_ttl_secs {
            return Err("default_ttl_secs must not exceed max_ttl_secs".into());
        }
        if self.limit_window_secs == 0 || self.sweep_interval_ms == 0 {
            return Err("limit_window_secs and sweep_interval_ms must be positive".into());
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error("{0}")]
    InvalidPhone(String),
    #[error("phone numbers of {0} are not allowed by your OTP settings")]
    CountryNotAllowed(String),
    #[error("length must be {min} to {max}", min = wagate_core::otp::MIN_LENGTH, max = wagate_core::otp::MAX_LENGTH)]
    InvalidLength,
    #[error("ttl must be 1 to {0} seconds")]
    InvalidTtl(u64),
    #[error("`{0}` is not a locale (expected e.g. en, id, pt-BR)")]
    InvalidLocale(String),
    #[error("no template `{0}` for this locale")]
    UnknownTemplate(String),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("custom_code needs the admin scope")]
    CustomCodeForbidden,
    #[error("custom_code: {0}")]
    InvalidCustomCode(String),
    #[error(transparent)]
    InvalidCode(CodeError),
    #[error("give the verification `id` or the `phone`")]
    MissingTarget,
    #[error("too many requests for this {0}; try again later")]
    RateLimited(&'static str, Duration),
    #[error("too many wrong codes for this phone; try again later")]
    PhoneLocked(Duration),
    #[error("verification not found")]
    NotFound,
    #[error("the verification is {0}")]
    NotPending(OtpStatus),
    #[error("wait before sending another code")]
    ResendCooldown(Duration),
    #[error("no more codes can be sent for this verification; start a new one")]
    ResendLimit,
    #[error("{0}")]
    NoSession(String),
    #[error("the session is not linked to a phone number yet")]
    SessionNotLinked,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl From<WriteError> for OtpError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Stopped => OtpError::ShuttingDown,
            WriteError::Store(err) => OtpError::Store(err),
        }
    }
}

/// A new verification with its message, as the group writer stores it.
type NewVerification = (OtpRecord, Option<MessageRecord>);

/// What `send` (and `resend`) asks for; phone and session are already parsed and authorized.
pub struct SendRequest {
    pub phone: Phone,
    pub session: Option<SessionRecord>,
    pub pool: Option<String>,
    pub length: Option<usize>,
    pub ttl_secs: Option<u64>,
    pub locale: Option<String>,
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

/// How a new code travels.
struct Carrier {
    /// Push: the message id and its sealed content.
    message: Option<(String, MessageContent)>,
    /// Inbound: the `wa.me` link.
    link: Option<String>,
}

impl Carrier {
    fn message_id(&self) -> Option<String> {
        self.message.as_ref().map(|(id, _)| id.clone())
    }
}

/// What the dispatcher's first attempt of an `auto` verification's message came to.
#[derive(Debug)]
enum PushOutcome {
    Sent,
    Restricted,
    Failed,
}

pub struct OtpService {
    store: Store,
    sessions: SessionManager,
    config: OtpConfig,
    pepper: [u8; 32],
    sealer: Arc<Sealer>,
    feed: Arc<OtpFeed>,
    limits: Limits,
    settings: settings::SettingsCache,
    turn: AtomicUsize,
    waiters: Mutex<HashMap<String, oneshot::Sender<PushOutcome>>>,
    /// New verifications of several requests, written together.
    writer: GroupCommit<NewVerification, Vec<String>>,
    /// Approvals of several requests, written together: the approval time, or `None` when the
    /// verification could no longer be approved.
    approvals: GroupCommit<String, Option<i64>>,
}

impl OtpService {
    pub fn new(
        store: Store,
        sessions: SessionManager,
        config: OtpConfig,
        pepper: [u8; 32],
        sealer: Arc<Sealer>,
        feed: Arc<OtpFeed>,
    ) -> Self {
        OtpService {
            limits: Limits::new(&config),
            settings: settings::SettingsCache::new(store.clone()),
            writer: verification_writer(store.clone()),
            approvals: approval_writer(store.clone()),
            store,
            sessions,
            config,
            pepper,
            sealer,
            feed,
            turn: AtomicUsize::new(0),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &OtpConfig {
        &self.config
    }

    pub async fn settings(&self, owner_id: &str) -> Result<Arc<OtpSettings>, OtpError> {
        Ok(self.settings.get(owner_id).await?)
    }

    pub async fn update_settings(
        &self,
        owner_id: &str,
        patch: serde_json::Value,
    ) -> Result<Arc<OtpSettings>, OtpError> {
        Ok(self.settings.update(owner_id, patch).await?)
    }

    /// Issues a verification: checks, limits, picks the session, stores the verification with
    /// its message, and (in `auto` mode) waits for WhatsApp's verdict on the push.
    pub async fn send(
        &self,
        principal: &Principal,
        caller: &Caller,
        request: SendRequest,
    ) -> Result<Issued, OtpError> {
        let owner = principal.user_id.as_str();
        let settings = self.settings(owner).await?;
        settings.check_country(&request.phone)?;
        let length = request.length.unwrap_or(wagate_core::otp::DEFAULT_LENGTH);
        if !(wagate_core::otp::MIN_LENGTH..=wagate_core::otp::MAX_LENGTH).contains(&length) {
            return Err(OtpError::InvalidLength);
        }
        let ttl_secs = request.ttl_secs.unwrap_or(self.config.default_ttl_secs);
        if ttl_secs == 0 || ttl_secs > self.config.max_ttl_secs {
            return Err(OtpError::InvalidTtl(self.config.max_ttl_secs));
        }
        let locale =
            request.locale.clone().or_else(|| settings.default_locale.clone()).unwrap_or_else(|| "en".into());
        if !templates::valid_locale(&locale) {
            return Err(OtpError::InvalidLocale(locale));
        }
        let custom_code = match &request.custom_code {
            None => None,
            Some(_) if !principal.scopes.allows(wagate_core::Scope::Admin) => {
                return Err(OtpError::CustomCodeForbidden);
            }
            Some(raw) => {
                let code = OtpCode::parse(raw).map_err(|e| OtpError::InvalidCustomCode(e.to_string()))?;
                if request.length.is_some_and(|l| l != code.len()) {
                    return Err(OtpError::InvalidCustomCode("its length differs from `length`".into()));
                }
                Some(code)
            }
        };
        let length = custom_code.as_ref().map_or(length, OtpCode::len);
        let phone = request.phone.e164().to_owned();
        self.limits.check_send(owner, &phone, caller)?;
        self.check_phone_lock(owner, &phone).await?;
        let pool = request
            .pool
            .clone()
            .or_else(|| request.session.is_none().then(|| settings.default_pool.clone()).flatten());
        let session = self.route(principal, request.session.clone(), pool.as_deref(), request.mode).await?;
        let brand = request.brand.clone().or_else(|| settings.brand.clone());

        let mode = match request.mode {
            OtpMode::Auto if self.sessions.is_restricted(&session) => OtpMode::Inbound,
            OtpMode::Auto => OtpMode::Push,
            other => other,
        };
        let id = wagate_core::new_id();
        let code = custom_code.unwrap_or_else(|| self.new_code(&session, &request.phone, length));
        let now = now_ms();
        let expires_at = now + ttl_secs as i64 * 1000;
        let mut record = OtpRecord {
            id: id.clone(),
            owner_id: owner.to_owned(),
            phone: phone.clone(),
            session_id: Some(session.id.to_string()),
            pool: pool.clone(),
            message_id: None,
            requested_mode: request.mode,
            mode,
            code_mac: code.mac(&self.pepper, &id),
            code_length: length as i64,
            locale: locale.clone(),
            brand: brand.clone(),
            template: request.template.clone(),
            status: OtpStatus::Pending,
            reason: None,
            attempts: 0,
            max_attempts: i64::from(self.config.max_attempts),
            sends: 1,
            ttl_ms: ttl_secs as i64 * 1000,
            expires_at,
            last_sent_at: now,
            api_key_id: principal.api_key_id.clone(),
            client_ip: Some(caller.ip.clone()),
            created_at: now,
            updated_at: now,
            approved_at: None,
        };
        // Rendered before anything is counted or stored: a broken template is the caller's error.
        let carrier = self.carrier(&session, &record, &code).await?;
        record.message_id = carrier.message_id();
        self.limits.record_send(owner, &phone, caller);
        let waiter =
            (request.mode == OtpMode::Auto && mode == OtpMode::Push).then(|| self.wait_for_push(&id));
        let message = self.outbox_message(&carrier, &session, &record).map(|m| m.record(record.created_at));
        let stored = self.writer.submit((record.clone(), message)).await;
        if let Err(err) = stored {
            self.forget_waiter(&id);
            return Err(err.into());
        }
        if let Some(message_id) = &record.message_id {
            self.feed.watch(message_id, WatchedOtp::of(&record));
            self.sessions.notify_urgent_work(&session);
        }
        tracing::info!(otp = %id, phone = %phone, session = %session.id, mode = %mode, "verification issued");
        let mut issued = Issued { record, code: None, link: carrier.link, fallback_reason: None };
        if let Some(waiter) = waiter {
            issued = self.settle_auto(issued, &session, waiter).await?;
        }
        if settings.return_code_in_response && issued.link.is_none() {
            issued.code = Some(code);
        }
        Ok(issued)
    }

    /// A new code for a pending verification, after the cooldown and within the send cap.
    /// `mode: inbound` switches a push verification to inbound (e.g. after a 463).
    pub async fn resend(
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
        self.limits.check_send(&record.owner_id, &record.phone, caller)?;
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
        self.limits.record_send(&record.owner_id, &record.phone, caller);
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

    pub async fn cancel(&self, record: &OtpRecord) -> Result<OtpRecord, OtpError> {
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

    /// Checks a code. By id, a verification that is no longer pending is an error; by phone,
    /// a phone without a pending verification answers like a wrong code.
    pub async fn verify(
        &self,
        principal: &Principal,
        caller: &Caller,
        target: VerifyTarget,
        raw_code: &str,
    ) -> Result<Verdict, OtpError> {
        self.limits.check_verify(caller)?;
        self.limits.record_verify(caller);
        let code = OtpCode::parse(raw_code).map_err(OtpError::InvalidCode)?;
        match target {
            VerifyTarget::Id(id) => {
                let found =
                    if id.len() > 64 { None } else { self.store.otp_with_phone_failures(&id).await? };
                let (record, failures) = match found {
                    Some((record, failures)) if may_see(principal, &record) => (record, failures),
                    _ => return Err(OtpError::NotFound),
                };
                let failures = self.refuse_locked(self.assess_failures(failures))?;
                let status = record.effective_status(now_ms());
                if status != OtpStatus::Pending {
                    if status == OtpStatus::Expired {
                        self.expire(&record).await;
                    }
                    return Err(OtpError::NotPending(status));
                }
                self.check(&record, &code, failures).await
            }
            VerifyTarget::Phone(phone) => {
                let owner = principal.user_id.as_str();
                let failures = self.check_phone_lock(owner, phone.e164()).await?;
                let pending = self.store.pending_otp(owner, phone.e164()).await?;
                let mut verdict = match pending {
                    Some(record) if record.effective_status(now_ms()) == OtpStatus::Pending => {
                        self.check(&record, &code, failures).await?
                    }
                    _ => {
                        let failures = self.store.add_phone_failure(owner, phone.e164(), now_ms()).await?;
                        let attempts_left = (i64::from(self.config.max_attempts) - failures).max(0);
                        let status =
                            if attempts_left == 0 { OtpStatus::MaxAttempts } else { OtpStatus::Pending };
                        Verdict { valid: false, status, attempts_left, record: None }
                    }
                };
                verdict.record = None;
                Ok(verdict)
            }
        }
    }

    /// Checks `code` against a pending verification. `failures`: the phone's consecutive
    /// failures as read before (a success clears them).
    async fn check(&self, record: &OtpRecord, code: &OtpCode, failures: i64) -> Result<Verdict, OtpError> {
        let now = now_ms();
        let right = code.len() as i64 == record.code_length
            && code.matches(&self.pepper, &record.id, &record.code_mac);
        if right {
            if let Some(now) = self.approvals.submit(record.id.clone()).await? {
                if failures > 0 {
                    self.store.clear_phone_failures(&record.owner_id, &record.phone).await?;
                }
                let approved = OtpRecord {
                    status: OtpStatus::Approved,
                    approved_at: Some(now),
                    updated_at: now,
                    ..record.clone()
                };
                tracing::info!(otp = %record.id, "verification approved");
                self.emit(&approved, "otp.approved", serde_json::json!({ "method": "code" })).await;
                return Ok(Verdict {
                    valid: true,
                    status: OtpStatus::Approved,
                    attempts_left: approved.attempts_left(),
                    record: Some(approved),
                });
            }
            // Lost a race (another request approved it, or its time ran out just now).
            let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
            return Ok(Verdict {
                valid: false,
                status: current.effective_status(now),
                attempts_left: current.attempts_left(),
                record: Some(current),
            });
        }
        self.store.add_phone_failure(&record.owner_id, &record.phone, now).await?;
        match self.store.record_otp_failure(&record.id, now).await? {
            Some(updated) => {
                if updated.status == OtpStatus::MaxAttempts {
                    tracing::info!(otp = %record.id, "verification locked after too many wrong codes");
                    self.emit(&updated, "otp.max_attempts", serde_json::json!({})).await;
                }
                Ok(Verdict {
                    valid: false,
                    status: updated.status,
                    attempts_left: updated.attempts_left(),
                    record: Some(updated),
                })
            }
            None => {
                let current = self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?;
                Ok(Verdict {
                    valid: false,
                    status: current.effective_status(now),
                    attempts_left: current.attempts_left(),
                    record: Some(current),
                })
            }
        }
    }

    /// A verification the caller may see (404 otherwise, like one that does not exist).
    pub async fn visible(&self, principal: &Principal, id: &str) -> Result<OtpRecord, OtpError> {
        if id.len() > 64 {
            return Err(OtpError::NotFound);
        }
        let record = self.store.otp(id).await?.ok_or(OtpError::NotFound)?;
        if may_see(principal, &record) { Ok(record) } else { Err(OtpError::NotFound) }
    }

    pub async fn list(&self, filter: &OtpFilter) -> Result<Vec<OtpRecord>, OtpError> {
        Ok(self.store.otps(filter).await?)
    }

    /// Consecutive wrong codes for the phone and, when locked, until when.
    pub async fn phone_failures(&self, owner_id: &str, phone: &str) -> Result<(i64, Option<i64>), OtpError> {
        Ok(self.assess_failures(self.store.phone_failures(owner_id, phone).await?))
    }

    /// A phone's consecutive failures and, when locked, until when.
    fn assess_failures(&self, failures: Option<PhoneFailures>) -> (i64, Option<i64>) {
        match failures {
            None => (0, None),
            Some(f) => {
                let locked_until = f.last_failure_at + self.config.phone_lock_secs as i64 * 1000;
                let locked =
                    f.failures >= i64::from(self.config.phone_failure_cap) && locked_until > now_ms();
                (f.failures, locked.then_some(locked_until))
            }
        }
    }

    pub async fn reset_phone_failures(&self, owner_id: &str, phone: &str) -> Result<bool, OtpError> {
        Ok(self.store.clear_phone_failures(owner_id, phone).await?)
    }

    pub async fn templates(&self, owner_id: &str) -> Result<Vec<wagate_store::OtpTemplateRecord>, OtpError> {
        Ok(self.store.otp_templates(owner_id).await?)
    }

    pub async fn put_template(
        &self,
        owner_id: &str,
        name: &str,
        locale: &str,
        body: &str,
    ) -> Result<(), OtpError> {
        if !templates::valid_locale(locale) {
            return Err(OtpError::InvalidLocale(locale.to_owned()));
        }
        templates::validate(body)?;
        self.store.put_otp_template(owner_id, name, locale, body).await?;
        self.settings.forget_templates(owner_id);
        Ok(())
    }

    pub async fn delete_template(&self, owner_id: &str, name: &str, locale: &str) -> Result<bool, OtpError> {
        let deleted = self.store.delete_otp_template(owner_id, name, locale).await?;
        self.settings.forget_templates(owner_id);
        Ok(deleted)
    }

    /// Refuses a locked phone; otherwise returns its consecutive failures.
    async fn check_phone_lock(&self, owner_id: &str, phone: &str) -> Result<i64, OtpError> {
        self.refuse_locked(self.phone_failures(owner_id, phone).await?)
    }

    fn refuse_locked(&self, (failures, locked_until): (i64, Option<i64>)) -> Result<i64, OtpError> {
        match locked_until {
            Some(until) => {
                Err(OtpError::PhoneLocked(Duration::from_millis((until - now_ms()).max(1000) as u64)))
            }
            None => Ok(failures),
        }
    }

    /// A code from the OS generator, unless the session's engine has a fixed code for test
    /// numbers.
    fn new_code(&self, session: &SessionRecord, phone: &Phone, length: usize) -> OtpCode {
        self.sessions.fixed_test_code(session, phone, length).unwrap_or_else(|| OtpCode::generate(length))
    }

    /// The session that sends: the one named, else a connected member of the pool (or of all
    /// the caller's sessions), preferring members WhatsApp does not restrict right now.
    async fn route(
        &self,
        principal: &Principal,
        explicit: Option<SessionRecord>,
        pool: Option<&str>,
        mode: OtpMode,
    ) -> Result<SessionRecord, OtpError> {
        if let Some(session) = explicit {
            if session.status != SessionStatus::Connected {
                return Err(SessionError::Engine(wagate_engine::EngineError::NotConnected).into());
            }
            return Ok(session);
        }
        let candidates: Vec<SessionRecord> = match pool {
            Some(pool) => {
                let members = self.store.pool_sessions(&principal.user_id, pool).await?;
                let members: Vec<_> = members.into_iter().filter(|s| principal.can_see(s)).collect();
                if members.is_empty() {
                    return Err(SessionError::UnknownPool(pool.to_owned()).into());
                }
                members
            }
            None => self
                .store
                .owner_sessions(&principal.user_id)
                .await?
                .into_iter()
                .filter(|s| principal.can_see(s))
                .collect(),
        };
        let connected: Vec<&SessionRecord> =
            candidates.iter().filter(|s| s.status == SessionStatus::Connected).collect();
        let unrestricted: Vec<&SessionRecord> =
            connected.iter().copied().filter(|s| !self.sessions.is_restricted(s)).collect();
        let choices =
            if unrestricted.is_empty() || mode == OtpMode::Inbound { &connected } else { &unrestricted };
        if choices.is_empty() {
            let scope = pool.map_or("of yours".to_owned(), |p| format!("in pool `{p}`"));
            return Err(OtpError::NoSession(format!("no session {scope} is connected")));
        }
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        Ok(choices[turn % choices.len()].clone())
    }

    /// The text of a template for this verification.
    async fn text(
        &self,
        owner_id: &str,
        name: &str,
        locale: &str,
        code: &OtpCode,
        brand: Option<&str>,
        ttl_secs: u64,
    ) -> Result<String, OtpError> {
        let body = self.settings.template(owner_id, name, locale).await?;
        let body = match body {
            Some(body) => body,
            None => templates::built_in(name, locale)
                .ok_or_else(|| OtpError::UnknownTemplate(name.to_owned()))?
                .to_owned(),
        };
        let minutes = ttl_secs.div_ceil(60) as i64;
        Ok(templates::render(&body, &Vars { code: code.reveal(), brand, minutes })?)
    }

    async fn sealed_message(&self, record: &OtpRecord, code: &OtpCode) -> Result<MessageContent, OtpError> {
        let name = record.template.as_deref().unwrap_or(templates::PUSH);
        let ttl_secs = (record.ttl_ms / 1000) as u64;
        let text = self
            .text(&record.owner_id, name, &record.locale, code, record.brand.as_deref(), ttl_secs)
            .await?;
        Ok(MessageContent::Text { body: self.sealer.seal(&text), mentions: Vec::new(), reply_to: None })
    }

    /// How a new code travels: a sealed message (push) or a link the user opens (inbound).
    async fn carrier(
        &self,
        session: &SessionRecord,
        record: &OtpRecord,
        code: &OtpCode,
    ) -> Result<Carrier, OtpError> {
        Ok(match record.mode {
            OtpMode::Inbound => {
                Carrier { message: None, link: Some(self.inbound_link(session, record, code).await?) }
            }
            _ => Carrier {
                message: Some((
                    wagate_core::message::new_message_id(),
                    self.sealed_message(record, code).await?,
                )),
                link: None,
            },
        })
    }

    /// The outbox row of a pushed code: first in its session's queue, dropped if it expires.
    fn outbox_message<'a>(
        &self,
        carrier: &'a Carrier,
        session: &'a SessionRecord,
        record: &'a OtpRecord,
    ) -> Option<NewMessage<'a>> {
        carrier.message.as_ref().map(|(id, content)| NewMessage {
            id,
            owner_id: &session.owner_id,
            session_id: &session.id,
            pool: record.pool.as_deref(),
            seq: self.sessions.delivery().next_seq(),
            priority: OTP_PRIORITY,
            recipient: &record.phone,
            content,
            expires_at: Some(record.expires_at),
            idempotency_key: None,
            request_hash: None,
        })
    }

    /// `https://wa.me/<session's number>?text=<the text with the code>`.
    async fn inbound_link(
        &self,
        session: &SessionRecord,
        record: &OtpRecord,
        code: &OtpCode,
    ) -> Result<String, OtpError> {
        let account = session.account.as_ref().ok_or(OtpError::SessionNotLinked)?;
        let number = account.phone.trim_start_matches('+');
        let ttl_secs = (record.ttl_ms / 1000) as u64;
        let text = self
            .text(
                &record.owner_id,
                templates::INBOUND,
                &record.locale,
                code,
                record.brand.as_deref(),
                ttl_secs,
            )
            .await?;
        Ok(format!("https://wa.me/{number}?text={}", percent_encode(&text)))
    }

    fn wait_for_push(&self, id: &str) -> oneshot::Receiver<PushOutcome> {
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), tx);
        rx
    }

    fn forget_waiter(&self, id: &str) -> bool {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(id).is_some()
    }

    fn take_waiter(&self, id: &str) -> Option<oneshot::Sender<PushOutcome>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }

    /// `auto` mode: waits for the push's fate; a reach-out restriction turns the verification
    /// into an inbound one with a new code.
    async fn settle_auto(
        &self,
        issued: Issued,
        session: &SessionRecord,
        mut waiter: oneshot::Receiver<PushOutcome>,
    ) -> Result<Issued, OtpError> {
        let id = issued.record.id.clone();
        let outcome =
            match tokio::time::timeout(Duration::from_millis(self.config.auto_wait_ms), &mut waiter).await {
                Ok(outcome) => outcome.ok(),
                // Still unanswered: unless the worker holds the waiter already, stop waiting.
                Err(_) if self.forget_waiter(&id) => None,
                Err(_) => waiter.await.ok(),
            };
        match outcome {
            Some(PushOutcome::Restricted) => {
                let code = self.new_code(
                    session,
                    &Phone::parse(&issued.record.phone, None)
                        .map_err(|e| OtpError::InvalidPhone(e.to_string()))?,
                    issued.record.code_length as usize,
                );
                let mut record = issued.record;
                let link = self.inbound_link(session, &record, &code).await?;
                record.code_mac = code.mac(&self.pepper, &record.id);
                let switched = self
                    .store
                    .replace_otp_code(NewCode {
                        id: &record.id,
                        session_id: session.id.as_str(),
                        code_mac: &record.code_mac,
                        mode: OtpMode::Inbound,
                        message: None,
                        expires_at: now_ms() + record.ttl_ms,
                        max_sends: i64::MAX,
                        sent_before: i64::MAX,
                    })
                    .await?;
                let record = match switched {
                    Some(record) => record,
                    None => self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?,
                };
                tracing::info!(otp = %record.id, "push refused by WhatsApp (463); switched to inbound");
                Ok(Issued {
                    record,
                    code: None,
                    link: Some(link),
                    fallback_reason: Some("reach_out_restricted".into()),
                })
            }
            Some(PushOutcome::Sent | PushOutcome::Failed) | None => {
                let record = self.store.otp(&id).await?.unwrap_or(issued.record);
                Ok(Issued { record, ..issued })
            }
        }
    }

    async fn expire(&self, record: &OtpRecord) {
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
    async fn emit(&self, record: &OtpRecord, event_type: &str, extra: serde_json::Value) {
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
        let session = record.session_id.as_deref().and_then(|s| wagate_core::SessionId::parse(s).ok());
        self.sessions.webhooks().emit(&record.owner_id, session.as_ref(), event_type, data).await;
    }
}

/// Whether the caller may see this verification: its owner (or an admin), through a key that
/// is not limited to other sessions.
fn may_see(principal: &Principal, record: &OtpRecord) -> bool {
    principal.may_access(&record.owner_id, record.session_id.as_deref())
}

/// Percent-encodes everything but unreserved characters (RFC 3986), as `wa.me` expects.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Several requests' verifications in one transaction. A tenant's phone appears at most once
/// per write, so that a newer verification replaces an older one in order.
fn verification_writer(store: Store) -> GroupCommit<NewVerification, Vec<String>> {
    GroupCommit::start(
        128,
        |batch, (new, _)| {
            !batch.iter().any(|(old, _)| old.owner_id == new.owner_id && old.phone == new.phone)
        },
        Arc::new(move |batch: Vec<NewVerification>| {
            let store = store.clone();
            Box::pin(async move { store.insert_otps(&batch).await })
        }),
    )
}

/// Several requests' approvals in one transaction. An id appears at most once per write, so
/// that of two concurrent right answers exactly one approves.
fn approval_writer(store: Store) -> GroupCommit<String, Option<i64>> {
    GroupCommit::start(
        128,
        |batch, id| !batch.contains(id),
        Arc::new(move |ids: Vec<String>| {
            let store = store.clone();
            Box::pin(async move {
                let now = now_ms();
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                let approved = store.approve_otps(&ids, now).await?;
                Ok(approved.into_iter().map(|approved| approved.then_some(now)).collect())
            })
        }),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_encoding() {
        assert_eq!(super::percent_encode("482913 is my code*"), "482913%20is%20my%20code%2A");
        assert_eq!(super::percent_encode("kode é"), "kode%20%C3%A9");
    }
}
