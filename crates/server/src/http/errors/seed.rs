//! Errors on the seed-compatible routes: still problem+json, with the seeds' `success: false`
//! and `message` fields added.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Errors stay problem+json and gain the seeds' `success: false` and `message` fields.
pub(crate) async fn seed_error_fields(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return ApiError::internal("compat", "unreadable problem body").into_response();
    };
    let mut problem: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    problem["success"] = json!(false);
    problem["message"] = problem["detail"].clone();
    let bytes = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
