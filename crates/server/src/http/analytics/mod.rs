//! `/api/v1/analytics` and seed 001's `/api/analytics`: the dashboard's figures, a session's
//! figures per day, the activity, OTP and error logs (JSON pages or CSV), and cleaning old
//! records on request.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::Serialize;
use serde_json::{Value, json};
use wagate_core::Scope;
use wagate_service::analytics::{CleanupPeriods, LogQuery};
use wagate_service::auth::Principal;
use wagate_service::time::{now_ms, rfc3339};

use super::extract::{Auth, JsonOrEmpty, QueryParams, page_cursor, parse_page_cursor};
use super::messages::parse_time;
use super::otp::{OtpListQuery, OtpView, otp_filter};
use super::sessions::authorized_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};

mod views;

pub use views::{
    ActivityLogEntry, ActivityLogPage, CleanupReport, CleanupRequest, DashboardView, ExportFormat, LogParams,
    OtpFiguresView, OtpLogPage, OtpLogParams, SessionDayView, SessionStatsView, StatsParams,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/analytics/dashboard", get(dashboard))
        .route("/analytics/sessions/{id}/stats", get(session_stats))
        .route("/analytics/logs/activity", get(activity_log))
        .route("/analytics/logs/otp", get(otp_log))
        .route("/analytics/logs/errors", get(error_log))
        .route("/analytics/cleanup", post(cleanup))
}

/// Seed 001's paths, answering in its `{success, data}` envelope (CSV exports as they are).
pub fn seed_routes() -> Router<AppState> {
    Router::new()
        .route("/api/analytics/dashboard", get(seed_dashboard))
        .route("/api/analytics/sessions/{id}/stats", get(seed_session_stats))
        .route("/api/analytics/logs/activity", get(seed_activity_log))
        .route("/api/analytics/logs/otp", get(seed_otp_log))
        .route("/api/analytics/logs/errors", get(seed_error_log))
        .route("/api/analytics/cleanup", post(seed_cleanup))
}

const DAY_MS: i64 = 24 * 3_600_000;
/// Rows of one CSV export at most (page on with `X-Next-Cursor`).
const CSV_MAX_ROWS: u32 = 10_000;

fn limit_for(format: ExportFormat, limit: Option<u32>) -> ApiResult<u32> {
    let (default, max) = if format == ExportFormat::Csv { (1_000, CSV_MAX_ROWS) } else { (50, 200) };
    let limit = limit.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_query", format!("limit must be between 1 and {max}")))
    }
}

fn parse_cursor(cursor: Option<&str>) -> ApiResult<Option<(i64, String)>> {
    cursor.map(parse_page_cursor).transpose()
}

fn log_query(params: &LogParams) -> ApiResult<(LogQuery, ExportFormat)> {
    let format = params.format.unwrap_or_default();
    let query = LogQuery {
        session_id: params.session_id.clone(),
        kind: params.kind.clone(),
        since: params.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
        until: params.until.as_deref().map(|v| parse_time("until", v)).transpose()?,
        before: parse_cursor(params.cursor.as_deref())?,
        limit: limit_for(format, params.limit)?,
    };
    Ok((query, format))
}

fn next_cursor<T>(rows: &[T], limit: u32, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    (rows.len() as u32 == limit).then(|| rows.last().map(key)).flatten().map(|(at, id)| page_cursor(at, id))
}

// ---------- what both route sets answer ----------

enum Answer<T> {
    Page(T),
    Csv { body: String, name: &'static str, next: Option<String> },
}

impl<T: Serialize> Answer<T> {
    fn into_response_with(self, wrap: impl FnOnce(Value) -> Value) -> Response {
        match self {
            Answer::Page(page) => {
                JsonResponse(wrap(serde_json::to_value(page).unwrap_or_default())).into_response()
            }
            Answer::Csv { body, name, next } => {
                let mut response = (StatusCode::OK, body).into_response();
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
                if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
                    headers.insert(header::CONTENT_DISPOSITION, value);
                }
                if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n).ok()) {
                    headers.insert("x-next-cursor", next);
                }
                response
            }
        }
    }
}

fn csv_text(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> ApiResult<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |err: csv::Error| ApiError::internal("cannot write CSV", err);
    writer.write_record(header).map_err(internal)?;
    for row in rows {
        writer.write_record(&row).map_err(internal)?;
    }
    let bytes = writer.into_inner().map_err(|err| ApiError::internal("cannot write CSV", err))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn dashboard_view(state: &AppState, principal: &Principal) -> ApiResult<DashboardView> {
    principal.require(Scope::Read)?;
    Ok(DashboardView::from(&state.analytics.dashboard(principal).await?))
}

async fn stats_view(
    state: &AppState,
    principal: &Principal,
    id: &str,
    days: Option<u32>,
) -> ApiResult<SessionStatsView> {
    let record = authorized_session(state, principal, id, Scope::Read).await?;
    let days = days.unwrap_or(7);
    if !(1..=wagate_service::analytics::MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request("invalid_query", "days must be between 1 and 90"));
    }
    let series = state.analytics.session_days(&record, days).await?;
    Ok(SessionStatsView {
        session_id: record.id.to_string(),
        status: record.status.to_string(),
        messages_total: series.iter().map(|d| d.messages_total).sum(),
        received_total: series.iter().map(|d| d.received).sum(),
        days: series.iter().map(SessionDayView::from).collect(),
    })
}

async fn log_answer(
    state: &AppState,
    principal: &Principal,
    params: &LogParams,
    errors_only: bool,
) -> ApiResult<Answer<ActivityLogPage>> {
    principal.require(Scope::Read)?;
    let (query, format) = log_query(params)?;
    let rows = if errors_only {
        state.analytics.errors(principal, &query).await?
    } else {
        state.analytics.activity(principal, &query).await?
    };
    let next = next_cursor(&rows, query.limit, |r| (r.created_at, r.id.as_str()));
    if format == ExportFormat::Csv {
        let header = ["created_at", "kind", "level", "actor", "session_id", "ip", "detail", "id"];
        let body = csv_text(
            &header,
            rows.iter().map(|r| {
                vec![
                    rfc3339(r.created_at),
                    r.kind.clone(),
                    r.level.clone(),
                    r.actor.clone(),
                    r.session_id.clone().unwrap_or_default(),
                    r.ip.clone().unwrap_or_default(),
                    r.detail.clone().unwrap_or_default(),
                    r.id.clone(),
                ]
            }),
        )?;
        let name = if errors_only { "errors" } else { "activity" };
        return Ok(Answer::Csv { body, name, next });
    }
    Ok(Answer::Page(ActivityLogPage {
        entries: rows.iter().map(ActivityLogEntry::from).collect(),
        next_cursor: next,
    }))
}

async fn otp_answer(
    state: &AppState,
    principal: &Principal,
    params: &OtpLogParams,
) -> ApiResult<Answer<OtpLogPage>> {
    principal.require(Scope::Otp)?;
    let format = params.format.unwrap_or_default();
    let query = OtpListQuery {
        phone: params.phone.clone(),
        status: params.status.clone(),
        since: params.since.clone(),
        until: params.until.clone(),
        limit: params.limit,
        cursor: params.cursor.clone(),
    };
    let filter = otp_filter(state, principal, &query, limit_for(format, params.limit)?).await?;
    let since = filter.since.unwrap_or_else(|| now_ms() - 7 * DAY_MS);
    let listing = state.otp.page(principal, filter).await?;
    let next = listing.next.map(|(at, id)| page_cursor(at, &id));
    let views: Vec<OtpView> = listing.verifications.iter().map(OtpView::from_tracked).collect();
    if format == ExportFormat::Csv {
        let header = [
            "created_at",
            "id",
            "phone",
            "status",
            "session_id",
            "mode",
            "sends",
            "attempts",
            "delivery_status",
            "reason",
            "approved_at",
            "expires_at",
        ];
        let body = csv_text(
            &header,
            views.iter().map(|v| {
                vec![
                    v.created_at.clone(),
                    v.id.clone(),
                    v.phone.clone(),
                    v.status.clone(),
                    v.session_id.clone().unwrap_or_default(),
                    v.mode.clone(),
                    v.sends.to_string(),
                    v.attempts.to_string(),
                    v.delivery_status.clone().unwrap_or_default(),
                    v.reason.clone().unwrap_or_default(),
                    v.approved_at.clone().unwrap_or_default(),
                    v.expires_at.clone(),
                ]
            }),
        )?;
        return Ok(Answer::Csv { body, name: "otp", next });
    }
    let stats = OtpFiguresView::from(&state.analytics.otp_figures(principal, since).await?);
    Ok(Answer::Page(OtpLogPage { verifications: views, next_cursor: next, stats }))
}

async fn cleanup_report(
    state: &AppState,
    principal: &Principal,
    request: CleanupRequest,
) -> ApiResult<CleanupReport> {
    principal.require(Scope::Admin)?;
    if !principal.sees_all() {
        return Err(ApiError::forbidden(
            "forbidden",
            "cleaning up deletes every tenant's records: admins only",
        ));
    }
    let given = [
        request.messages_days,
        request.received_messages_days,
        request.webhook_events_days,
        request.session_events_days,
        request.activity_days,
        request.otp_days,
    ];
    if given.iter().flatten().any(|days| *days == 0) {
        return Err(ApiError::unprocessable("invalid_days", "each period is 1 day or more"));
    }
    let periods = CleanupPeriods {
        messages_days: request.messages_days,
        received_messages_days: request.received_messages_days,
        webhook_events_days: request.webhook_events_days,
        session_events_days: request.session_events_days,
        activity_days: request.activity_days,
        otp_days: request.otp_days,
    };
    let deleted = state.analytics.cleanup(&periods).await?;
    Ok(CleanupReport { deleted: deleted.into_iter().map(|(kind, n)| (kind.to_owned(), n)).collect() })
}

// ---------- /api/v1 ----------

/// Sessions by status, and messages (by status and type) and one-time passwords (by outcome,
/// with the conversion rate) for today, the last 7 and the last 30 days.
#[utoipa::path(get, path = "/api/v1/analytics/dashboard", tag = "analytics",
    responses((status = 200, body = DashboardView), (status = 401, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn dashboard(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<DashboardView>> {
    Ok(JsonResponse(dashboard_view(&state, &principal).await?))
}

/// A session's messages (by status) and received messages per day.
#[utoipa::path(get, path = "/api/v1/analytics/sessions/{id}/stats", tag = "analytics",
    params(("id" = String, Path), StatsParams),
    responses((status = 200, body = SessionStatsView), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn session_stats(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StatsParams>,
) -> ApiResult<JsonResponse<SessionStatsView>> {
    Ok(JsonResponse(stats_view(&state, &principal, &id, params.days).await?))
}

/// The activity and audit log, newest first: sign-ins (failed ones too), session changes and
/// connection events, API keys, users, settings, failures — who, what, when, from which IP.
#[utoipa::path(get, path = "/api/v1/analytics/logs/activity", tag = "analytics", params(LogParams),
    responses((status = 200, content((ActivityLogPage = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn activity_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<LogParams>,
) -> ApiResult<Response> {
    Ok(log_answer(&state, &principal, &params, false).await?.into_response_with(|v| v))
}

/// Warnings and errors of the activity log: dropped connections, sessions logged out by the
/// phone, messages failed, webhooks given up, failed sign-ins.
#[utoipa::path(get, path = "/api/v1/analytics/logs/errors", tag = "analytics", params(LogParams),
    responses((status = 200, content((ActivityLogPage = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn error_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<LogParams>,
) -> ApiResult<Response> {
    Ok(log_answer(&state, &principal, &params, true).await?.into_response_with(|v| v))
}

/// The OTP log (codes are never shown) with figures by outcome.
#[utoipa::path(get, path = "/api/v1/analytics/logs/otp", tag = "analytics", params(OtpLogParams),
    responses((status = 200, content((OtpLogPage = "application/json"), (String = "text/csv"))),
        (status = 400, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn otp_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<OtpLogParams>,
) -> ApiResult<Response> {
    Ok(otp_answer(&state, &principal, &params).await?.into_response_with(|v| v))
}

/// Deletes, now, every record past its retention period (admins only); a period given here
/// replaces the configured one for this run.
#[utoipa::path(post, path = "/api/v1/analytics/cleanup", tag = "analytics", request_body = Option<CleanupRequest>,
    responses((status = 200, body = CleanupReport), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn cleanup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonOrEmpty(request): JsonOrEmpty<CleanupRequest>,
) -> ApiResult<JsonResponse<CleanupReport>> {
    Ok(JsonResponse(cleanup_report(&state, &principal, request).await?))
}

// ---------- seed 001 ----------

fn seed(data: Value) -> Value {
    json!({ "success": true, "data": data })
}

/// Seed 001's dashboard statistics, in `{success, data}`.
#[utoipa::path(get, path = "/api/analytics/dashboard", tag = "compat",
    responses((status = 200, body = Object)), security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_dashboard(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<Value>> {
    let view = dashboard_view(&state, &principal).await?;
    Ok(JsonResponse(seed(serde_json::to_value(view).unwrap_or_default())))
}

/// Seed 001's session analytics, in `{success, data}`.
#[utoipa::path(get, path = "/api/analytics/sessions/{id}/stats", tag = "compat",
    params(("id" = String, Path), StatsParams),
    responses((status = 200, body = Object), (status = 400, body = Object), (status = 404, body = Object)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_session_stats(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StatsParams>,
) -> ApiResult<JsonResponse<Value>> {
    let view = stats_view(&state, &principal, &id, params.days).await?;
    Ok(JsonResponse(seed(serde_json::to_value(view).unwrap_or_default())))
}

/// Seed 001's activity log, in `{success, data}` (or CSV).
#[utoipa::path(get, path = "/api/analytics/logs/activity", tag = "compat", params(LogParams),
    responses((status = 200, content((Object = "application/json"), (String = "text/csv"))), (status = 400, body = Object)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_activity_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<LogParams>,
) -> ApiResult<Response> {
    Ok(log_answer(&state, &principal, &params, false).await?.into_response_with(seed))
}

/// Seed 001's error tracking, in `{success, data}` (or CSV).
#[utoipa::path(get, path = "/api/analytics/logs/errors", tag = "compat", params(LogParams),
    responses((status = 200, content((Object = "application/json"), (String = "text/csv"))), (status = 400, body = Object)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_error_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<LogParams>,
) -> ApiResult<Response> {
    Ok(log_answer(&state, &principal, &params, true).await?.into_response_with(seed))
}

/// Seed 001's OTP logs and statistics, in `{success, data}` (or CSV).
#[utoipa::path(get, path = "/api/analytics/logs/otp", tag = "compat", params(OtpLogParams),
    responses((status = 200, content((Object = "application/json"), (String = "text/csv"))), (status = 400, body = Object)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_otp_log(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(params): QueryParams<OtpLogParams>,
) -> ApiResult<Response> {
    Ok(otp_answer(&state, &principal, &params).await?.into_response_with(seed))
}

/// Seed 001's manual cleanup of old logs (admins only), in `{success, message, data}`.
#[utoipa::path(post, path = "/api/analytics/cleanup", tag = "compat", request_body = Option<CleanupRequest>,
    responses((status = 200, body = Object), (status = 403, body = Object), (status = 400, body = Object)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn seed_cleanup(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonOrEmpty(request): JsonOrEmpty<CleanupRequest>,
) -> ApiResult<JsonResponse<Value>> {
    let report = cleanup_report(&state, &principal, request).await?;
    Ok(JsonResponse(json!({ "success": true, "message": "Old records cleaned up", "data": report })))
}
