//! `GET /metrics`: the server's figures in the Prometheus text format, and the middleware that
//! counts every HTTP request by route pattern and status.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use wagate_core::Scope;

use super::extract::Auth;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::Rest;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// The figures. With `metrics_public = true` no credentials are needed; otherwise an admin's
/// login token or an API key with the `metrics` scope (both see every tenant's totals).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 401, body = crate::error::Problem), (status = 403, body = crate::error::Problem)),
    security((), ("bearer" = []), ("api_key" = [])))]
pub async fn metrics(State(state): State<AppState>, request: Request) -> ApiResult<Response> {
    if !state.config.metrics_public {
        let (mut parts, _) = request.into_parts();
        let Auth(principal) =
            <Auth as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
                .await?;
        principal.require(Scope::Metrics)?;
    }
    let text = state.analytics.metrics_text(&state.metrics).await.map_err(ApiError::from)?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    Ok(response)
}

/// Counts the request under its route's pattern (`/api/v1/sessions/{id}`), never its path, so
/// the labels stay few.
pub(crate) async fn count_requests(state: &AppState, request: Request, next: impl Rest) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.answer(request).await;
    state.metrics.http_request(&route, response.status().as_u16(), started.elapsed());
    response
}
