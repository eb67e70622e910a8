//! The prelude every seed-compatible send route shares: authorize the session, read the body,
//! accept the message and answer in the seed's envelope.

use axum::Json as JsonResponse;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wagate_core::Scope;
use wagate_service::auth::Principal;
use wagate_store::SessionRecord;

use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{Auth, Json};
use crate::http::messages::{MessageView, SendMessageRequest, accept};
use crate::http::sessions::authorized_session;

/// A seed route's answer: a status and a JSON envelope.
pub type SeedAnswer = (StatusCode, JsonResponse<Value>);

/// How a seed route renders the accepted message.
pub type Render = fn(&MessageView) -> SeedAnswer;

/// A send request on `/…/{session}/…`: the caller, the session id from the path, the headers
/// (for `Idempotency-Key`) and the request whose body is still unread. Extracted in the order
/// the routes always used: credentials first, then the path.
pub struct SeedSend {
    pub state: AppState,
    pub principal: Principal,
    pub session_id: String,
    pub headers: HeaderMap,
    pub request: Request,
}

impl FromRequest<AppState> for SeedSend {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Auth(principal) =
            Auth::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let Path(session_id) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        Ok(Self {
            state: state.clone(),
            principal,
            session_id,
            headers,
            request: Request::from_parts(parts, body),
        })
    }
}

impl SeedSend {
    /// The path's session, if the caller may send from it; with the state, headers and unread
    /// request (the request is not `Sync`, so it is handed back rather than borrowed).
    pub async fn session(self) -> ApiResult<(SessionRecord, AppState, HeaderMap, Request)> {
        let Self { state, principal, session_id, headers, request } = self;
        let session = authorized_session(&state, &principal, &session_id, Scope::Send).await?;
        Ok((session, state, headers, request))
    }

    /// The whole prelude: authorizes the session, reads the body as JSON `T`, accepts what
    /// `content` makes of it and answers with `render`.
    pub async fn queue<T: DeserializeOwned + Send>(
        self,
        content: impl FnOnce(T) -> ApiResult<SendMessageRequest> + Send,
        render: Render,
    ) -> ApiResult<SeedAnswer> {
        let (session, state, headers, request) = self.session().await?;
        let body: T = json_body(request, &state).await?;
        accept_and_render(&state, &session, &headers, content(body)?, render).await
    }
}

/// Reads the body as JSON `T`, with problem+json failures.
pub async fn json_body<T: DeserializeOwned>(request: Request, state: &AppState) -> ApiResult<T> {
    Json::<T>::from_request(request, state).await.map(|Json(value)| value)
}

/// Accepts `request` from `session` and renders the stored message.
pub async fn accept_and_render(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    request: SendMessageRequest,
    render: Render,
) -> ApiResult<SeedAnswer> {
    let (_, view) = accept(state, session, headers, request).await?;
    Ok(render(&view))
}

/// The single-tenant API's answer: `{success, message, data: {sessionId, to, messageId, status, timestamp}}`.
pub fn queued(message: &MessageView) -> SeedAnswer {
    let to = wagate_core::address::jid_of_stored(&message.to);
    let data = json!({
        "sessionId": message.session_id,
        "to": to,
        "messageId": message.id,
        "status": message.status,
        "timestamp": message.created_at,
        "statusUrl": message.status_url,
    });
    (
        StatusCode::ACCEPTED,
        JsonResponse(json!({ "success": true, "message": "Message queued", "data": data })),
    )
}

/// Seed 003's answer: `{success, message, message_id, session_id, status}`.
pub fn sent_003(view: &MessageView) -> SeedAnswer {
    let body = json!({ "success": true, "message": "Message queued", "message_id": view.id, "session_id": view.session_id, "status": view.status });
    (StatusCode::ACCEPTED, JsonResponse(body))
}
