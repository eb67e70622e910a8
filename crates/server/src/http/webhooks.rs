//! `/api/v1/webhooks`: endpoints, their delivery log, replays.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::Scope;
use wagate_store::WebhookRecord;

use super::extract::{Auth, Json, QueryParams};
use super::sessions::authorized_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::time::rfc3339;
use wagate_service::webhooks::{DeliveryLog, EndpointChange, NewEndpoint, Replay};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(show).patch(update).delete(remove))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route("/webhooks/{id}/replay", post(replay))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    /// Event types (`session.status`, `session.qr`, `message.received`, `message.status`,
    /// `otp.*`), `prefix.*` or `*`.
    pub events: Vec<String>,
    /// The one session it listens to; absent: all of the owner's sessions.
    pub session: Option<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&WebhookRecord> for WebhookView {
    fn from(w: &WebhookRecord) -> Self {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            session: w.session_id.as_ref().map(ToString::to_string),
            enabled: w.enabled,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The signing secret (Standard Webhooks `whsec_…`); shown only now.
    pub secret: String,
    #[serde(flatten)]
    pub webhook: WebhookView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    pub url: String,
    /// Default: every event (`["*"]`).
    pub events: Option<Vec<String>>,
    pub session: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

async fn visible_webhook(
    state: &AppState,
    principal: &Principal,
    id: &str,
    scope: Scope,
) -> ApiResult<WebhookRecord> {
    principal.require(scope)?;
    Ok(state.sessions.webhooks().endpoint(principal, id).await?)
}

/// Create an endpoint; the response carries its signing secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhook), (status = 422, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(request): Json<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, JsonResponse<CreatedWebhook>)> {
    principal.require(Scope::Sessions)?;
    let session = match &request.session {
        Some(id) => Some(authorized_session(&state, &principal, id, Scope::Sessions).await?),
        None if principal.sessions.is_some() => {
            return Err(ApiError::forbidden(
                "key_session_restricted",
                "a key limited to sessions must name one",
            ));
        }
        None => None,
    };
    let owner = session.as_ref().map_or(principal.user_id.as_str(), |s| s.owner_id.as_str());
    let (secret, record) = state
        .sessions
        .webhooks()
        .create_endpoint(NewEndpoint {
            owner_id: owner,
            session_id: session.as_ref().map(|s| &s.id),
            url: &request.url,
            events: request.events,
            enabled: request.enabled,
        })
        .await?;
    Ok((StatusCode::CREATED, JsonResponse(CreatedWebhook { secret, webhook: WebhookView::from(&record) })))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

/// List endpoints.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", responses((status = 200, body = WebhookList)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<WebhookList>> {
    principal.require(Scope::Read)?;
    let visible = state.sessions.webhooks().endpoints_of(&principal).await?;
    Ok(JsonResponse(WebhookList { webhooks: visible.iter().map(WebhookView::from).collect() }))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<WebhookView>> {
    let webhook = visible_webhook(&state, &principal, &id, Scope::Read).await?;
    Ok(JsonResponse(WebhookView::from(&webhook)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Change an endpoint's URL, events, or pause it (`enabled: false` keeps its queue).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)), request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<UpdateWebhookRequest>,
) -> ApiResult<JsonResponse<WebhookView>> {
    let webhook = visible_webhook(&state, &principal, &id, Scope::Sessions).await?;
    let change = EndpointChange { url: request.url, events: request.events, enabled: request.enabled };
    let webhook = state.sessions.webhooks().update_endpoint(&webhook, change).await?;
    // The answer shows the endpoint: that needs `read` as well.
    principal.require(Scope::Read)?;
    Ok(JsonResponse(WebhookView::from(&webhook)))
}

/// Delete an endpoint and its pending deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let webhook = visible_webhook(&state, &principal, &id, Scope::Sessions).await?;
    state.sessions.webhooks().delete_endpoint(&webhook).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `pending`, `delivered` or `dead`.
    pub status: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Sent as `webhook-id`.
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `dead` (a dead letter: no more attempts).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

/// The endpoint's deliveries with every attempt, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", params(("id" = String, Path), DeliveriesQuery),
    responses((status = 200, body = DeliveryList), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> ApiResult<JsonResponse<DeliveryList>> {
    let webhook = visible_webhook(&state, &principal, &id, Scope::Read).await?;
    let limit = super::extract::page_limit(query.limit)?;
    let log = state.sessions.webhooks().delivery_log(&webhook, query.status.as_deref(), limit).await?;
    let mut deliveries = Vec::with_capacity(log.len());
    for DeliveryLog { delivery: d, attempts } in log {
        deliveries.push(DeliveryView {
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            finished_at: d.finished_at.map(rfc3339),
            attempt_log: attempts
                .into_iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                    at: rfc3339(a.created_at),
                })
                .collect(),
        });
    }
    Ok(JsonResponse(DeliveryList { deliveries }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// One event (`evt_…`)…
    pub event_id: Option<String>,
    /// …or every event sent to this endpoint in `[since, until)` (RFC 3339).
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayResponse {
    /// How many events were queued again (as new deliveries, in their original order).
    pub queued: usize,
}

/// Send events to this endpoint again (e.g. dead letters after an outage).
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/replay", tag = "webhooks", params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 202, body = ReplayResponse), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn replay(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<ReplayRequest>,
) -> ApiResult<(StatusCode, JsonResponse<ReplayResponse>)> {
    let webhook = visible_webhook(&state, &principal, &id, Scope::Sessions).await?;
    let parse = |field: &str, v: &str| {
        chrono::DateTime::parse_from_rfc3339(v).map(|t| t.timestamp_millis()).map_err(|_| {
            ApiError::unprocessable("invalid_field", format!("{field} must be an RFC 3339 time"))
        })
    };
    let which = match (request.event_id, request.since, request.until) {
        (Some(event_id), None, None) => Replay::Event(event_id),
        (None, Some(since), until) => Replay::Window {
            since: parse("since", &since)?,
            until: until.as_deref().map(|u| parse("until", u)).transpose()?.unwrap_or(i64::MAX),
        },
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "give `event_id`, or `since` (and optionally `until`)",
            ));
        }
    };
    let queued = state.sessions.webhooks().replay(&webhook, which).await?;
    Ok((StatusCode::ACCEPTED, JsonResponse(ReplayResponse { queued })))
}
