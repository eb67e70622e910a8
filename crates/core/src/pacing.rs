//! How fast a session may send, to keep the account clear of WhatsApp's spam detection.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Pacing {
    /// Random delay between two messages, at least this long…
    #[serde(default)]
    pub min_delay_ms: u64,
    /// …and at most this long.
    #[serde(default)]
    pub max_delay_ms: u64,
    /// Show "typing…" before each message.
    #[serde(default)]
    pub typing: bool,
    /// At most this many messages per rolling hour.
    #[serde(default)]
    pub hourly_cap: Option<u32>,
    /// At most this many messages per rolling day.
    #[serde(default)]
    pub daily_cap: Option<u32>,
}

impl Pacing {
    pub const MAX_DELAY_MS: u64 = 10 * 60 * 1000;

    pub fn validate(&self) -> Result<(), String> {
        if self.min_delay_ms > self.max_delay_ms {
            return Err("min_delay_ms must not exceed max_delay_ms".into());
        }
        if self.max_delay_ms > Self::MAX_DELAY_MS {
            return Err(format!("max_delay_ms must be at most {}", Self::MAX_DELAY_MS));
        }
        if self.hourly_cap == Some(0) || self.daily_cap == Some(0) {
            return Err("caps must be positive (leave them out for no cap)".into());
        }
        Ok(())
    }

    /// No delay, no typing indicator and no cap: messages may go back to back.
    pub fn is_unpaced(&self) -> bool {
        self.max_delay_ms == 0 && !self.typing && self.hourly_cap.is_none() && self.daily_cap.is_none()
    }

    /// A delay drawn uniformly from `[min, max]`, in milliseconds.
    pub fn draw_delay_ms(&self) -> u64 {
        if self.max_delay_ms <= self.min_delay_ms {
            return self.min_delay_ms;
        }
        rand::random_range(self.min_delay_ms..=self.max_delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_range_and_bad_policies_are_refused() {
        let pacing = Pacing { min_delay_ms: 5_000, max_delay_ms: 20_000, ..Pacing::default() };
        assert!(pacing.validate().is_ok());
        assert!((0..200).map(|_| pacing.draw_delay_ms()).all(|d| (5_000..=20_000).contains(&d)));
        assert!(Pacing { min_delay_ms: 2, max_delay_ms: 1, ..Pacing::default() }.validate().is_err());
        assert!(Pacing { hourly_cap: Some(0), ..Pacing::default() }.validate().is_err());
        assert!(Pacing::default().is_unpaced());
        assert!(!pacing.is_unpaced());
        assert!(!Pacing { typing: true, ..Pacing::default() }.is_unpaced());
        assert!(!Pacing { daily_cap: Some(10), ..Pacing::default() }.is_unpaced());
        assert_eq!(Pacing::default().draw_delay_ms(), 0);
    }
}
