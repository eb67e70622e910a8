//! Timestamps: stored as Unix milliseconds, shown as RFC 3339.

use chrono::{DateTime, SecondsFormat};

pub fn rfc3339(unix_ms: i64) -> String {
    DateTime::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_ms() -> i64 {
    wagate_store::now_ms()
}

/// Strictly increasing numbers that follow the clock (microseconds): two calls never return
/// the same value, even within one microsecond, so they order rows created in one process.
#[derive(Default)]
pub struct Sequence(std::sync::atomic::AtomicI64);

impl Sequence {
    pub fn next(&self) -> i64 {
        use std::sync::atomic::Ordering;
        let now = now_ms() * 1000
            + std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::from(d.subsec_micros() % 1000))
                .unwrap_or_default();
        let mut last = self.0.load(Ordering::SeqCst);
        loop {
            let next = now.max(last + 1);
            match self.0.compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return next,
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sequences_strictly_increase() {
        let seq = super::Sequence::default();
        let values: Vec<i64> = (0..1000).map(|_| seq.next()).collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]));
        assert!((values[0] / 1000 - super::now_ms()).abs() < 1000, "close to the clock");
    }
}
