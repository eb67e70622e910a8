//! The admin dashboard (`/admin`): server-rendered pages with their style and script inline, a little
//! JavaScript for live updates over Server-Sent Events, cookie sign-in with CSRF tokens.

mod auth;
mod overview;
mod page;
mod records;
mod sessions;
mod settings;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(auth::login_page).post(auth::login))
        .route("/admin/logout", post(auth::logout))
        .route("/admin", get(overview::overview))
        .route("/admin/status", get(overview::overview))
        .route("/admin/live", get(overview::live))
        .route("/admin/sessions", get(sessions::list).post(sessions::create))
        .route("/admin/sessions/{id}", get(sessions::show))
        .route("/admin/sessions/{id}/events", get(sessions::events))
        .route("/admin/sessions/{id}/qr.png", get(sessions::qr_png))
        .route("/admin/sessions/{id}/{action}", post(sessions::action))
        .route("/admin/messages", get(records::messages))
        .route("/admin/messages/{id}", get(records::message))
        .route("/admin/messages/{id}/{action}", post(records::message_action))
        .route("/admin/otp", get(records::otp_log))
        .route("/admin/otp/{id}/cancel", post(records::otp_cancel))
        .route("/admin/otp/phones/reset", post(records::otp_reset_phone))
        .route("/admin/webhooks", get(settings::webhooks))
        .route("/admin/webhooks/{id}/replay", post(settings::replay_dead))
        .route("/admin/api-keys", get(settings::api_keys).post(settings::create_api_key))
        .route("/admin/api-keys/{id}/revoke", post(settings::revoke_api_key))
        .route("/admin/users", get(settings::users).post(settings::create_user))
        .route("/admin/users/{id}/{action}", post(settings::user_action))
        .route("/admin/sandbox", get(settings::sandbox))
        .route("/admin/sandbox/inbound", post(settings::sandbox_inbound))
        .route("/admin/", get(|| async { Redirect::permanent("/admin") }))
}

/// After a form: back to `to`, with a short notice shown on the page.
fn done(to: &str, notice: &str) -> Response {
    let separator = if to.contains('?') { '&' } else { '?' };
    let notice: String = notice
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => char::from(b).to_string(),
            b' ' => "+".into(),
            other => format!("%{other:02X}"),
        })
        .collect();
    Redirect::to(&format!("{to}{separator}notice={notice}")).into_response()
}

/// A form that failed: the same page with the reason (422).
fn refused(message: &str) -> Response {
    page::error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Times as the dashboard shows them (UTC, to the second).
fn when(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
