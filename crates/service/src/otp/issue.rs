//! Issuing a verification: the request's checks, limits, the session that sends, the record
//! and its message stored together, and (in `auto` mode) the wait for WhatsApp's verdict.

use wagate_core::otp::OtpCode;
use wagate_core::{MessageStatus, OtpMode, OtpStatus, Scope};
use wagate_store::OtpRecord;

use super::limits::Caller;
use super::request::{Issued, SendRequest};
use super::{OtpError, OtpService, templates};
use crate::auth::Principal;
use crate::feed::WatchedOtp;
use crate::time::now_ms;

/// Longest brand shown in a message, in characters.
const MAX_BRAND_CHARS: usize = 64;

impl OtpService {
    /// Issues a verification: checks, limits, picks the session, stores the verification with
    /// its message, and (in `auto` mode) waits for WhatsApp's verdict on the push.
    pub async fn send(
        &self,
        principal: &Principal,
        caller: &Caller,
        request: SendRequest,
    ) -> Result<Issued, OtpError> {
        let explicit = match &request.session {
            Some(id) => Some(self.visible_session(principal, id).await?),
            None => None,
        };
        if explicit.is_some() && request.pool.is_some() {
            return Err(OtpError::SessionAndPool);
        }
        let requested_length = match request.length {
            None => None,
            Some(n) => Some(usize::try_from(n).map_err(|_| OtpError::InvalidLength)?),
        };
        let requested_ttl = match request.ttl_secs {
            None => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| OtpError::InvalidTtl(self.config.max_ttl_secs))?),
        };
        let requested_brand = request.brand.as_deref().map(str::trim);
        if requested_brand.is_some_and(|b| b.is_empty() || b.chars().count() > MAX_BRAND_CHARS) {
            return Err(OtpError::InvalidBrand);
        }
        if request.template.as_deref().is_some_and(|name| !templates::valid_name(name)) {
            return Err(OtpError::InvalidTemplateName);
        }

        let owner = principal.user_id.as_str();
        let settings = self.settings(owner).await?;
        if let Some(region) = settings.refused_region(&request.phone) {
            return Err(OtpError::CountryNotAllowed(region));
        }
        let length = requested_length.unwrap_or(wagate_core::otp::DEFAULT_LENGTH);
        if !(wagate_core::otp::MIN_LENGTH..=wagate_core::otp::MAX_LENGTH).contains(&length) {
            return Err(OtpError::InvalidLength);
        }
        let ttl_secs = requested_ttl.unwrap_or(self.config.default_ttl_secs);
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
            Some(_) if !principal.scopes.allows(Scope::Admin) => {
                return Err(OtpError::CustomCodeForbidden);
            }
            Some(raw) => {
                let code = OtpCode::parse(raw).map_err(|e| OtpError::InvalidCustomCode(e.to_string()))?;
                if requested_length.is_some_and(|l| l != code.len()) {
                    return Err(OtpError::InvalidCustomCode("its length differs from `length`".into()));
                }
                Some(code)
            }
        };
        let length = custom_code.as_ref().map_or(length, OtpCode::len);
        let phone = request.phone.e164().to_owned();
        self.limits.check_send(owner, &phone, caller).await?;
        self.check_phone_lock(owner, &phone).await?;
        let pool = request
            .pool
            .clone()
            .or_else(|| explicit.is_none().then(|| settings.default_pool.clone()).flatten());
        let session = self.route(principal, explicit, pool.as_deref(), request.mode).await?;
        let brand = requested_brand.map(str::to_owned).or_else(|| settings.brand.clone());

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
        self.limits.record_send(owner, &phone, caller).await;
        let waiter =
            (request.mode == OtpMode::Auto && mode == OtpMode::Push).then(|| self.waiters.wait_for(&id));
        let message = self.outbox_message(&carrier, &session, &record).map(|m| m.record(record.created_at));
        let stored = self.writer.submit((record.clone(), message)).await;
        if let Err(err) = stored {
            self.waiters.forget(&id);
            return Err(err.into());
        }
        self.sessions.metrics().otp_event("issued");
        if let Some(message_id) = &record.message_id {
            self.sessions.metrics().message_status(MessageStatus::Queued);
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
}
