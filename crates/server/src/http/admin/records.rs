//! Messages (the jobs table, a message's history, retry and cancel) and the OTP log.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use wagate_core::{MessageStatus, OtpStatus, Scope};
use wagate_store::{MessageFilter, MessageRecord, OtpFilter};

use super::auth::{AdminSession, NoFields, SignedForm, with_session};
use super::sessions::failed;
use super::{done, page, refused, when};
use crate::app::AppState;
use crate::http::messages::MessageView;
use crate::http::sessions::{parse_phone, visible_sessions};

const PAGE: u32 = 50;

#[derive(Deserialize)]
pub struct MessagesQuery {
    status: Option<String>,
    session: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

fn row(m: &MessageRecord) -> serde_json::Value {
    let view = MessageView::from(m);
    let summary = view
        .content
        .text()
        .map(|t| t.chars().take(80).collect::<String>())
        .unwrap_or_else(|| view.kind.clone());
    json!({
        "id": view.id, "session": view.session_id, "to": view.to, "kind": view.kind, "summary": summary,
        "status": view.status, "reason": view.reason, "attempts": view.attempts, "priority": view.priority,
        "created": when(m.created_at),
    })
}

pub async fn messages(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<MessagesQuery>,
) -> Response {
    let principal = &session.principal;
    let mut filter = MessageFilter {
        owner_id: principal.owner_filter().map(str::to_owned),
        limit: PAGE,
        search: q.q.clone().filter(|v| !v.trim().is_empty()),
        ..MessageFilter::default()
    };
    let visible = match visible_sessions(&state, principal).await {
        Ok(v) => v,
        Err(err) => return failed(err),
    };
    if let Some(id) = q.session.as_deref().filter(|s| !s.is_empty()) {
        if !visible.iter().any(|s| s.id.as_str() == id) {
            return page::not_found();
        }
        filter.session_id = Some(id.to_owned());
    }
    if let Some(status) = q.status.as_deref().filter(|s| !s.is_empty()) {
        match status.parse::<MessageStatus>() {
            Ok(status) => filter.status = Some(status),
            Err(err) => return refused(&err),
        }
    }
    if let Some(cursor) = &q.cursor {
        filter.before = cursor.split_once(':').and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())));
    }
    let (records, next) = match state.messages.list(principal, &filter).await {
        Ok(page) => page,
        Err(err) => return failed(err.into()),
    };
    let rows: Vec<_> = records.iter().map(row).collect();
    let sessions: Vec<String> = visible.iter().map(|s| s.id.to_string()).collect();
    with_session(
        &session,
        page::signed_in(
            &session,
            "messages.html",
            "messages",
            context! {
                title => "Messages", messages => rows, next => next, sessions => sessions,
                status => q.status, session_filter => q.session, q => q.q, notice => q.notice,
                statuses => ["queued", "sending", "sent", "delivered", "read", "failed", "canceled"],
            },
        ),
    )
}

async fn visible_message(state: &AppState, session: &AdminSession, id: &str) -> Option<MessageRecord> {
    crate::http::messages::visible_message(state, &session.principal, id).await.ok()
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn message(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if session.principal.require(Scope::Read).is_err() {
        return page::not_found();
    }
    let Ok((message, history)) = state.messages.message_with_history(&session.principal, &id).await else {
        return page::not_found();
    };
    let history: Vec<_> = history
        .iter()
        .map(|h| json!({ "status": h.status.to_string(), "reason": h.reason, "at": when(h.created_at) }))
        .collect();
    let view = MessageView::from(&message);
    let content = serde_json::to_string_pretty(&view.content).unwrap_or_default();
    with_session(
        &session,
        page::signed_in(
            &session,
            "message.html",
            "messages",
            context! { title => format!("Message {}", message.id), m => row(&message), content => content, history => history, notice => q.notice },
        ),
    )
}

pub async fn message_action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(session, _): SignedForm<NoFields>,
) -> Response {
    let Some(message) = visible_message(&state, &session, &id).await else { return page::not_found() };
    if let Err(err) = session.principal.require(Scope::Send) {
        return failed(err.into());
    }
    let principal = &session.principal;
    let result = match action.as_str() {
        "retry" => state.messages.retry(principal, &message.id).await.map(|_| "Queued again"),
        "cancel" => state.messages.cancel(principal, &message.id).await.map(|_| "Canceled"),
        _ => return page::not_found(),
    };
    match result {
        Ok(notice) => done(&format!("/admin/messages/{}", message.id), notice),
        Err(err) => failed(err.into()),
    }
}

#[derive(Deserialize)]
pub struct OtpQuery {
    phone: Option<String>,
    status: Option<String>,
    /// `YYYY-MM-DD` (UTC), from the start of that day…
    since: Option<String>,
    /// …to the end of that day.
    until: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

pub async fn otp_log(
    State(state): State<AppState>,
    session: AdminSession,
    Query(q): Query<OtpQuery>,
) -> Response {
    let principal = &session.principal;
    let mut filter = OtpFilter {
        owner_id: principal.owner_filter().map(str::to_owned),
        limit: PAGE,
        ..OtpFilter::default()
    };
    let mut failures = None;
    if let Some(phone) = q.phone.as_deref().filter(|p| !p.trim().is_empty()) {
        match parse_phone(&state, phone) {
            Ok(phone) => {
                filter.phone = Some(phone.e164().to_owned());
                if let Ok(standing) = state.otp.phone_failures(&principal.user_id, phone.e164()).await {
                    let (count, locked) = (standing.failures, standing.locked_until);
                    failures = Some(
                        json!({ "phone": phone.e164(), "count": count, "locked_until": locked.map(when) }),
                    );
                }
            }
            Err(err) => return failed(err),
        }
    }
    if let Some(status) = q.status.as_deref().filter(|s| !s.is_empty()) {
        match status.parse::<OtpStatus>() {
            Ok(status) => filter.status = Some(status),
            Err(err) => return refused(&err),
        }
    }
    for (field, value, day_offset) in [("since", &q.since, 0), ("until", &q.until, 1)] {
        if let Some(day) = value.as_deref().filter(|d| !d.is_empty()) {
            let Ok(date) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
                return refused(&format!("{field} must be a date such as 2026-11-21"));
            };
            let start = date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_millis();
            let at = start + day_offset * 24 * 3_600_000;
            if field == "since" { filter.since = Some(at) } else { filter.until = Some(at) }
        }
    }
    if let Some(cursor) = &q.cursor {
        filter.before = cursor.split_once(':').and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())));
    }
    let records = match state.otp.list(&filter).await {
        Ok(records) => records,
        Err(err) => return failed(err.into()),
    };
    let now = wagate_service::time::now_ms();
    let rows: Vec<_> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "phone": r.phone, "status": r.effective_status(now).to_string(), "mode": r.mode.to_string(),
                "session": r.session_id, "attempts": r.attempts, "sends": r.sends, "created": when(r.created_at),
                "expires": when(r.expires_at), "pending": r.effective_status(now) == OtpStatus::Pending,
            })
        })
        .collect();
    let next = (records.len() as u32 == PAGE)
        .then(|| records.last().map(|r| format!("{}:{}", r.created_at, r.id)))
        .flatten();
    with_session(
        &session,
        page::signed_in(
            &session,
            "otp.html",
            "otp",
            context! {
                title => "OTP log", verifications => rows, next => next, phone => q.phone, status => q.status,
                since => q.since, until => q.until,
                failures => failures, notice => q.notice,
                statuses => ["pending", "approved", "expired", "canceled", "max_attempts", "failed"],
            },
        ),
    )
}

pub async fn otp_cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    SignedForm(session, _): SignedForm<NoFields>,
) -> Response {
    let record = match state.otp.visible(&session.principal, &id).await {
        Ok(record) => record,
        Err(_) => return page::not_found(),
    };
    match state.otp.cancel_record(&record).await {
        Ok(_) => done("/admin/otp", "Verification canceled"),
        Err(err) => failed(err.into()),
    }
}

#[derive(Deserialize)]
pub struct PhoneForm {
    phone: String,
}

pub async fn otp_reset_phone(
    State(state): State<AppState>,
    SignedForm(session, form): SignedForm<PhoneForm>,
) -> Response {
    let phone = match parse_phone(&state, &form.phone) {
        Ok(phone) => phone,
        Err(err) => return failed(err),
    };
    match state.otp.reset_phone_failures(&session.principal.user_id, phone.e164()).await {
        Ok(_) => done(&format!("/admin/otp?phone=%2B{}", phone.digits()), "Failure counter cleared"),
        Err(err) => failed(err.into()),
    }
}
