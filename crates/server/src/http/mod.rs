//! The HTTP layer: handlers parse, authorize, call one service, map the error.

mod admin;
mod analytics;
mod api_keys;
mod audit;
mod auth;
mod body_deadline;
mod chats;
mod cluster;
mod compat;
mod compat_messages;
mod compat_otp;
mod docs;
mod errors;
pub mod extract;
pub mod forward;
mod health;
mod messages;
mod metrics;
mod numbers;
pub mod openapi;
mod otp;
mod quota;
#[cfg(feature = "sandbox")]
mod sandbox;
mod schemas;
mod sessions;
mod streams;
mod users;
mod views;
mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::app::AppState;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(auth::routes())
        .merge(users::routes())
        .merge(cluster::routes())
        .merge(api_keys::routes())
        .merge(sessions::routes())
        .merge(messages::routes())
        .merge(chats::routes())
        .merge(numbers::routes())
        .merge(otp::routes())
        .merge(webhooks::routes())
        .merge(streams::routes())
        .merge(analytics::routes());
    #[cfg(feature = "sandbox")]
    let api = api.merge(sandbox::routes());

    Router::new()
        .nest("/api/v1", api)
        .merge(compat::routes().merge(compat_messages::routes()).merge(compat_otp::routes()).merge(analytics::seed_routes()).layer(middleware::from_fn(errors::seed_errors)))
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(admin::routes())
        .merge(docs::routes())
        .fallback(|| async { ApiError::not_found("route_not_found", "no such route") })
        .layer(middleware::from_fn_with_state(state.clone(), around_every_request))
        .layer(DefaultBodyLimit::max(extract::JSON_BODY_LIMIT))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id)
        }).on_response(DefaultOnResponse::new().level(Level::INFO)))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// What every request goes through, outermost first: it is counted for the metrics, its body
/// gets a deadline, it is carried to the node that runs its session when that is another,
/// its effect is written to the audit trail, its credential's quota is told in headers, and a
/// bare framework error becomes a problem body. One layer rather than one per step: each layer
/// costs every request a clone of the route and a boxed future.
async fn around_every_request(State(state): State<AppState>, request: Request<Body>, next: Next) -> Response {
    let body_timeout = Duration::from_secs(state.config.body_read_timeout_secs.max(1));
    let state = &state;
    metrics::count_requests(state, request, |request| {
        body_deadline::limit_body(body_timeout, request, |request| {
            forward::to_owner(state, request, |request| {
                audit::audit_trail(state, request, |request| {
                    quota::rate_limit_headers(request, |request| {
                        problem_for_bare_errors(request, |request| next.run(request))
                    })
                })
            })
        })
    })
    .await
}

/// What a step of [`around_every_request`] calls to have the request answered: the steps after
/// it, then the route.
pub(crate) trait Rest {
    type Answered: Future<Output = Response>;

    fn answer(self, request: Request<Body>) -> Self::Answered;
}

impl<Steps, Answered> Rest for Steps
where
    Steps: FnOnce(Request<Body>) -> Answered,
    Answered: Future<Output = Response>,
{
    type Answered = Answered;

    fn answer(self, request: Request<Body>) -> Answered {
        self(request)
    }
}

/// Routing errors axum answers itself (405 and friends) get a problem body too.
async fn problem_for_bare_errors(request: Request<Body>, next: impl Rest) -> Response {
    let response = next.answer(request).await;
    let status = response.status();
    // Errors of the framework's own extractors (e.g. a WebSocket route without an upgrade)
    // come as plain text; ours are always problem+json.
    let is_bare = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !is_bare {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        _ => "http_error",
    };
    let detail = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text.trim().to_owned()
    };
    let mut problem = ApiError::new(status, code, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// How often streams send a keep-alive comment.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);
