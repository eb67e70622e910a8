//! Live session state: QR codes (JSON, PNG, an HTML page), Server-Sent Events, WebSockets.

use std::convert::Infallible;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use futures::{Stream, StreamExt};
use serde::Serialize;
use tokio_stream::wrappers::BroadcastStream;
use utoipa::ToSchema;
use wagate_core::Scope;

use super::extract::{Auth, StreamAuth};
use super::sessions::authorized_session;
use crate::app::AppState;
use crate::error::{ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::sessions::{StreamEvent, Subscription};
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions/{id}/qr", get(qr))
        .route("/sessions/{id}/qr.png", get(qr_png))
        .route("/sessions/{id}/qr-page", get(qr_page))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/ws", get(websocket))
        .route("/sessions/{id}/stream-token", post(stream_token))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QrResponse {
    /// The raw QR payload (what the phone's camera reads).
    pub qr: String,
    /// `data:image/png;base64,…`
    pub png: String,
    /// An SVG document.
    pub svg: String,
    pub expires_at: String,
}

/// The QR code to scan right now.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/qr", tag = "linking", params(("id" = String, Path)),
    responses((status = 200, body = QrResponse),
        (status = 409, description = "`qr_not_available` (not waiting for a scan), `already_connected`, or `session_on_other_node` (another node of the cluster runs it)", body = Problem),
        (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn qr(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<QrResponse>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let live = state.sessions.qr(&record.id).await?;
    Ok(JsonResponse(qr_response(&live.code, live.expires_at)))
}

pub(crate) fn qr_response(code: &str, expires_at: i64) -> QrResponse {
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD.encode(crate::qr::png(code));
    QrResponse {
        qr: code.to_owned(),
        png: format!("data:image/png;base64,{png}"),
        svg: crate::qr::svg(code),
        expires_at: rfc3339(expires_at),
    }
}

/// The current QR code as a PNG image (accepts `?token=`).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/qr.png", tag = "linking", params(("id" = String, Path), ("token" = Option<String>, Query)),
    responses((status = 200, content_type = "image/png", body = Vec<u8>), (status = 409, body = Problem)),
    security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn qr_png(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let live = state.sessions.qr(&record.id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        crate::qr::png(&live.code),
    )
        .into_response())
}

const QR_PAGE: &str = include_str!("../../assets/qr_page.html");

/// An HTML page that shows the live QR code and the session status (accepts `?token=`).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/qr-page", tag = "linking", params(("id" = String, Path), ("token" = Option<String>, Query)),
    responses((status = 200, content_type = "text/html", body = String), (status = 401, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn qr_page(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    Ok(render_qr_page(&state, &principal, &record.id))
}

pub(crate) fn render_qr_page(
    state: &AppState,
    principal: &Principal,
    id: &wagate_core::SessionId,
) -> Response {
    // The page's own requests use a fresh short-lived token, never the caller's credential.
    let (token, _) = state.accounts.stream_token(principal, id);
    let page = QR_PAGE
        .replace("{{SESSION_ID}}", &escape_html(id.as_str()))
        .replace("{{TOKEN}}", &escape_html(&token));
    let csp = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'";
    (
        [
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        Html(page),
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The session's events, starting with its current state, until it is deleted, the server
/// stops, or another node starts running the session (the client reconnects to reach it).
pub(crate) fn live_events(
    state: &AppState,
    subscription: Subscription,
) -> impl Stream<Item = StreamEvent> + Send + 'static + use<> {
    let Subscription { snapshot, events, mut ended } = subscription;
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        tokio::select! {
            _ = shutdown.wait_for(|stopping| *stopping) => {}
            _ = ended.changed() => {}
        }
    };
    let live = BroadcastStream::new(events).filter_map(|item| async move { item.ok() });
    let events = Box::pin(futures::stream::iter(snapshot).chain(live).take_until(Box::pin(stopped)));
    // Ends right after `deleted`, without waiting for another event.
    futures::stream::unfold((events, false), |(mut events, ended)| async move {
        if ended {
            return None;
        }
        let event = events.next().await?;
        let ended = matches!(event, StreamEvent::Deleted { .. });
        Some((event, (events, ended)))
    })
}

/// Server-Sent Events: `status`, `qr`, `pair_code`, `paired`, `error`, `message_received`,
/// `message_status`, `deleted` (accepts `?token=`). The first events describe the current state.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/events", tag = "linking", params(("id" = String, Path), ("token" = Option<String>, Query)),
    responses((status = 200, content_type = "text/event-stream", body = super::schemas::StreamEventSchema), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn events(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let subscription = state.sessions.subscribe(&record.id).await?;
    let stream = live_events(&state, subscription).map(|event| {
        Ok(Event::default()
            .event(event.name())
            .json_data(&event)
            .unwrap_or_else(|_| Event::default().comment("unserializable")))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(super::KEEP_ALIVE)))
}

/// The same events as JSON text frames over a WebSocket (accepts `?token=`).
#[utoipa::path(get, path = "/api/v1/sessions/{id}/ws", tag = "linking", params(("id" = String, Path), ("token" = Option<String>, Query)),
    responses((status = 101, description = "WebSocket of StreamEvent JSON messages"), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = []), ("query_token" = [])))]
pub async fn websocket(
    State(state): State<AppState>,
    StreamAuth(principal): StreamAuth,
    Path(id): Path<String>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let subscription = state.sessions.subscribe(&record.id).await?;
    let events = live_events(&state, subscription);
    Ok(upgrade
        .on_upgrade(move |socket| pump_websocket(socket, events, |event| serde_json::to_value(event).ok())))
}

/// Sends events as JSON text frames until the stream ends or the client goes away.
pub(crate) async fn pump_websocket(
    mut socket: WebSocket,
    events: impl Stream<Item = StreamEvent> + Send + 'static,
    frame: fn(&StreamEvent) -> Option<serde_json::Value>,
) {
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                let Some(json) = frame(&event) else { continue };
                if socket.send(Message::Text(json.to_string().into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamTokenResponse {
    /// Read-only, for this session only; pass as `?token=`.
    pub token: String,
    pub expires_at: String,
    pub qr_page_url: String,
    pub events_url: String,
    pub websocket_url: String,
}

/// A short-lived token for opening this session's QR page or event streams in a browser.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/stream-token", tag = "linking", params(("id" = String, Path)),
    responses((status = 200, body = StreamTokenResponse), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn stream_token(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<StreamTokenResponse>> {
    let record = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let (token, expires_at) = state.accounts.stream_token(&principal, &record.id);
    let base = format!("/api/v1/sessions/{}", record.id);
    Ok(JsonResponse(StreamTokenResponse {
        qr_page_url: format!("{base}/qr-page?token={token}"),
        events_url: format!("{base}/events?token={token}"),
        websocket_url: format!("{base}/ws?token={token}"),
        token,
        expires_at: rfc3339(expires_at),
    }))
}
