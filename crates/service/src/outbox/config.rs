//! The outbox's configuration (`[delivery]`) and its retry policy.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long a message may stay `sending` before another attempt may take it.
    pub lease_ms: u64,
    /// How long to wait for the server's acknowledgement of a sent message.
    pub ack_timeout_ms: u64,
    /// Attempts before a transient failure becomes `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubles with every attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long a session that hit WhatsApp's reach-out restriction (463) stays out of pools.
    pub restriction_cooldown_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            lease_ms: 60_000,
            ack_timeout_ms: 30_000,
            max_attempts: 5,
            retry_base_ms: 2_000,
            retry_max_ms: 300_000,
            restriction_cooldown_ms: 3_600_000,
        }
    }
}

impl DeliveryConfig {
    /// Whether a message that failed transiently after `attempts` attempts may be tried again.
    pub fn may_retry(&self, attempts: i64) -> bool {
        attempts < i64::from(self.max_attempts)
    }

    /// Backoff before attempt `attempts + 1`: base · 2^(attempts-1), capped, with ±20 % jitter.
    pub fn retry_delay_ms(&self, attempts: i64) -> u64 {
        let exponent = attempts.clamp(1, 20) as u32 - 1;
        let delay = self.retry_base_ms.saturating_mul(1u64 << exponent).min(self.retry_max_ms);
        let jitter = delay / 5;
        if jitter == 0 { delay } else { delay - jitter + rand::random_range(0..=2 * jitter) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let config =
            DeliveryConfig { retry_base_ms: 1_000, retry_max_ms: 5_000, ..DeliveryConfig::default() };
        for (attempts, centre) in [(1, 1_000), (2, 2_000), (3, 4_000), (4, 5_000), (10, 5_000)] {
            let delay = config.retry_delay_ms(attempts);
            assert!(delay >= centre * 4 / 5 && delay <= centre * 6 / 5, "{attempts}: {delay}");
        }
        assert!(config.may_retry(4));
        assert!(!config.may_retry(5));
    }
}
