//! Errors on the seed-compatible routes: still problem+json, with the seeds' `success: false`,
//! `message` and `error` fields added. On the routes only the seeds have, also the seeds'
//! status codes: they answer every invalid request with 400, where the v1 API tells a
//! malformed body (400) from one of the wrong shape (422).

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::ApiError;

/// For the seed routes: the seeds' fields, and 400 where v1 says 422.
pub(crate) async fn seed_errors(request: Request, next: Next) -> Response {
    with_seed_fields(next.run(request).await, true).await
}

/// For v1 routes that seed clients also call (`POST /api/v1/otp/send`): the seeds' fields,
/// v1's status codes.
pub(crate) async fn seed_error_fields(request: Request, next: Next) -> Response {
    with_seed_fields(next.run(request).await, false).await
}

async fn with_seed_fields(response: Response, seed_status: bool) -> Response {
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
    if seed_status && parts.status == StatusCode::UNPROCESSABLE_ENTITY {
        parts.status = StatusCode::BAD_REQUEST;
        problem["status"] = json!(400);
        problem["title"] = json!("Bad Request");
    }
    problem["success"] = json!(false);
    problem["message"] = problem["detail"].clone();
    problem["error"] = problem["title"].clone();
    let bytes = serde_json::to_vec(&problem).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(bytes))
}
