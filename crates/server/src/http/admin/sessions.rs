//! Sessions: the list, a session's page with its live QR code, and every action on it.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;
use wagate_core::{EngineKind, Pacing, Scope, SessionStatus};
use wagate_store::SessionRecord;

use super::auth::{AdminSession, SignedForm, with_session};
use super::{done, page, refused, when};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::sessions::{CreateSessionRequest, create_session, parse_phone, visible_session};
use wagate_service::messages::SendMessageRequest;

/// A failed service call, shown as a page.
pub(super) fn failed(err: ApiError) -> Response {
    let mut page = page::error(err.status, &err.detail);
    if let Some(node) = err.runs_on {
        page.extensions_mut().insert(crate::http::forward::RunsOn(node)); // carried to that node
    }
    page
}

#[derive(Deserialize)]
pub struct Notice {
    notice: Option<String>,
}

pub async fn list(State(state): State<AppState>, session: AdminSession, Query(q): Query<Notice>) -> Response {
    let records = match crate::http::sessions::visible_sessions(&state, &session.principal).await {
        Ok(records) => records,
        Err(err) => return failed(err),
    };
    let rows: Vec<_> = records
        .iter()
        .map(|s| {
            json!({
                "id": s.id.as_str(), "name": s.name, "engine": s.engine.to_string(), "status": s.status.to_string(),
                "phone": s.account.as_ref().map(|a| a.phone.clone()), "pool": s.pool,
            })
        })
        .collect();
    // The default engine first: the form preselects it.
    let mut kinds = state.sessions.engines().kinds();
    let default = state.sessions.engines().default_kind();
    kinds.sort_by_key(|kind| *kind != default);
    let engines: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    with_session(
        &session,
        page::signed_in(
            &session,
            "sessions.html",
            "sessions",
            context! { title => "Sessions", sessions => rows, engines => engines, notice => q.notice },
        ),
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    id: Option<String>,
    name: Option<String>,
    engine: Option<String>,
    connect: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    SignedForm(session, form): SignedForm<CreateForm>,
) -> Response {
    let engine = match form.engine.as_deref().map(str::parse::<EngineKind>) {
        None => None,
        Some(Ok(engine)) => Some(engine),
        Some(Err(err)) => return refused(&err),
    };
    let request = CreateSessionRequest {
        id: form.id.filter(|v| !v.trim().is_empty()),
        name: form.name.filter(|v| !v.trim().is_empty()),
        engine,
        webhook_url: None,
        connect: form.connect.is_some(),
    };
    match create_session(&state, &session.principal, request).await {
        Ok(record) => done(&format!("/admin/sessions/{}", record.id), "Session created"),
        Err(err) => failed(err),
    }
}

async fn visible(state: &AppState, session: &AdminSession, id: &str) -> Result<SessionRecord, Response> {
    visible_session(state, &session.principal, id).await.map_err(|_| page::not_found())
}

pub async fn show(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    let record = match visible(&state, &session, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let events = state.activity.session_events(&record.id, None, 15).await.unwrap_or_default();
    let events: Vec<_> = events
        .iter()
        .map(|e| json!({ "kind": e.kind, "detail": e.detail, "at": when(e.created_at) }))
        .collect();
    let pacing = state.sessions.effective_pacing(&record);
    let view = json!({
        "id": record.id.as_str(),
        "name": record.name,
        "engine": record.engine.to_string(),
        "status": record.status.to_string(),
        "reason": record.status_reason,
        "connected": record.status == SessionStatus::Connected,
        "phone": record.account.as_ref().map(|a| a.phone.clone()),
        "push_name": record.account.as_ref().and_then(|a| a.push_name.clone()),
        "webhook_url": record.webhook_url,
        "own_pacing": record.pacing.is_some(),
        "pacing": pacing,
        "sandbox": state.sessions.capabilities(&record).simulated,
    });
    with_session(
        &session,
        page::signed_in(
            &session,
            "session.html",
            "sessions",
            context! { title => record.name.clone(), s => view, events => events, notice => q.notice },
        ),
    )
}

/// The session's live events for its page (SSE, as `/api/v1/sessions/{id}/events`).
pub async fn events(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let record = visible(&state, &session, &id).await?;
    let subscription = state.sessions.subscribe(&record.id).await.map_err(|e| failed(e.into()))?;
    let stream = crate::http::streams::live_events(&state, subscription).map(|event| {
        Ok(Event::default()
            .event(event.name())
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().comment("?")))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(crate::http::KEEP_ALIVE)))
}

pub async fn qr_png(
    State(state): State<AppState>,
    session: AdminSession,
    Path(id): Path<String>,
) -> Response {
    let record = match visible(&state, &session, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    match state.sessions.qr(&record.id).await {
        Ok(live) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            crate::qr::png(&live.code),
        )
            .into_response(),
        Err(err) => failed(err.into()),
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    confirm: Option<String>,
    phone: Option<String>,
    to: Option<String>,
    text: Option<String>,
    url: Option<String>,
    min_delay_ms: Option<String>,
    max_delay_ms: Option<String>,
    typing: Option<String>,
    hourly_cap: Option<String>,
    daily_cap: Option<String>,
    default_pacing: Option<String>,
}

fn number(field: &str, value: Option<&str>) -> Result<Option<u64>, String> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| format!("{field} must be a whole number")),
    }
}

fn pacing(form: &ActionForm) -> Result<Pacing, String> {
    let cap = |field: &str, value: Option<&str>| -> Result<Option<u32>, String> {
        number(field, value)?
            .map(|n| u32::try_from(n).map_err(|_| format!("{field} is too large")))
            .transpose()
    };
    let pacing = Pacing {
        min_delay_ms: number("min delay", form.min_delay_ms.as_deref())?.unwrap_or(0),
        max_delay_ms: number("max delay", form.max_delay_ms.as_deref())?.unwrap_or(0),
        typing: form.typing.is_some(),
        hourly_cap: cap("hourly cap", form.hourly_cap.as_deref())?,
        daily_cap: cap("daily cap", form.daily_cap.as_deref())?,
    };
    pacing.validate().map_err(|e| e.to_string())?;
    Ok(pacing)
}

pub async fn action(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(session, form): SignedForm<ActionForm>,
) -> Response {
    let record = match visible(&state, &session, &id).await {
        Ok(record) => record,
        Err(response) => return response,
    };
    let principal = &session.principal;
    let back = format!("/admin/sessions/{}", record.id);
    let scope = if action == "send" { Scope::Send } else { Scope::Sessions };
    if let Err(err) = principal.require(scope) {
        return failed(err.into());
    }
    let sessions = &state.sessions;
    let result: Result<String, ApiError> = match action.as_str() {
        "connect" => sessions.connect(&record.id).await.map(|_| "Connecting".into()).map_err(Into::into),
        "disconnect" => {
            sessions.disconnect(&record.id).await.map(|_| "Disconnected".into()).map_err(Into::into)
        }
        "restart" => sessions.restart(&record.id).await.map(|_| "Restarted".into()).map_err(Into::into),
        "logout" => match sessions.logout(&record.id).await {
            // Logged out; connect again for a new QR code ("logout and scan again").
            Ok(_) => sessions
                .connect(&record.id)
                .await
                .map(|_| "Logged out: scan the new QR code".into())
                .map_err(Into::into),
            Err(err) => Err(err.into()),
        },
        "delete" if form.confirm.as_deref() == Some("yes") => {
            return match sessions.delete(&record.id).await {
                Ok(()) => done("/admin/sessions", "Session deleted"),
                Err(err) => failed(err.into()),
            };
        }
        "delete" => {
            Err(ApiError::unprocessable("confirmation_required", "tick the box to confirm the deletion"))
        }
        "pair-code" => match parse_phone(&state, form.phone.as_deref().unwrap_or("")) {
            Ok(phone) => sessions
                .pair_code(&record.id, &phone)
                .await
                .map(|c| format!("Pairing code: {}", c.code))
                .map_err(Into::into),
            Err(err) => Err(err),
        },
        "scan" => scan(&state, &record, form.phone.as_deref().unwrap_or("")).await,
        "pacing" => {
            let pacing = if form.default_pacing.is_some() {
                None
            } else {
                match pacing(&form) {
                    Ok(p) => Some(p),
                    Err(reason) => return refused(&reason),
                }
            };
            sessions
                .set_pacing(&record.id, pacing.as_ref())
                .await
                .map(|_| "Pacing saved".into())
                .map_err(Into::into)
        }
        "webhook" => {
            let url = form.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
            sessions.set_webhook(&record.id, url).await.map(|_| "Webhook saved".into()).map_err(Into::into)
        }
        "send" => {
            let request = SendMessageRequest {
                to: form.to.clone().unwrap_or_default(),
                text: form.text.clone().filter(|t| !t.is_empty()),
                ..Default::default()
            };
            state
                .messages
                .accept(&record, request, None)
                .await
                .map(|accepted| format!("Message {} queued", accepted.message.id))
                .map_err(Into::into)
        }
        _ => return page::not_found(),
    };
    match result {
        Ok(notice) => done(&back, &notice),
        Err(err) => failed(err),
    }
}

#[cfg(feature = "sandbox")]
async fn scan(state: &AppState, record: &SessionRecord, phone: &str) -> Result<String, ApiError> {
    let network = state
        .sessions
        .engines()
        .sandbox()
        .ok_or_else(|| ApiError::not_found("sandbox_disabled", "the sandbox engine is disabled"))?;
    if !state.sessions.capabilities(record).simulated {
        return Err(ApiError::conflict("not_a_sandbox_session", "only sandbox sessions can be scanned here"));
    }
    let phone = parse_phone(state, phone)?;
    network
        .scan(&record.id, phone, None, None)
        .await
        .map(|account| format!("Scanned by {}", account.phone.e164()))
        .map_err(|e| ApiError::conflict("scan_refused", e.to_string()))
}

#[cfg(not(feature = "sandbox"))]
async fn scan(_: &AppState, _: &SessionRecord, _: &str) -> Result<String, ApiError> {
    Err(ApiError::not_found("sandbox_disabled", "this build has no sandbox engine"))
}
