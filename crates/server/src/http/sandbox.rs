//! `/api/v1/sandbox`: test actions on the simulated network (only when the sandbox is enabled).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::Scope;
use wagate_engine::sandbox::{InboxEntry, SandboxError, SandboxNetwork};
use wagate_store::SessionRecord;

use super::extract::{Auth, Json, QueryParams};
use super::sessions::{authorized_session, parse_phone, visible_sessions};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::sessions::AccountView;
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sandbox/sessions/{id}/scan", post(scan))
        .route("/sandbox/sessions/{id}/pair-code/confirm", post(confirm_pair_code))
        .route("/sandbox/sessions/{id}/inbound", post(inbound))
        .route("/sandbox/sessions/{id}/groups", post(create_group))
        .route("/sandbox/sessions/{id}/unlink", post(unlink))
        .route("/sandbox/sessions/{id}/ban", post(ban))
        .route("/sandbox/inbox/{phone}", get(inbox))
}

fn network(state: &AppState) -> ApiResult<Arc<SandboxNetwork>> {
    state.sessions.engines().sandbox().ok_or_else(|| {
        ApiError::not_found("sandbox_disabled", "the sandbox engine is disabled (WAGATE_SANDBOX=false)")
    })
}

async fn sandbox_session(state: &AppState, principal: &Principal, id: &str) -> ApiResult<SessionRecord> {
    let record = authorized_session(state, principal, id, Scope::Sessions).await?;
    if !state.sessions.capabilities(&record).simulated {
        return Err(ApiError::conflict(
            "not_a_sandbox_session",
            "sandbox actions work only on sandbox sessions",
        ));
    }
    // Its simulated phone is in the process of the node that runs it.
    state.sessions.here(&record.id).await?;
    Ok(record)
}

pub(crate) fn sandbox_error(err: SandboxError) -> ApiError {
    let code = match err {
        SandboxError::NotOpen => "session_not_open",
        SandboxError::NoQr => "qr_not_available",
        SandboxError::QrMismatch => "qr_expired",
        SandboxError::NotPairing => "not_pairing",
        SandboxError::WrongPairCode => "wrong_pair_code",
        SandboxError::NotConnected => "session_not_connected",
        SandboxError::NotStored => {
            return ApiError::unavailable("inbound_not_stored", err.to_string(), 1);
        }
        SandboxError::Unavailable(_) => {
            return ApiError::unavailable("database_unavailable", err.to_string(), 1);
        }
    };
    ApiError::conflict(code, err.to_string())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanRequest {
    /// The phone number of the (simulated) account that scans.
    pub phone: String,
    /// The account's display name.
    pub push_name: Option<String>,
    /// The QR payload as read; when given, it must be the code shown right now.
    pub qr: Option<String>,
}

/// Scan the session's current QR code as phone `phone`: links the session.
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/scan", tag = "sandbox", params(("id" = String, Path)),
    request_body = ScanRequest,
    responses((status = 200, body = super::schemas::AccountViewSchema), (status = 409, description = "no QR code shown, stale code, not a sandbox session", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn scan(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<ScanRequest>,
) -> ApiResult<JsonResponse<AccountView>> {
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    let phone = parse_phone(&state, &request.phone)?;
    let account =
        network.scan(&record.id, phone, request.push_name, request.qr).await.map_err(sandbox_error)?;
    Ok(JsonResponse(AccountView::from(&account)))
}

/// The phone removes the linked device, as a user does under "Linked devices": the session is
/// logged out (and alerts say so, unlike a logout through the API).
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/unlink", tag = "sandbox", params(("id" = String, Path)),
    responses((status = 204, description = "unlinked"), (status = 409, description = "not connected, not a sandbox session", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn unlink(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    network.unlink(&record.id).await.map_err(sandbox_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    /// How long the ban lasts: 1 to 86400 seconds.
    #[schema(minimum = 1, maximum = 86400)]
    pub seconds: u64,
}

/// WhatsApp bans the account for a while: the session drops with a `temporary_ban` reason and
/// comes back by itself when the ban ends.
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/ban", tag = "sandbox", params(("id" = String, Path)),
    request_body = BanRequest,
    responses((status = 204, description = "banned"), (status = 409, description = "not connected, not a sandbox session", body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn ban(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<BanRequest>,
) -> ApiResult<StatusCode> {
    if !(1..=86_400).contains(&request.seconds) {
        return Err(ApiError::unprocessable("invalid_seconds", "seconds must be between 1 and 86400"));
    }
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    network.ban(&record.id, Duration::from_secs(request.seconds)).await.map_err(sandbox_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPairCodeRequest {
    /// The code as typed on the phone (`ABCD-EFGH` or `abcdefgh`).
    pub code: String,
}

/// Type the pairing code on the simulated phone: links the session.
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/pair-code/confirm", tag = "sandbox", params(("id" = String, Path)),
    request_body = ConfirmPairCodeRequest,
    responses((status = 200, body = super::schemas::AccountViewSchema), (status = 409, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn confirm_pair_code(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<ConfirmPairCodeRequest>,
) -> ApiResult<JsonResponse<AccountView>> {
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    let account = network.confirm_pair_code(&record.id, &request.code).await.map_err(sandbox_error)?;
    Ok(JsonResponse(AccountView::from(&account)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundRequest {
    /// Who sends the message.
    pub from: String,
    pub text: String,
    pub push_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InjectedMessage {
    pub id: String,
    pub from: String,
    pub chat: String,
    pub timestamp: String,
}

/// Make someone send a text message to the session.
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/inbound", tag = "sandbox", params(("id" = String, Path)),
    request_body = InboundRequest,
    responses((status = 202, description = "stored and announced", body = InjectedMessage), (status = 409, body = Problem),
        (status = 503, description = "the database could not store it (`inbound_not_stored`)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn inbound(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<InboundRequest>,
) -> ApiResult<(StatusCode, JsonResponse<InjectedMessage>)> {
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    let from = parse_phone(&state, &request.from)?;
    if request.text.is_empty() || request.text.len() > 65_536 {
        return Err(ApiError::unprocessable("invalid_field", "text must be 1 to 65536 bytes"));
    }
    let message =
        network.inject(&record.id, from, request.text, request.push_name).await.map_err(sandbox_error)?;
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(InjectedMessage {
            id: message.id,
            from: message.from.e164().to_owned(),
            chat: message.chat,
            timestamp: rfc3339(message.timestamp),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Inbox {
    pub phone: String,
    /// Oldest first; only messages sent by sessions the caller can see.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<InboxEntry>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InboxQuery {
    /// Wait up to this long (at most 30,000 ms) until the inbox holds more than `after`
    /// messages, instead of polling.
    pub wait_ms: Option<u64>,
    /// How many messages the caller has seen already (default 0).
    pub after: Option<usize>,
}

/// What sandbox sessions sent to `phone`, newest last.
#[utoipa::path(get, path = "/api/v1/sandbox/inbox/{phone}", tag = "sandbox", params(("phone" = String, Path), InboxQuery),
    responses((status = 200, body = Inbox), (status = 400, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn inbox(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(phone): Path<String>,
    QueryParams(query): QueryParams<InboxQuery>,
) -> ApiResult<JsonResponse<Inbox>> {
    let network = network(&state)?;
    let phone = parse_phone(&state, &phone)?;
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0));
    if wait > Duration::from_secs(30) {
        return Err(ApiError::bad_request("invalid_query", "wait_ms must be at most 30000"));
    }
    let visible: Option<Vec<String>> = if principal.sees_all() && principal.sessions.is_none() {
        None
    } else {
        Some(visible_sessions(&state, &principal).await?.into_iter().map(|s| s.id.to_string()).collect())
    };
    let read = async || -> ApiResult<Vec<InboxEntry>> {
        let all = network.inbox(&phone).await.map_err(sandbox_error)?;
        Ok(match &visible {
            None => all,
            Some(visible) => all.into_iter().filter(|m| visible.contains(&m.session_id)).collect(),
        })
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut deliveries = network.deliveries_to(&phone);
    let mut messages = read().await?;
    while messages.len() <= query.after.unwrap_or(0)
        && tokio::time::timeout_at(deadline, deliveries.changed()).await.is_ok_and(|r| r.is_ok())
    {
        messages = read().await?;
    }
    Ok(JsonResponse(Inbox { phone: phone.e164().to_owned(), messages }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    pub subject: String,
    /// Phone numbers of the other members.
    pub participants: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedGroup {
    pub jid: String,
}

/// Create a group of the session's account and `participants` on the simulated network.
#[utoipa::path(post, path = "/api/v1/sandbox/sessions/{id}/groups", tag = "sandbox", params(("id" = String, Path)),
    request_body = CreateGroupRequest,
    responses((status = 201, body = CreatedGroup), (status = 409, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn create_group(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<CreateGroupRequest>,
) -> ApiResult<(StatusCode, JsonResponse<CreatedGroup>)> {
    let network = network(&state)?;
    let record = sandbox_session(&state, &principal, &id).await?;
    if request.subject.trim().is_empty() || request.subject.chars().count() > 100 {
        return Err(ApiError::unprocessable("invalid_field", "subject must be 1 to 100 characters"));
    }
    let members =
        request.participants.iter().map(|p| parse_phone(&state, p)).collect::<ApiResult<Vec<_>>>()?;
    let jid = network.create_group(&record.id, request.subject, members).await.map_err(sandbox_error)?;
    Ok((StatusCode::CREATED, JsonResponse(CreatedGroup { jid })))
}
