//! Timestamps: stored as Unix milliseconds, shown as RFC 3339.

use chrono::{DateTime, SecondsFormat};

pub fn rfc3339(unix_ms: i64) -> String {
    DateTime::from_timestamp_millis(unix_ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_ms() -> i64 {
    wagate_store::now_ms()
}
