//! Rate limits of the OTP service: sends per phone, per client IP and per API key; verifies
//! per client IP. Each answers with how long to wait.

use std::time::Duration;

use super::{OtpConfig, OtpError};
use crate::auth::RateLimiter;

/// Who asks, for rate limiting: the end user's IP and the credential.
pub struct Caller {
    pub ip: String,
    /// The API key id, or the user id for login tokens.
    pub key: String,
}

pub(super) struct Limits {
    per_phone: RateLimiter,
    per_ip: RateLimiter,
    per_key: RateLimiter,
    verifies_per_ip: RateLimiter,
}

impl Limits {
    pub(super) fn new(config: &OtpConfig) -> Self {
        let window = Duration::from_secs(config.limit_window_secs);
        Limits {
            per_phone: RateLimiter::new(config.sends_per_phone, window),
            per_ip: RateLimiter::new(config.sends_per_ip, window),
            per_key: RateLimiter::new(config.sends_per_api_key, window),
            verifies_per_ip: RateLimiter::new(config.verifies_per_ip, window),
        }
    }

    pub(super) fn check_send(&self, owner_id: &str, phone: &str, caller: &Caller) -> Result<(), OtpError> {
        self.per_phone
            .check(&format!("{owner_id}/{phone}"))
            .map_err(|wait| OtpError::RateLimited("phone number", wait))?;
        self.per_ip.check(&caller.ip).map_err(|wait| OtpError::RateLimited("client IP", wait))?;
        self.per_key.check(&caller.key).map_err(|wait| OtpError::RateLimited("API key", wait))?;
        Ok(())
    }

    pub(super) fn record_send(&self, owner_id: &str, phone: &str, caller: &Caller) {
        self.per_phone.record(&format!("{owner_id}/{phone}"));
        self.per_ip.record(&caller.ip);
        self.per_key.record(&caller.key);
    }

    pub(super) fn check_verify(&self, caller: &Caller) -> Result<(), OtpError> {
        self.verifies_per_ip.check(&caller.ip).map_err(|wait| OtpError::RateLimited("client IP", wait))
    }

    pub(super) fn record_verify(&self, caller: &Caller) {
        self.verifies_per_ip.record(&caller.ip);
    }
}
