//! `/health` (the process answers) and `/ready` (database reachable, workers running).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    pub status: &'static str,
    pub database: &'static str,
    pub workers: &'static str,
}

/// Readiness: the database answers and the session workers run.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ReadyResponse)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyResponse>) {
    let database = state.overview.database_reachable().await;
    let workers = state.ready.load(Ordering::SeqCst) && !*state.shutdown.borrow();
    let status = if database && workers { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (
        status,
        Json(ReadyResponse {
            status: if status == StatusCode::OK { "ready" } else { "not_ready" },
            database: if database { "ok" } else { "unreachable" },
            workers: if workers { "running" } else { "stopped" },
        }),
    )
}
