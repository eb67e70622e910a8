//! `/api/v1/sessions`: create, list, change, connect, link and delete sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::{EngineKind, Pacing, Phone, Scope, SessionId, SessionName};
use wagate_store::SessionRecord;

use super::extract::{Auth, Json, QueryParams};
use super::views::SessionView;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::sessions::CreateSession;
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list).post(create))
        .route("/sessions/{id}", get(show).patch(update).delete(remove))
        .route("/sessions/{id}/connect", post(connect))
        .route("/sessions/{id}/disconnect", post(disconnect))
        .route("/sessions/{id}/restart", post(restart))
        .route("/sessions/{id}/logout", post(logout))
        .route("/sessions/{id}/pair-code", post(pair_code))
        .route("/sessions/{id}/activity", get(activity))
}

/// Parses the id and returns the session if the caller may see it; 404 otherwise, so other
/// tenants' ids do not leak.
pub(crate) async fn visible_session(
    state: &AppState,
    principal: &Principal,
    raw: &str,
) -> ApiResult<SessionRecord> {
    let record = state.sessions.get(&parse_session_id(raw)?).await?;
    seen_by(principal, record)
}

/// The session if `principal` may see it; as if it did not exist otherwise.
fn seen_by(principal: &Principal, record: SessionRecord) -> ApiResult<SessionRecord> {
    if !principal.can_see(&record) {
        return Err(wagate_service::sessions::SessionError::NotFound.into());
    }
    Ok(record)
}

/// [`visible_session`] for a caller that needs `scope` on it.
pub(crate) async fn authorized_session(
    state: &AppState,
    principal: &Principal,
    raw: &str,
    scope: Scope,
) -> ApiResult<SessionRecord> {
    principal.require(scope)?;
    if scope != Scope::Send {
        return visible_session(state, principal, raw).await;
    }
    // A read of the session per message sent counts: sending takes it as last read.
    let record = state.sessions.get_for_sending(&parse_session_id(raw)?).await?;
    seen_by(principal, record)
}

pub(crate) fn parse_session_id(raw: &str) -> ApiResult<SessionId> {
    SessionId::parse(raw).map_err(|err| ApiError::bad_request("invalid_session_id", err.to_string()))
}

/// A phone number read with the operator's `default_region` only (dashboard forms, the
/// sandbox's simulated phones).
pub(crate) fn parse_phone(state: &AppState, raw: &str) -> ApiResult<Phone> {
    state.phones.read(raw).map_err(invalid_phone)
}

/// A phone number that `session` sends to or asks about: national numbers in its country.
pub(crate) fn phone_for_session(state: &AppState, session: &SessionRecord, raw: &str) -> ApiResult<Phone> {
    state.phones.read_for_session(raw, session).map_err(invalid_phone)
}

/// A phone number where no session is named: national numbers in the country that the
/// caller's linked sessions share.
pub(crate) async fn phone_for_caller(state: &AppState, principal: &Principal, raw: &str) -> ApiResult<Phone> {
    state.phones.read_for_caller(raw, principal).await.map_err(invalid_phone)
}

fn invalid_phone(err: wagate_core::PhoneError) -> ApiError {
    ApiError::bad_request("invalid_phone", err.to_string())
}

pub(crate) fn parse_name(raw: &str) -> ApiResult<String> {
    SessionName::parse(raw)
        .map(SessionName::into_inner)
        .map_err(|err| ApiError::unprocessable("invalid_name", err.to_string()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// Client-chosen id (`^[A-Za-z0-9_-]{1,64}$`); generated when absent.
    pub id: Option<String>,
    /// Display name (1–100 characters); defaults to the id.
    pub name: Option<String>,
    /// `web` (a linked device on WhatsApp) or `sandbox` (the simulated network). Defaults to
    /// the server's `default_engine` setting, which is `web` unless configured otherwise.
    #[schema(value_type = Option<String>, example = "sandbox")]
    pub engine: Option<EngineKind>,
    /// An endpoint for this session's messages and status changes (signed like every webhook).
    pub webhook_url: Option<String>,
    /// Connect right away (start showing QR codes).
    #[serde(default)]
    pub connect: bool,
}

pub(crate) async fn create_session(
    state: &AppState,
    principal: &Principal,
    request: CreateSessionRequest,
) -> ApiResult<SessionRecord> {
    principal.require(Scope::Sessions)?;
    if principal.sessions.is_some() {
        return Err(ApiError::forbidden(
            "key_session_restricted",
            "a key limited to some sessions cannot create sessions",
        ));
    }
    let id = request.id.as_deref().map(parse_session_id).transpose()?;
    let name = request.name.as_deref().map(parse_name).transpose()?;
    let engine = request.engine.unwrap_or_else(|| state.sessions.engines().default_kind());
    let record = state
        .sessions
        .create(&principal.user_id, CreateSession { id, name, engine, webhook_url: request.webhook_url })
        .await?;
    super::audit::remember_session(record.id.as_str());
    if request.connect {
        return Ok(state.sessions.connect(&record.id).await?);
    }
    Ok(record)
}

/// Create a session.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "sessions", request_body = CreateSessionRequest,
    responses((status = 201, body = SessionView), (status = 409, description = "id taken", body = Problem),
        (status = 501, description = "engine not available in this build", body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(request): Json<CreateSessionRequest>,
) -> ApiResult<(StatusCode, JsonResponse<SessionView>)> {
    let record = create_session(&state, &principal, request).await?;
    Ok((StatusCode::CREATED, JsonResponse(SessionView::from(&record))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

pub(crate) async fn visible_sessions(
    state: &AppState,
    principal: &Principal,
) -> ApiResult<Vec<SessionRecord>> {
    principal.require(Scope::Read)?;
    let records = state.sessions.list(principal.owner_filter()).await?;
    Ok(records.into_iter().filter(|r| principal.can_see(r)).collect())
}

/// List the sessions the caller can see, with their status.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    responses((status = 200, body = SessionList)), security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<SessionList>> {
    let sessions = visible_sessions(&state, &principal).await?;
    let mut nodes = state.sessions.nodes_of_sessions().await?;
    let sessions = sessions
        .iter()
        .map(|record| SessionView::from(record).on_node(nodes.remove(record.id.as_str())))
        .collect();
    Ok(JsonResponse(SessionList { sessions }))
}

/// Get one session.
#[utoipa::path(get, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<SessionView>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let node = state.sessions.node_of(&record.id).await?;
    Ok(JsonResponse(SessionView::from(&record).on_node(node)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionRequest {
    pub name: Option<String>,
    /// The session's own pacing; `null` returns to its engine's default.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub pacing: Option<Option<Pacing>>,
    /// The pool it sends for (`^[A-Za-z0-9_-]{1,64}$`); `null` takes it out.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub pool: Option<Option<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
}

/// Tells "absent" (leave as is) from `null` (clear).
fn double_option<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Change a session's name, webhook URL, pacing or pool.
#[utoipa::path(patch, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    request_body = UpdateSessionRequest,
    responses((status = 200, body = SessionView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<UpdateSessionRequest>,
) -> ApiResult<JsonResponse<SessionView>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let name = request.name.as_deref().map(parse_name).transpose()?;
    let mut record = record;
    if let Some(name) = name {
        record = state.sessions.rename(&record.id, &name).await?;
    }
    if let Some(url) = request.webhook_url {
        record = state.sessions.set_webhook(&record.id, url.as_deref()).await?;
    }
    if let Some(pacing) = request.pacing {
        if let Some(pacing) = &pacing {
            pacing.validate().map_err(|e| ApiError::unprocessable("invalid_pacing", e))?;
        }
        record = state.sessions.set_pacing(&record.id, pacing.as_ref()).await?;
    }
    if let Some(pool) = request.pool {
        if let Some(pool) = &pool
            && SessionId::parse(pool).is_err()
        {
            return Err(ApiError::unprocessable(
                "invalid_pool",
                "pool names are 1 to 64 letters, digits, `_` or `-`",
            ));
        }
        record = state.sessions.set_pool(&record.id, pool.as_deref()).await?;
    }
    Ok(JsonResponse(SessionView::from(&record)))
}

/// Delete a session: stops its connection and removes its stored credentials. Its messages not
/// yet sent do not wait for it: queued pool messages move to another member of the pool, the
/// rest become `failed` with the reason `session deleted` (and their `message.failed` webhooks).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "sessions", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem),
        (status = 409, description = "`session_on_other_node`: another node of the cluster runs the session", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    state.sessions.delete(&record.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

macro_rules! lifecycle_action {
    ($name:ident, $method:ident, $path:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "sessions", params(("id" = String, Path)),
            responses((status = 200, body = SessionView), (status = 404, body = Problem),
                (status = 409, description = "another node runs the session (`session_on_other_node`)", body = Problem),
                (status = 501, body = Problem)),
            security(("bearer" = []), ("api_key" = [])))]
        pub async fn $name(
            State(state): State<AppState>,
            Auth(principal): Auth,
            Path(id): Path<String>,
        ) -> ApiResult<JsonResponse<SessionView>> {
            let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
            let record = state.sessions.$method(&record.id).await?;
            let node = state.sessions.node_of(&record.id).await?;
            Ok(JsonResponse(SessionView::from(&record).on_node(node)))
        }
    };
}

lifecycle_action!(
    connect,
    connect,
    "/api/v1/sessions/{id}/connect",
    "Connect: shows QR codes (or logs in with stored credentials); the session reconnects after restarts."
);
lifecycle_action!(
    disconnect,
    disconnect,
    "/api/v1/sessions/{id}/disconnect",
    "Disconnect and stay offline (the link is kept)."
);
lifecycle_action!(restart, restart, "/api/v1/sessions/{id}/restart", "Close and reopen the connection.");
lifecycle_action!(
    logout,
    logout,
    "/api/v1/sessions/{id}/logout",
    "Unlink the phone and remove the credentials; the next connect shows a new QR code."
);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairCodeRequest {
    /// The phone number of the WhatsApp account to link, in any accepted format.
    pub phone: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PairCodeResponse {
    /// 8 characters to enter on the phone (WhatsApp → Linked devices → Link with phone number).
    pub code: String,
    /// The same code as WhatsApp shows it, `ABCD-EFGH`.
    pub display: String,
    pub expires_at: String,
}

/// Link by pairing code instead of QR code.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/pair-code", tag = "sessions", params(("id" = String, Path)),
    request_body = PairCodeRequest,
    responses((status = 200, body = PairCodeResponse), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn pair_code(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<PairCodeRequest>,
) -> ApiResult<JsonResponse<PairCodeResponse>> {
    let record = authorized_session(&state, &principal, &id, Scope::Sessions).await?;
    let phone = phone_for_caller(&state, &principal, &request.phone).await?;
    let live = state.sessions.pair_code(&record.id, &phone).await?;
    let display =
        format!("{}-{}", &live.code[..4.min(live.code.len())], &live.code[4.min(live.code.len())..]);
    Ok(JsonResponse(PairCodeResponse { code: live.code, display, expires_at: rfc3339(live.expires_at) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Page size (1–200, default 50).
    pub limit: Option<u32>,
    /// Return events older than this event id (the last id of the previous page).
    pub before: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityEntry {
    pub id: String,
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: Option<serde_json::Value>,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActivityPage {
    pub events: Vec<ActivityEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// The session's activity log, newest first.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/activity", tag = "sessions", params(("id" = String, Path), ActivityQuery),
    responses((status = 200, body = ActivityPage), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn activity(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<ActivityQuery>,
) -> ApiResult<JsonResponse<ActivityPage>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let limit = super::extract::page_limit(query.limit)?;
    let events = state.activity.session_events(&record.id, query.before.as_deref(), limit).await?;
    let next_before = (events.len() as u32 == limit).then(|| events.last().map(|e| e.id.clone())).flatten();
    let events = events
        .into_iter()
        .map(|e| ActivityEntry {
            detail: e.detail.as_deref().and_then(|d| serde_json::from_str(d).ok()),
            id: e.id,
            kind: e.kind,
            created_at: rfc3339(e.created_at),
        })
        .collect();
    Ok(JsonResponse(ActivityPage { events, next_before }))
}
