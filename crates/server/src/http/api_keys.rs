//! `/api/v1/api-keys`: keys are shown once, stored hashed, scoped and optionally limited to sessions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wagate_core::{Scope, ScopeSet};

use super::extract::{Auth, Json};
use super::sessions::visible_session;
use super::views::ApiKeyView;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};

pub fn routes() -> Router<AppState> {
    Router::new().route("/api-keys", get(list).post(create)).route("/api-keys/{id}", delete(revoke))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    pub name: String,
    /// Any of `send`, `otp`, `sessions`, `read`, `admin`.
    #[schema(value_type = Vec<String>, example = json!(["send", "read"]))]
    pub scopes: Vec<Scope>,
    /// Limit the key to these sessions.
    pub sessions: Option<Vec<String>>,
    /// RFC 3339 expiry.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key itself. It is shown only this once.
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyView,
}

/// Create an API key (the response is the only time the key is shown).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api keys", request_body = CreateApiKeyRequest,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(request): Json<CreateApiKeyRequest>,
) -> ApiResult<(StatusCode, JsonResponse<CreatedApiKey>)> {
    let sessions = match request.sessions {
        Some(ids) => {
            let mut sessions = Vec::with_capacity(ids.len());
            for id in ids {
                sessions.push(visible_session(&state, &principal, &id).await?.id);
            }
            Some(sessions)
        }
        None => None,
    };
    let expires_at = request
        .expires_at
        .map(|at| {
            chrono::DateTime::parse_from_rfc3339(&at)
                .map(|t| t.timestamp_millis())
                .map_err(|_| ApiError::unprocessable("invalid_field", "expires_at must be an RFC 3339 time"))
        })
        .transpose()?;
    let created = state
        .accounts
        .create_api_key(&principal, &request.name, ScopeSet::new(request.scopes), sessions, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        JsonResponse(CreatedApiKey { key: created.key, api_key: ApiKeyView::from(&created.record) }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyView>,
}

/// List API keys (your own; admins see all). Keys themselves are never shown again.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api keys", responses((status = 200, body = ApiKeyList)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<ApiKeyList>> {
    principal.require(Scope::Read)?;
    let keys = state.accounts.api_keys(principal.owner_filter()).await?;
    Ok(JsonResponse(ApiKeyList { api_keys: keys.iter().map(ApiKeyView::from).collect() }))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let not_found = || ApiError::not_found("api_key_not_found", "API key not found");
    let key = state.accounts.api_key(&id).await.map_err(|_| not_found())?;
    if !principal.owns(&key.user_id) {
        return Err(not_found());
    }
    state.accounts.revoke_api_key(&key.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
