//! Routes and response shapes of the systems wagate replaces (see docs/compat.md), as thin
//! adapters over the same services. All of them require authentication.

use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use wagate_core::{Scope, SessionStatus};
use wagate_store::SessionRecord;

use super::extract::{Auth, ClientIp, Json, StreamAuth};
use super::sessions::{
    CreateSessionRequest, authorized_session, create_session, parse_name, visible_sessions,
};
use super::streams::{live_events, pump_websocket, qr_response, render_qr_page};
use crate::app::AppState;
use crate::error::ApiError;
use wagate_service::sessions::StreamEvent;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/login", post(login))
        .route("/api/sessions", get(list).post(create))
        .route("/api/sessions/create", post(create_and_connect))
        .route("/api/sessions/{id}", get(show).delete(remove))
        .route("/api/sessions/{id}/status", get(status))
        .route("/api/sessions/{id}/qr", get(qr))
        .route("/api/sessions/{id}/qr-page", get(qr_page))
        .route("/api/sessions/{id}/restart", put(restart))
        .route("/api/sessions/{id}/name", put(rename))
        .route("/api/sessions/{id}/webhook", put(set_webhook))
        .route("/api/sessions/{id}/connect", post(connect))
        .route("/api/sessions/{id}/disconnect", post(disconnect))
        .route("/api/ws/{id}", get(websocket))
}

type CompatResult<T> = Result<T, ApiError>;

fn envelope(message: &str, data: Value) -> JsonResponse<Value> {
    JsonResponse(json!({ "success": true, "message": message, "data": data }))
}

/// The session object of the multi-session API (seed 003).
fn session_object(record: &SessionRecord) -> Value {
    json!({
        "id": record.id.as_str(),
        "name": record.name,
        "phone": record.account.as_ref().map(|a| a.phone.trim_start_matches('+').to_owned()),
        "connected": record.status == SessionStatus::Connected,
        "logged_in": record.account.is_some(),
        "status": record.status,
        "webhook_url": record.webhook_url,
        "created_at": wagate_service::time::rfc3339(record.created_at),
    })
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
}

/// Log in (seed shape: `{success, token, user}`).
#[utoipa::path(post, path = "/api/login", tag = "compat", request_body = LoginBody,
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(body): Json<LoginBody>,
) -> CompatResult<JsonResponse<Value>> {
    let done = state.accounts.login(&ip, &body.username, &body.password).await?;
    Ok(JsonResponse(json!({
        "success": true,
        "token": done.token,
        "user": { "id": done.user.id, "username": done.user.username },
    })))
}

/// List sessions as a bare array of session objects.
#[utoipa::path(get, path = "/api/sessions", tag = "compat",
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> CompatResult<JsonResponse<Value>> {
    let sessions = visible_sessions(&state, &principal).await?;
    Ok(JsonResponse(Value::Array(sessions.iter().map(session_object).collect())))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateBody {
    pub name: Option<String>,
    pub webhook_url: Option<String>,
}

/// Create a session (`{name, webhook_url}`); answers a session object.
#[utoipa::path(post, path = "/api/sessions", tag = "compat", request_body = CreateBody,
    responses((status = 201, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<CreateBody>,
) -> CompatResult<(StatusCode, JsonResponse<Value>)> {
    let request = CreateSessionRequest {
        id: None,
        name: body.name,
        engine: None,
        webhook_url: body.webhook_url,
        connect: false,
    };
    let record = create_session(&state, &principal, request).await?;
    Ok((StatusCode::CREATED, JsonResponse(session_object(&record))))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateAndConnectBody {
    pub session_id: Option<String>,
}

/// Create a session (`{sessionId}`) and start showing QR codes.
#[utoipa::path(post, path = "/api/sessions/create", tag = "compat", request_body = CreateAndConnectBody,
    responses((status = 201, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn create_and_connect(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<CreateAndConnectBody>,
) -> CompatResult<(StatusCode, JsonResponse<Value>)> {
    let request = CreateSessionRequest {
        id: body.session_id,
        name: None,
        engine: None,
        webhook_url: None,
        connect: true,
    };
    let record = create_session(&state, &principal, request).await?;
    let data = json!({
        "sessionId": record.id.as_str(),
        "status": record.status,
        "qrUrl": format!("/api/sessions/{}/qr", record.id),
        "qrPageUrl": format!("/api/sessions/{}/qr-page", record.id),
    });
    Ok((StatusCode::CREATED, envelope("Session created; scan the QR code to link it", data)))
}

/// Get a session object.
#[utoipa::path(get, path = "/api/sessions/{id}", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    Ok(JsonResponse(session_object(&record)))
}

/// Delete a session.
#[utoipa::path(delete, path = "/api/sessions/{id}", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    state.sessions.delete(&record.id).await?;
    Ok(JsonResponse(json!({ "success": true, "message": "Session deleted" })))
}

/// Session status in the `{success, message, data}` envelope.
#[utoipa::path(get, path = "/api/sessions/{id}/status", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let data = json!({
        "sessionId": record.id.as_str(),
        "status": record.status,
        "connected": record.status == SessionStatus::Connected,
        "isConnected": record.status == SessionStatus::Connected,
        "user": record.account.as_ref().map(|a| json!({ "id": a.phone.trim_start_matches('+'), "name": a.push_name, "lid": a.lid })),
    });
    Ok(envelope("Session status", data))
}

/// The current QR code: `data.qrCode` (a `data:image/png;base64,…` image, as seed 000's
/// client reads it), `data.qr` (the text to encode) and `data.qrImage` (the same image).
#[utoipa::path(get, path = "/api/sessions/{id}/qr", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn qr(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let live = state.sessions.qr(&record.id).await?;
    let qr = qr_response(&live.code, live.expires_at);
    let data = json!({
        "sessionId": record.id.as_str(),
        "qr": qr.qr,
        "qrCode": qr.png,
        "qrImage": qr.png,
        "expiresAt": qr.expires_at,
    });
    Ok(envelope("QR code", data))
}

/// HTML page with the live QR code (accepts `?token=`).
#[utoipa::path(get, path = "/api/sessions/{id}/qr-page", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn qr_page(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
) -> CompatResult<Response> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    Ok(render_qr_page(&state, &principal, &record.id))
}

/// Restart the session.
#[utoipa::path(put, path = "/api/sessions/{id}/restart", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn restart(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let record = state.sessions.restart(&record.id).await?;
    Ok(envelope("Session restarted", json!({ "sessionId": record.id.as_str(), "status": record.status })))
}

#[derive(Deserialize, ToSchema)]
pub struct NameBody {
    pub name: String,
}

/// Rename (`{name}`).
#[utoipa::path(put, path = "/api/sessions/{id}/name", tag = "compat", request_body = NameBody, params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn rename(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(body): Json<NameBody>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let name = parse_name(&body.name)?;
    let record = state.sessions.rename(&record.id, &name).await?;
    Ok(JsonResponse(session_object(&record)))
}

#[derive(Deserialize, ToSchema)]
pub struct WebhookBody {
    pub webhook_url: Option<String>,
}

/// Set the webhook URL (`{webhook_url}`).
#[utoipa::path(put, path = "/api/sessions/{id}/webhook", tag = "compat", request_body = WebhookBody, params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn set_webhook(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(body): Json<WebhookBody>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let url = body.webhook_url.filter(|u| !u.is_empty());
    let record = state.sessions.set_webhook(&record.id, url.as_deref()).await?;
    Ok(JsonResponse(session_object(&record)))
}

/// Start linking (QR codes over `/api/ws/{id}`).
#[utoipa::path(post, path = "/api/sessions/{id}/connect", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn connect(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let record = state.sessions.connect(&record.id).await?;
    let message = if record.status == SessionStatus::Connected {
        "Session connected"
    } else {
        "Scan the QR code (see /api/ws/{id})"
    };
    Ok(JsonResponse(json!({ "success": true, "message": message, "session": session_object(&record) })))
}

/// Disconnect.
#[utoipa::path(post, path = "/api/sessions/{id}/disconnect", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn disconnect(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> CompatResult<JsonResponse<Value>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let record = state.sessions.disconnect(&record.id).await?;
    Ok(JsonResponse(
        json!({ "success": true, "message": "Session disconnected", "session": session_object(&record) }),
    ))
}

/// WebSocket of `{type, data}` frames: `qr`, `success`, `error` (accepts `?token=`).
#[utoipa::path(get, path = "/api/ws/{id}", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md"), (status = 401, body = crate::error::Problem), (status = 404, body = crate::error::Problem)), security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn websocket(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> CompatResult<Response> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let subscription = state.sessions.subscribe(&record.id).await?;
    let events = live_events(&state, subscription);
    Ok(upgrade.on_upgrade(move |socket| pump_websocket(socket, events, seed_frame)))
}

fn seed_frame(event: &StreamEvent) -> Option<Value> {
    Some(match event {
        StreamEvent::Qr { qr, expires_at, .. } => {
            json!({ "type": "qr", "data": { "qr": qr, "expires_at": expires_at } })
        }
        StreamEvent::Status { status: SessionStatus::Connected, account, session_id, .. } => {
            json!({ "type": "success", "data": { "session_id": session_id, "account": account } })
        }
        StreamEvent::Error { message, code, .. } => {
            json!({ "type": "error", "data": { "error": message, "code": code } })
        }
        other => json!({ "type": other.name(), "data": other }),
    })
}
