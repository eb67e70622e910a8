//! `/api/v1/otp`: issue, verify, follow, resend and cancel one-time passwords; tenant settings,
//! templates and per-phone failure counters. Each handler parses, calls one method of the OTP
//! service and renders; errors become problems in [`super::errors`].

mod admin;
mod log;
mod send;
mod verify;
mod views;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

pub use admin::*;
pub use log::*;
pub use send::*;
pub use verify::*;
pub use views::OtpView;

use super::extract::ClientIp;
use crate::app::AppState;
use crate::error::ApiError;
use wagate_service::auth::Principal;
use wagate_service::otp::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/otp", get(list))
        // Seed 004's route too: its clients read `message` on errors.
        .route("/otp/send", post(send).layer(axum::middleware::from_fn(super::errors::seed_error_fields)))
        .route("/otp/verify", post(verify))
        .route("/otp/generate", get(generate))
        .route("/otp/settings", get(settings).patch(update_settings))
        .route("/otp/templates", get(list_templates))
        .route("/otp/templates/{name}/{locale}", put(put_template).delete(delete_template))
        .route("/otp/phones/{phone}", get(phone_failures))
        .route("/otp/phones/{phone}/failures", axum::routing::delete(reset_phone_failures))
        .route("/otp/{id}", get(show))
        .route("/otp/{id}/resend", post(resend))
        .route("/otp/{id}/cancel", post(cancel))
}

/// Who is asking, for rate limits: the end user's IP (from `otp.client_ip_header` when the
/// caller sets it) and the credential.
pub(crate) struct OtpCaller(pub Caller);

impl FromRequestParts<AppState> for OtpCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let forwarded = state.config.otp.client_ip_header.as_ref().and_then(|name| {
            let value = parts.headers.get(name.as_str())?.to_str().ok()?;
            value
                .split(',')
                .next()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 64)
                .map(str::to_owned)
        });
        let ip = match forwarded {
            Some(ip) => ip,
            None => ClientIp::from_request_parts(parts, state).await?.0,
        };
        Ok(OtpCaller(Caller { ip, key: String::new() }))
    }
}

pub(crate) fn caller(principal: &Principal, OtpCaller(caller): OtpCaller) -> Caller {
    let key = principal.api_key_id.clone().unwrap_or_else(|| format!("user:{}", principal.user_id));
    Caller { key, ..caller }
}

/// Answers that carry codes or links are not cached anywhere.
fn no_store<T: IntoResponse>(status: StatusCode, body: T) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}
