//! What the operator reads: the dashboard's figures over today, 7 and 30 days, a session's
//! figures per day, the activity and error logs, and cleaning old records on request. The
//! dashboard's overview page reads the same figures.

mod logs;
mod overview;

use std::collections::BTreeMap;

use wagate_core::OtpStatus;
use wagate_store::{SessionRecord, Store, StoreError};

pub use logs::{CleanupPeriods, LogQuery};
pub use overview::Figures;

use crate::auth::Principal;
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::time::now_ms;

const DAY_MS: i64 = 24 * 3_600_000;
/// The longest per-day series a session's figures cover.
pub const MAX_DAYS: u32 = 90;

/// Figures over one period.
#[derive(Debug, Clone, Default)]
pub struct PeriodFigures {
    /// `today` (since midnight UTC), `7d` or `30d`.
    pub period: &'static str,
    pub since: i64,
    pub messages_total: i64,
    pub messages_by_status: BTreeMap<String, i64>,
    pub messages_by_type: BTreeMap<String, i64>,
    pub otp: OtpFigures,
}

/// One-time passwords created over a period, by outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtpFigures {
    pub sent: i64,
    pub approved: i64,
    pub pending: i64,
    pub expired: i64,
    /// Too many wrong codes, or the message could not be delivered.
    pub failed: i64,
    pub canceled: i64,
    /// `approved / sent`, 0 when nothing was sent.
    pub conversion_rate: f64,
}

impl OtpFigures {
    pub fn from_counts(counts: &[(OtpStatus, i64)]) -> Self {
        let mut figures = OtpFigures::default();
        for &(status, n) in counts {
            figures.sent += n;
            match status {
                OtpStatus::Approved => figures.approved += n,
                OtpStatus::Pending => figures.pending += n,
                OtpStatus::Expired => figures.expired += n,
                OtpStatus::MaxAttempts | OtpStatus::Failed => figures.failed += n,
                OtpStatus::Canceled => figures.canceled += n,
            }
        }
        if figures.sent > 0 {
            figures.conversion_rate = figures.approved as f64 / figures.sent as f64;
        }
        figures
    }
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The sessions the caller may see, by status.
    pub sessions: BTreeMap<String, i64>,
    pub periods: Vec<PeriodFigures>,
}

/// One day of a session (UTC).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionDay {
    /// Start of the day, Unix ms.
    pub day: i64,
    /// Messages created that day, by their status now.
    pub messages_by_status: BTreeMap<String, i64>,
    pub messages_total: i64,
    pub received: i64,
}

#[derive(Clone)]
pub struct Analytics {
    store: Store,
    retention: Retention,
    /// Days one-time passwords are kept (`[otp] retention_days`).
    otp_days: u32,
}

impl Analytics {
    pub fn new(store: Store, retention: Retention, otp_days: u32) -> Self {
        Analytics { store, retention, otp_days }
    }

    /// Prometheus' text: `metrics`' counters with the figures read from the database now.
    pub async fn metrics_text(&self, metrics: &Metrics) -> Result<String, StoreError> {
        metrics.render(&self.store).await
    }

    pub async fn dashboard(&self, principal: &Principal) -> Result<Dashboard, StoreError> {
        let owner = principal.owner_filter();
        let mut sessions = BTreeMap::new();
        for session in self.visible_sessions(principal).await? {
            *sessions.entry(session.status.to_string()).or_default() += 1;
        }
        let now = now_ms();
        let windows = [("today", now - now % DAY_MS), ("7d", now - 7 * DAY_MS), ("30d", now - 30 * DAY_MS)];
        let mut periods = Vec::with_capacity(windows.len());
        for (period, since) in windows {
            let mut figures = PeriodFigures { period, since, ..PeriodFigures::default() };
            for (status, kind, n) in self.store.message_counts_since(owner, since).await? {
                figures.messages_total += n;
                *figures.messages_by_status.entry(status).or_default() += n;
                *figures.messages_by_type.entry(kind).or_default() += n;
            }
            figures.otp = OtpFigures::from_counts(&self.store.otp_counts(owner, since).await?);
            periods.push(figures);
        }
        Ok(Dashboard { sessions, periods })
    }

    /// The session's last `days` days (today included), oldest first, every day present.
    pub async fn session_days(
        &self,
        session: &SessionRecord,
        days: u32,
    ) -> Result<Vec<SessionDay>, StoreError> {
        let days = i64::from(days.clamp(1, MAX_DAYS));
        let today = now_ms() - now_ms() % DAY_MS;
        let since = today - (days - 1) * DAY_MS;
        let mut series: Vec<SessionDay> =
            (0..days).map(|n| SessionDay { day: since + n * DAY_MS, ..SessionDay::default() }).collect();
        let index = |day: i64| usize::try_from((day - since) / DAY_MS).ok();
        for (day, status, n) in self.store.session_messages_per_day(session.id.as_str(), since).await? {
            if let Some(entry) = index(day).and_then(|i| series.get_mut(i)) {
                entry.messages_total += n;
                *entry.messages_by_status.entry(status).or_default() += n;
            }
        }
        for (day, n) in self.store.session_received_per_day(session.id.as_str(), since).await? {
            if let Some(entry) = index(day).and_then(|i| series.get_mut(i)) {
                entry.received += n;
            }
        }
        Ok(series)
    }

    /// One-time passwords created since `since`, by outcome.
    pub async fn otp_figures(&self, principal: &Principal, since: i64) -> Result<OtpFigures, StoreError> {
        Ok(OtpFigures::from_counts(&self.store.otp_counts(principal.owner_filter(), since).await?))
    }

    async fn visible_sessions(&self, principal: &Principal) -> Result<Vec<SessionRecord>, StoreError> {
        let sessions = self.store.sessions(principal.owner_filter()).await?;
        Ok(sessions.into_iter().filter(|s| principal.can_see(s)).collect())
    }
}
