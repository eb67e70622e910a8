//! `/api/v1/users` (admin only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wagate_core::{Role, Scope};

use super::extract::{Auth, Json};
use super::views::UserView;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;

pub fn routes() -> Router<AppState> {
    Router::new().route("/users", get(list).post(create)).route("/users/{id}", patch(update))
}

fn require_admin(principal: &Principal) -> ApiResult<()> {
    principal.require(Scope::Admin)?;
    if !principal.sees_all() {
        return Err(ApiError::forbidden("admin_only", "only admins manage users"));
    }
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
}

/// List users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = UserList), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<JsonResponse<UserList>> {
    require_admin(&principal)?;
    let users = state.accounts.users().await?;
    Ok(JsonResponse(UserList { users: users.iter().map(UserView::from).collect() }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    /// At least 8 characters.
    pub password: String,
    #[serde(default = "default_role")]
    #[schema(value_type = String, example = "user")]
    pub role: Role,
}

fn default_role() -> Role {
    Role::User
}

/// Create a user.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(request): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, JsonResponse<UserView>)> {
    require_admin(&principal)?;
    let user = state.accounts.create_user(&request.username, &request.password, request.role).await?;
    Ok((StatusCode::CREATED, JsonResponse(UserView::from(&user))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub password: Option<String>,
    pub disabled: Option<bool>,
}

/// Reset a user's password or disable/enable the user.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<UpdateUserRequest>,
) -> ApiResult<JsonResponse<UserView>> {
    require_admin(&principal)?;
    let user = state
        .accounts
        .user(&id)
        .await
        .map_err(|_| ApiError::not_found("user_not_found", "user not found"))?;
    if let Some(password) = &request.password {
        state.accounts.set_password(&user.username, password).await?;
    }
    if let Some(disabled) = request.disabled {
        if disabled && user.id == principal.user_id {
            return Err(ApiError::conflict("cannot_disable_self", "you cannot disable yourself"));
        }
        state.accounts.set_disabled(&user.id, disabled).await?;
    }
    let user = state.accounts.user(&id).await?;
    Ok(JsonResponse(UserView::from(&user)))
}
