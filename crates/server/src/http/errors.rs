//! Service errors → HTTP problems, in one place.

use axum::http::StatusCode;

use crate::error::ApiError;
use wagate_engine::EngineError;
use wagate_service::accounts::AccountError;
use wagate_service::auth::{MissingScope, TokenError};
use wagate_service::sessions::SessionError;
use wagate_service::webhooks::WebhookError;

impl From<MissingScope> for ApiError {
    fn from(err: MissingScope) -> Self {
        ApiError::forbidden("missing_scope", err.to_string())
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        let message = err.to_string();
        match err {
            SessionError::NotFound => ApiError::not_found("session_not_found", message),
            SessionError::Exists(_) => ApiError::conflict("session_exists", message),
            SessionError::EngineUnavailable(_) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "engine_not_available", message)
            }
            SessionError::AlreadyConnected => ApiError::conflict("already_connected", message),
            SessionError::AlreadyLinked => ApiError::conflict("already_linked", message),
            SessionError::NoQr(status) => ApiError::conflict(
                "qr_not_available",
                format!(
                    "{message}; a QR code is shown after POST /api/v1/sessions/{{id}}/connect (status now: {status})"
                ),
            ),
            SessionError::Engine(EngineError::NotConnected | EngineError::Closed) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "session_not_connected",
                "the session is not connected",
            ),
            SessionError::Engine(other) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_error", other.to_string())
            }
            SessionError::UnknownPool(_) => ApiError::not_found("pool_not_found", message),
            SessionError::NotSupported(_) => ApiError::conflict("not_supported_by_engine", message),
            SessionError::Webhook(err) => ApiError::from(err),
            SessionError::Store(err) => ApiError::from(err),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::InvalidUrl(detail) => ApiError::unprocessable("invalid_webhook_url", detail),
            WebhookError::UnknownEvent(event) => {
                ApiError::unprocessable("unknown_event_type", format!("unknown event type `{event}`"))
            }
            WebhookError::Store(err) => ApiError::from(err),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        let message = err.to_string();
        match err {
            AccountError::InvalidCredentials => ApiError::unauthorized("invalid_credentials", message),
            AccountError::RateLimited(wait) => ApiError::too_many_requests(wait.as_secs() + 1),
            AccountError::InvalidToken(TokenError::Expired) => {
                ApiError::unauthorized("token_expired", "the token expired; log in again")
            }
            AccountError::InvalidToken(_) => {
                ApiError::unauthorized("invalid_token", "the token is not valid")
            }
            AccountError::InvalidApiKey => ApiError::unauthorized("invalid_api_key", message),
            AccountError::ApiKeyExpired => ApiError::unauthorized("api_key_expired", message),
            AccountError::UserDisabled => ApiError::unauthorized("account_disabled", message),
            AccountError::InvalidInput(detail) => ApiError::unprocessable("invalid_field", detail),
            AccountError::UserExists => ApiError::conflict("user_exists", message),
            AccountError::NotFound => ApiError::not_found("not_found", message),
            AccountError::ScopeNotGrantable(_) => ApiError::forbidden("scope_not_grantable", message),
            AccountError::Store(err) => ApiError::from(err),
        }
    }
}
