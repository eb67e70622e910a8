//! Rate limits of the OTP service: sends per phone, per client IP and per API key; verifies
//! per client IP. Each answers with how long to wait.

use std::time::Duration;

use super::{OtpConfig, OtpError};
use wagate_store::Store;

use crate::auth::Limit;

/// Who asks, for rate limiting: the end user's IP and the credential.
pub struct Caller {
    pub ip: String,
    /// The API key id, or the user id for login tokens.
    pub key: String,
}

pub(super) struct Limits {
    per_phone: Limit,
    per_ip: Limit,
    per_key: Limit,
    verifies_per_ip: Limit,
}

impl Limits {
    pub(super) fn new(store: &Store, config: &OtpConfig) -> Self {
        let window = Duration::from_secs(config.limit_window_secs);
        Limits {
            per_phone: Limit::new(store, "otp.phone", config.sends_per_phone, window),
            per_ip: Limit::new(store, "otp.ip", config.sends_per_ip, window),
            per_key: Limit::new(store, "otp.key", config.sends_per_api_key, window),
            verifies_per_ip: Limit::new(store, "otp.verify_ip", config.verifies_per_ip, window),
        }
    }

    pub(super) async fn check_send(
        &self,
        owner_id: &str,
        phone: &str,
        caller: &Caller,
    ) -> Result<(), OtpError> {
        let limited = |what: &'static str| move |wait| OtpError::RateLimited(what, wait);
        self.per_phone.check(&format!("{owner_id}/{phone}")).await?.map_err(limited("phone number"))?;
        self.per_ip.check(&caller.ip).await?.map_err(limited("client IP"))?;
        self.per_key.check(&caller.key).await?.map_err(limited("API key"))?;
        Ok(())
    }

    /// Counts a send that was accepted: a failure to count is logged, not the caller's error.
    pub(super) async fn record_send(&self, owner_id: &str, phone: &str, caller: &Caller) {
        let phone_key = format!("{owner_id}/{phone}");
        let counted = futures::try_join!(
            self.per_phone.record(&phone_key),
            self.per_ip.record(&caller.ip),
            self.per_key.record(&caller.key),
        );
        if let Err(err) = counted {
            tracing::warn!(error = %err, "cannot count a one-time password against its rate limits");
        }
    }

    pub(super) async fn check_verify(&self, caller: &Caller) -> Result<(), OtpError> {
        self.verifies_per_ip.check(&caller.ip).await?.map_err(|wait| OtpError::RateLimited("client IP", wait))
    }

    pub(super) async fn record_verify(&self, caller: &Caller) -> Result<(), OtpError> {
        Ok(self.verifies_per_ip.record(&caller.ip).await?)
    }
}
