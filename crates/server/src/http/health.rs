//! `/health` (the process answers), `/ready` (database reachable, workers running) and
//! `/api/health` (seeds 001/002: both, in the seeds' envelope).

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/health", get(seed_health))
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
    let readiness = readiness(&state).await;
    (readiness.status_code(), Json(readiness))
}

async fn readiness(state: &AppState) -> ReadyResponse {
    let database = state.analytics.database_reachable().await;
    let workers = state.ready.load(Ordering::SeqCst) && !*state.shutdown.borrow();
    ReadyResponse {
        status: if database && workers { "ready" } else { "not_ready" },
        database: if database { "ok" } else { "unreachable" },
        workers: if workers { "running" } else { "stopped" },
    }
}

impl ReadyResponse {
    fn status_code(&self) -> StatusCode {
        if self.status == "ready" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }
    }
}

/// The seeds' health check: readiness in their envelope (`success`, `message`, `data`), with
/// the version. Like `/health`, it needs no credentials.
#[utoipa::path(get, path = "/api/health", tag = "compat",
    responses((status = 200, description = "`{success: true, message, data: {status, database, workers, version}}`"),
        (status = 503, description = "the same with `success: false`")))]
pub async fn seed_health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let readiness = readiness(&state).await;
    let status = readiness.status_code();
    let healthy = status == StatusCode::OK;
    let body = json!({
        "success": healthy,
        "message": if healthy { "wagate is running" } else { "wagate is not ready" },
        "data": {
            "status": readiness.status,
            "database": readiness.database,
            "workers": readiness.workers,
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    (status, Json(body))
}
