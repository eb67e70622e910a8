//! Sending: `POST /api/v1/sessions/{id}/messages` and `POST /api/v1/messages`.

use axum::Json as JsonResponse;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wagate_core::Scope;
use wagate_store::SessionRecord;

use super::{MessageView, SendBody, SendMessageRequest};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::Auth;
use crate::http::sessions::authorized_session;
use wagate_service::sessions::PoolStrategy;

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_message", detail)
}

/// Accepts one message for `session`: durable in the outbox before the answer. Returns
/// whether it is new (not an idempotent repeat) and the message.
pub(crate) async fn accept(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    request: SendMessageRequest,
) -> ApiResult<(bool, MessageView)> {
    let key = headers.get("idempotency-key").map(HeaderValue::as_bytes);
    let accepted = state.messages.accept(session, request.into(), key).await?;
    Ok((accepted.created, MessageView::from(&accepted.message)))
}

/// The v1 answer: 202 with the message (200 for an idempotent repeat) and its status URL.
async fn respond(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    request: SendMessageRequest,
) -> ApiResult<Response> {
    let (created, view) = accept(state, session, headers, request).await?;
    let location = HeaderValue::from_str(&view.status_url).expect("ids are header-safe");
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, [(header::LOCATION, location)], JsonResponse(view)).into_response())
}

/// Queue a message from this session.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/messages", tag = "messages", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: same key and body → same message")),
    request_body = SendMessageRequest,
    responses((status = 202, description = "queued", body = MessageView), (status = 200, description = "an idempotent repeat", body = MessageView),
        (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 501, body = Problem),
        (status = 503, description = "the server is shutting down (`shutting_down`)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send_from_session(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    SendBody(request): SendBody,
) -> ApiResult<Response> {
    let session = authorized_session(&state, &principal, &id, Scope::Send).await?;
    if request.session.is_some()
        || request.from.is_some()
        || request.pool.is_some()
        || request.strategy.is_some()
    {
        return Err(invalid("`session`, `from`, `pool` and `strategy` belong to POST /api/v1/messages"));
    }
    respond(&state, &session, &headers, request).await
}

/// Queue a message from a session named by `session`, or by its linked phone number (`from`).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = MessageView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    SendBody(mut request): SendBody,
) -> ApiResult<Response> {
    let strategy = request.strategy.take();
    let session = match (request.session.take(), request.from.take(), request.pool.clone()) {
        (Some(id), None, None) => authorized_session(&state, &principal, &id, Scope::Send).await?,
        (None, Some(phone), None) => {
            principal.require(Scope::Send)?;
            state.messages.session_by_phone(&principal, &phone).await?
        }
        (None, None, Some(pool)) => {
            principal.require(Scope::Send)?;
            let strategy = strategy.unwrap_or(PoolStrategy::RoundRobin);
            state.messages.session_from_pool(&principal, &pool, strategy).await?
        }
        _ => return Err(invalid("give exactly one of `session`, `from` or `pool`")),
    };
    respond(&state, &session, &headers, request).await
}
