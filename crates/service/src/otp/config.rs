//! `[otp]` configuration: limits, lifetimes and timings of one-time passwords, and their
//! validation at startup.

use serde::Deserialize;

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
