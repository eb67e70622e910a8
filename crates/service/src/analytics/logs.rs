//! The activity log, the error log, and cleaning old records on request.

use wagate_store::{ActivityFilter, ActivityRecord, Retained, StoreError};

use super::{Analytics, DAY_MS};
use crate::auth::Principal;
use crate::retention::RetentionConfig;
use crate::time::now_ms;

/// Which lines of a log to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub session_id: Option<String>,
    pub kind: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// `(created_at, id)` of the last line of the previous page.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

/// Days to keep of each kind on a cleanup (`None`: the configured period).
#[derive(Debug, Clone, Default)]
pub struct CleanupPeriods {
    pub messages_days: Option<u32>,
    pub received_messages_days: Option<u32>,
    pub webhook_events_days: Option<u32>,
    pub session_events_days: Option<u32>,
    pub activity_days: Option<u32>,
    pub otp_days: Option<u32>,
}

impl Analytics {
    /// Every line the caller may see: its own tenant's (all with admin rights), and for an API
    /// key limited to some sessions, only those sessions' lines.
    pub async fn activity(
        &self,
        principal: &Principal,
        query: &LogQuery,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        self.read_log(principal, query, None).await
    }

    /// Warnings and errors: sessions dropped or logged out, messages failed, webhooks given up,
    /// failed sign-ins.
    pub async fn errors(
        &self,
        principal: &Principal,
        query: &LogQuery,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        self.read_log(principal, query, Some(vec!["warning".into(), "error".into()])).await
    }

    async fn read_log(
        &self,
        principal: &Principal,
        query: &LogQuery,
        levels: Option<Vec<String>>,
    ) -> Result<Vec<ActivityRecord>, StoreError> {
        let filter = ActivityFilter {
            owner_id: principal.owner_filter().map(str::to_owned),
            sessions: principal.sessions.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect()),
            session_id: query.session_id.clone(),
            kind: query.kind.clone(),
            levels,
            since: query.since,
            until: query.until,
            before: query.before.clone(),
            limit: query.limit,
        };
        self.store.activity(&filter).await
    }

    /// Deletes what is past its period now, every kind of record; how many of each were
    /// deleted, by name.
    pub async fn cleanup(&self, periods: &CleanupPeriods) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let configured = self.retention.periods();
        let config = RetentionConfig {
            messages_days: periods.messages_days.unwrap_or(configured.messages_days),
            received_messages_days: periods
                .received_messages_days
                .unwrap_or(configured.received_messages_days),
            webhook_events_days: periods.webhook_events_days.unwrap_or(configured.webhook_events_days),
            session_events_days: periods.session_events_days.unwrap_or(configured.session_events_days),
            activity_log_days: periods.activity_days.unwrap_or(configured.activity_log_days),
            ..configured.clone()
        };
        let mut report: Vec<(&'static str, u64)> =
            self.retention.clean(&config).await.into_iter().map(|(kind, n)| (name(kind), n)).collect();
        let otp_days = periods.otp_days.unwrap_or(self.otp_days);
        if otp_days > 0 {
            let deleted = self.store.delete_otps_before(now_ms() - i64::from(otp_days) * DAY_MS).await?;
            report.push(("otp", deleted));
        }
        Ok(report)
    }
}

fn name(kind: Retained) -> &'static str {
    match kind {
        Retained::Messages => "messages",
        Retained::ReceivedMessages => "received_messages",
        Retained::WebhookEvents => "webhook_events",
        Retained::SessionEvents => "session_events",
        Retained::ActivityLog => "activity",
    }
}
