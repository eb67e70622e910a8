//! `/api/v1/webhooks`: endpoints, their delivery log, replays.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::Scope;
use wagate_store::{NewWebhook, WebhookRecord};

use super::extract::{Auth, Json, QueryParams};
use super::sessions::authorized_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::time::rfc3339;
use wagate_service::webhooks::Webhooks;

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
    let not_found = || ApiError::not_found("webhook_not_found", "webhook not found");
    let webhook = state.store.webhook(id).await?.ok_or_else(not_found)?;
    if principal.may_access(&webhook.owner_id, webhook.session_id.as_ref().map(|s| s.as_str())) {
        Ok(webhook)
    } else {
        Err(not_found())
    }
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
    let events = request.events.unwrap_or_else(|| vec!["*".into()]);
    if events.is_empty() {
        return Err(ApiError::unprocessable("invalid_field", "events must not be empty"));
    }
    Webhooks::check_events(&events)?;
    let webhooks = state.sessions.webhooks();
    webhooks.check_url(&request.url).await?;
    let secret = Webhooks::generate_secret();
    let owner = session.as_ref().map_or(principal.user_id.as_str(), |s| s.owner_id.as_str());
    let mut record = state
        .store
        .insert_webhook(NewWebhook {
            owner_id: owner,
            session_id: session.as_ref().map(|s| &s.id),
            url: &request.url,
            events: &events,
            secret: &webhooks.seal_secret(&secret),
            from_session_url: false,
        })
        .await?;
    if !request.enabled {
        state.store.update_webhook(&record.id, &record.url, &record.events, false).await?;
        record.enabled = false;
    }
    webhooks.invalidate();
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
    let all = state.store.webhooks(principal.owner_filter()).await?;
    let visible = all.iter().filter(|w| match (&principal.sessions, &w.session_id) {
        (None, _) => true,
        (Some(allowed), Some(session)) => allowed.contains(session),
        (Some(_), None) => false,
    });
    Ok(JsonResponse(WebhookList { webhooks: visible.map(WebhookView::from).collect() }))
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
    let webhooks = state.sessions.webhooks();
    let url = request.url.unwrap_or(webhook.url.clone());
    webhooks.check_url(&url).await?;
    let events = request.events.unwrap_or(webhook.events.clone());
    if events.is_empty() {
        return Err(ApiError::unprocessable("invalid_field", "events must not be empty"));
    }
    Webhooks::check_events(&events)?;
    let enabled = request.enabled.unwrap_or(webhook.enabled);
    state.store.update_webhook(&webhook.id, &url, &events, enabled).await?;
    webhooks.invalidate();
    webhooks.wake();
    let webhook = visible_webhook(&state, &principal, &id, Scope::Read).await?;
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
    state.store.delete_webhook(&webhook.id).await?;
    state.sessions.webhooks().invalidate();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
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
    if let Some(status) = &query.status
        && !["pending", "delivered", "dead"].contains(&status.as_str())
    {
        return Err(ApiError::bad_request("invalid_query", "status must be pending, delivered or dead"));
    }
    let records = state.store.webhook_deliveries(&webhook.id, query.status.as_deref(), limit).await?;
    let mut deliveries = Vec::with_capacity(records.len());
    for d in records {
        let attempts = state.store.webhook_attempts(&d.id).await?;
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
    let events = match (request.event_id, request.since, request.until) {
        (Some(event_id), None, None) => {
            let event = state.store.webhook_event(&event_id).await?;
            match event {
                Some(event) if event.owner_id == webhook.owner_id => vec![event.id],
                _ => {
                    return Err(ApiError::not_found(
                        "event_not_found",
                        format!("no event {event_id} for this endpoint"),
                    ));
                }
            }
        }
        (None, Some(since), until) => {
            let since = parse("since", &since)?;
            let until = until.as_deref().map(|u| parse("until", u)).transpose()?.unwrap_or(i64::MAX);
            state.store.webhook_event_ids(&webhook.id, since, until).await?
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "give `event_id`, or `since` (and optionally `until`)",
            ));
        }
    };
    let webhooks = state.sessions.webhooks();
    let queued = state.store.replay_webhook_events(&webhook.id, &events, webhooks.next_seq()).await?;
    webhooks.wake();
    Ok((StatusCode::ACCEPTED, JsonResponse(ReplayResponse { queued })))
}
