//! `/api/v1/auth`: log in, who am I.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Auth, ClientIp, Json};
use super::views::UserView;
use crate::app::AppState;
use crate::error::{ApiResult, Problem};
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route("/auth/login", post(login)).route("/auth/me", get(me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: String,
    pub user: UserView,
}

/// Exchange a username and password for a bearer token. Rate limited per IP and per username.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem),
        (status = 429, description = "too many attempts; see Retry-After", body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(request): Json<LoginRequest>,
) -> ApiResult<JsonResponse<LoginResponse>> {
    let done = state.accounts.login(&ip, &request.username, &request.password).await?;
    Ok(JsonResponse(LoginResponse {
        token: done.token,
        token_type: "Bearer",
        expires_at: rfc3339(done.expires_at),
        user: UserView::from(&done.user),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub sessions: Option<Vec<String>>,
    pub api_key_id: Option<String>,
}

/// The caller's identity and rights.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = MeResponse), (status = 401, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn me(Auth(principal): Auth) -> JsonResponse<MeResponse> {
    JsonResponse(MeResponse {
        user_id: principal.user_id,
        username: principal.username,
        role: principal.role.to_string(),
        scopes: principal.scopes.iter().map(|s| s.to_string()).collect(),
        sessions: principal.sessions.map(|ids| ids.iter().map(ToString::to_string).collect()),
        api_key_id: principal.api_key_id,
    })
}
