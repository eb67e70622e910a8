//! Service errors → HTTP problems, in one place.

use axum::http::StatusCode;

use crate::error::ApiError;
use wagate_engine::EngineError;
use wagate_service::accounts::AccountError;
use wagate_service::auth::{MissingScope, TokenError};
use wagate_service::media::MediaError;
use wagate_service::messages::MessageError;
use wagate_service::outbox::OutboxError;
use wagate_service::sessions::SessionError;
use wagate_service::webhooks::WebhookError;
use wagate_store::{Outage, StoreError};

/// `Retry-After` when the database's disk is full: an operator has to free space.
const STORAGE_FULL_RETRY_SECS: u64 = 30;
/// `Retry-After` when the database is locked or out of reach: usually a matter of seconds.
const DATABASE_RETRY_SECS: u64 = 5;
/// `Retry-After` while this server stops: a restart, or another node, takes over in seconds.
const SHUTTING_DOWN_RETRY_SECS: u64 = 5;
/// `Retry-After` when the WhatsApp engine failed a request: mostly a connection being renewed.
const ENGINE_RETRY_SECS: u64 = 5;

mod seed;

pub(crate) use seed::{seed_error_fields, seed_errors};

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict { entity } => {
                ApiError::conflict("conflict", format!("{entity} already exists"))
            }
            other => match other.outage() {
                Some(Outage::StorageFull) => {
                    tracing::error!(error = %other, "the database's disk is full");
                    ApiError::unavailable(
                        "storage_full",
                        "the server's storage is full; nothing of this request was kept, try again later",
                        STORAGE_FULL_RETRY_SECS,
                    )
                }
                Some(Outage::Unavailable) => {
                    tracing::warn!(error = %other, "the database is unavailable");
                    ApiError::unavailable(
                        "database_unavailable",
                        "the database is busy or out of reach; nothing of this request was kept, try again shortly",
                        DATABASE_RETRY_SECS,
                    )
                }
                None => ApiError::internal("database error", other),
            },
        }
    }
}

impl From<MessageError> for ApiError {
    fn from(err: MessageError) -> Self {
        let message = err.to_string();
        match err {
            MessageError::Invalid(detail) => ApiError::unprocessable("invalid_message", detail),
            MessageError::InvalidPhone(err) => ApiError::bad_request("invalid_phone", err.to_string()),
            MessageError::InvalidGroup => ApiError::bad_request("invalid_recipient", message),
            MessageError::InvalidIdempotencyKey => ApiError::bad_request("invalid_idempotency_key", message),
            MessageError::NoSessionForPhone(_) => ApiError::not_found("session_not_found", message),
            MessageError::PoolNotFound(_) => ApiError::not_found("pool_not_found", message),
            MessageError::NotFound => ApiError::not_found("message_not_found", message),
            MessageError::Media(err) => ApiError::from(err),
            MessageError::Delivery(err) => ApiError::from(err),
            MessageError::Session(err) => ApiError::from(err),
            MessageError::Store(err) => ApiError::from(err),
        }
    }
}

impl From<OutboxError> for ApiError {
    fn from(err: OutboxError) -> Self {
        let message = err.to_string();
        match err {
            OutboxError::IdempotencyMismatch => ApiError::conflict("idempotency_key_reused", message),
            OutboxError::NotFound => ApiError::not_found("message_not_found", message),
            OutboxError::ShuttingDown => {
                ApiError::unavailable("shutting_down", message, SHUTTING_DOWN_RETRY_SECS)
            }
            OutboxError::WrongStatus { .. } => ApiError::conflict("invalid_message_status", message),
            OutboxError::Store(err) => ApiError::from(err),
        }
    }
}

impl From<MediaError> for ApiError {
    fn from(err: MediaError) -> Self {
        match err {
            MediaError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string())
            }
            MediaError::WrongType { .. } | MediaError::Empty => {
                ApiError::unprocessable("invalid_media", err.to_string())
            }
            MediaError::Url(_) => ApiError::unprocessable("invalid_media_url", err.to_string()),
            MediaError::BrokenUpload(_) => ApiError::bad_request("invalid_multipart", err.to_string()),
            other => ApiError::internal("media", other),
        }
    }
}

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
            // The session's state, not the server, stands in the way: connect it first.
            SessionError::Engine(EngineError::NotConnected | EngineError::Closed) => {
                ApiError::conflict("session_not_connected", "the session is not connected; connect it first")
            }
            SessionError::Engine(other) => {
                ApiError::unavailable("engine_error", other.to_string(), ENGINE_RETRY_SECS)
            }
            SessionError::OnOtherNode(node) => {
                ApiError { runs_on: Some(node), ..ApiError::conflict("session_on_other_node", message) }
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
            WebhookError::EmptyEvents => ApiError::unprocessable("invalid_field", "events must not be empty"),
            WebhookError::NotFound => ApiError::not_found("webhook_not_found", "webhook not found"),
            WebhookError::EventNotFound(event_id) => {
                ApiError::not_found("event_not_found", format!("no event {event_id} for this endpoint"))
            }
            WebhookError::UnknownDeliveryStatus => {
                ApiError::bad_request("invalid_query", "status must be pending, delivered or dead")
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

// --- One-time passwords -------------------------------------------------------------------

use wagate_core::OtpStatus;
use wagate_service::otp::templates::TemplateError;
use wagate_service::otp::{OtpError, SettingsError};

impl From<OtpError> for ApiError {
    fn from(err: OtpError) -> Self {
        let message = err.to_string();
        match err {
            OtpError::InvalidPhone(_) => ApiError::bad_request("invalid_phone", message),
            OtpError::CountryNotAllowed(_) => ApiError::unprocessable("country_not_allowed", message),
            OtpError::InvalidLength => ApiError::unprocessable("invalid_length", message),
            OtpError::InvalidTtl(_) => ApiError::unprocessable("invalid_ttl", message),
            OtpError::InvalidLocale(_) => ApiError::unprocessable("invalid_locale", message),
            OtpError::InvalidBrand => ApiError::unprocessable("invalid_field", message),
            OtpError::SessionAndPool => ApiError::unprocessable("invalid_body", message),
            OtpError::InvalidTemplateName => ApiError::unprocessable("invalid_template_name", message),
            OtpError::UnknownTemplate(_) => ApiError::unprocessable("unknown_template", message),
            OtpError::TemplateNotFound => ApiError::not_found("template_not_found", message),
            OtpError::Template(TemplateError::Link) => ApiError::unprocessable("template_has_link", message),
            OtpError::Template(_) => ApiError::unprocessable("invalid_template", message),
            OtpError::CustomCodeForbidden => ApiError::forbidden("missing_scope", message),
            OtpError::InvalidCustomCode(_) => ApiError::unprocessable("invalid_custom_code", message),
            OtpError::InvalidCode(_) => ApiError::unprocessable("invalid_code", message),
            OtpError::MissingTarget => ApiError::unprocessable("missing_field", message),
            OtpError::RateLimited(_, wait) => {
                ApiError { detail: message, ..ApiError::too_many_requests(wait.as_secs() + 1) }
            }
            OtpError::PhoneLocked(wait) => ApiError {
                code: "phone_locked",
                detail: message,
                ..ApiError::too_many_requests(wait.as_secs() + 1)
            },
            OtpError::NotFound => ApiError::not_found("otp_not_found", message),
            OtpError::NotPending(status) => ApiError::conflict(
                match status {
                    OtpStatus::Approved => "otp_already_used",
                    OtpStatus::Expired => "otp_expired",
                    OtpStatus::Canceled => "otp_canceled",
                    OtpStatus::MaxAttempts => "otp_max_attempts",
                    OtpStatus::Failed | OtpStatus::Pending => "otp_failed",
                },
                message,
            ),
            OtpError::ResendCooldown(wait) => ApiError {
                code: "resend_cooldown",
                detail: message,
                ..ApiError::too_many_requests(wait.as_secs() + 1)
            },
            OtpError::ResendLimit => ApiError::conflict("resend_limit_reached", message),
            OtpError::NoSession(_) => ApiError::conflict("no_connected_session", message),
            OtpError::SessionNotLinked => ApiError::conflict("session_not_linked", message),
            OtpError::ShuttingDown => {
                ApiError::unavailable("shutting_down", message, SHUTTING_DOWN_RETRY_SECS)
            }
            OtpError::Session(err) => ApiError::from(err),
            OtpError::Settings(SettingsError::Invalid(detail)) => {
                ApiError::unprocessable("invalid_settings", detail)
            }
            OtpError::Settings(SettingsError::Store(err)) | OtpError::Store(err) => ApiError::from(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::header;
    use axum::response::IntoResponse;

    use super::*;

    #[test]
    fn every_unavailable_answer_says_when_to_come_back() {
        let answers = [
            ApiError::from(SessionError::Engine(EngineError::Other("the socket broke".into()))),
            ApiError::from(OutboxError::ShuttingDown),
            ApiError::from(OtpError::ShuttingDown),
        ];
        for answer in answers {
            let response = answer.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let retry_after = response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok());
            assert_eq!(retry_after, Some("5"));
        }
    }
}
