//! What the analytics routes answer and the queries they take.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use wagate_service::analytics::{Dashboard, OtpFigures, SessionDay};
use wagate_service::time::rfc3339;
use wagate_store::ActivityRecord;

use super::super::otp::OtpView;

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    /// The sessions the caller may see, by status.
    pub sessions: BTreeMap<String, i64>,
    /// `today` (since midnight UTC), `7d` and `30d`.
    pub periods: Vec<PeriodView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeriodView {
    pub period: String,
    pub since: String,
    pub messages: MessageFiguresView,
    pub otp: OtpFiguresView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageFiguresView {
    pub total: i64,
    /// By the status they have now.
    pub by_status: BTreeMap<String, i64>,
    /// By type: text, image, location…
    pub by_type: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpFiguresView {
    /// Verifications created.
    pub sent: i64,
    pub approved: i64,
    pub pending: i64,
    pub expired: i64,
    /// Too many wrong codes, or the message could not be delivered.
    pub failed: i64,
    pub canceled: i64,
    /// `approved / sent` (0 to 1).
    pub conversion_rate: f64,
}

impl From<&OtpFigures> for OtpFiguresView {
    fn from(f: &OtpFigures) -> Self {
        OtpFiguresView {
            sent: f.sent,
            approved: f.approved,
            pending: f.pending,
            expired: f.expired,
            failed: f.failed,
            canceled: f.canceled,
            conversion_rate: f.conversion_rate,
        }
    }
}

impl From<&Dashboard> for DashboardView {
    fn from(d: &Dashboard) -> Self {
        DashboardView {
            sessions: d.sessions.clone(),
            periods: d
                .periods
                .iter()
                .map(|p| PeriodView {
                    period: p.period.to_owned(),
                    since: rfc3339(p.since),
                    messages: MessageFiguresView {
                        total: p.messages_total,
                        by_status: p.messages_by_status.clone(),
                        by_type: p.messages_by_type.clone(),
                    },
                    otp: OtpFiguresView::from(&p.otp),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatsView {
    pub session_id: String,
    pub status: String,
    /// One entry per UTC day, oldest first, days without traffic included.
    pub days: Vec<SessionDayView>,
    pub messages_total: i64,
    pub received_total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDayView {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub messages_total: i64,
    /// Messages created that day, by the status they have now.
    pub messages_by_status: BTreeMap<String, i64>,
    pub received: i64,
}

impl From<&SessionDay> for SessionDayView {
    fn from(day: &SessionDay) -> Self {
        SessionDayView {
            date: rfc3339(day.day)[..10].to_owned(),
            messages_total: day.messages_total,
            messages_by_status: day.messages_by_status.clone(),
            received: day.received,
        }
    }
}

/// A line of the activity log.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityLogEntry {
    pub id: String,
    pub created_at: String,
    /// E.g. `auth.signed_in`, `session.connected`, `api_key.created`, `message.failed`.
    pub kind: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    /// Username of who acted, or `system`.
    pub actor: String,
    pub actor_id: Option<String>,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

impl From<&ActivityRecord> for ActivityLogEntry {
    fn from(r: &ActivityRecord) -> Self {
        ActivityLogEntry {
            id: r.id.clone(),
            created_at: rfc3339(r.created_at),
            kind: r.kind.clone(),
            level: r.level.clone(),
            actor: r.actor.clone(),
            actor_id: r.actor_id.clone(),
            session_id: r.session_id.clone(),
            ip: r.ip.clone(),
            detail: r.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityLogPage {
    pub entries: Vec<ActivityLogEntry>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpLogPage {
    pub verifications: Vec<OtpView>,
    pub next_cursor: Option<String>,
    /// Verifications created since `since` (default: the last 7 days), by outcome.
    pub stats: OtpFiguresView,
}

// ---------- queries ----------

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    pub session_id: Option<String>,
    /// E.g. `session.connected`.
    pub kind: Option<String>,
    /// RFC 3339; at or after.
    pub since: Option<String>,
    /// RFC 3339; before.
    pub until: Option<String>,
    /// JSON: 1–200, default 50. CSV: 1–10000, default 1000.
    pub limit: Option<u32>,
    /// `next_cursor` (or `X-Next-Cursor`) of the previous page.
    pub cursor: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<ExportFormat>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OtpLogParams {
    pub phone: Option<String>,
    pub status: Option<String>,
    /// RFC 3339; created at or after.
    pub since: Option<String>,
    /// RFC 3339; created before.
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub format: Option<ExportFormat>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// 1–90, default 7.
    pub days: Option<u32>,
}

/// Days to keep of each kind (each 1 or more); what is not given keeps its configured period.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    pub messages_days: Option<u32>,
    pub received_messages_days: Option<u32>,
    pub webhook_events_days: Option<u32>,
    pub session_events_days: Option<u32>,
    pub activity_days: Option<u32>,
    pub otp_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupReport {
    /// Records deleted, by kind.
    pub deleted: BTreeMap<String, u64>,
}
