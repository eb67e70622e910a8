//! Requests that need a session's live connection, carried to the node that runs it.
//!
//! A node answers what it can. When a service finds that another node runs the session a
//! request needs (QR and pairing codes, number checks, groups, logout, restart, event
//! streams), the error mapping names that node ([`RunsOn`]) and this layer sends the request
//! again, as it came, to that node's address and passes its answer back, streams and
//! WebSockets included. The caller's own credentials go along: the other node authenticates
//! and authorizes them as it would any request. A header signed with a key derived from the
//! server secret ([`FORWARDED`]) marks the request as carried, so it is never carried twice,
//! and tells the caller's address, which the receiving node uses (rate limits, audit) only
//! when the signature checks and is recent.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::app::AppState;
use crate::http::Rest;
use crate::http::extract::JSON_BODY_LIMIT;

/// Marks a request one node carried to another: `<node>;<unix ms>;<caller address>;<signature>`.
pub const FORWARDED: HeaderName = HeaderName::from_static("wagate-forwarded");

/// A mark older than this is refused: a captured request cannot be replayed later.
const MARK_VALID_MS: i64 = 60_000;

/// Bodies up to this size are kept to be sent again; larger ones are uploads of messages,
/// which go through the outbox and never need the live connection.
const KEPT_BODY_BYTES: usize = JSON_BODY_LIMIT;

/// Marks a request another node carried here (its per-credential quota was counted there).
#[derive(Debug, Clone, Copy)]
pub struct Carried;

/// Set on an answer by the error mapping: the node that runs the session the request needs.
#[derive(Debug, Clone)]
pub struct RunsOn(pub String);

/// Carries requests to other nodes and checks the ones carried here.
pub struct Forwarder {
    node_id: String,
    key: [u8; 32],
    client: reqwest::Client,
}

impl Forwarder {
    /// `key`: derived from the server secret, the same on every node of the cluster.
    pub fn new(node_id: &str, key: [u8; 32]) -> Forwarder {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            // Streams send a keep-alive every 15 s; a node silent for longer is gone.
            .read_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .expect("an HTTP client with these settings builds");
        Forwarder { node_id: node_id.to_owned(), key, client }
    }

    fn signature(&self, node: &str, at: i64, caller: &str, method: &Method, target: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [node, &at.to_string(), caller, method.as_str(), target] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac
    }

    /// The mark of a request this node carries for `caller`.
    pub fn mark(&self, caller: SocketAddr, method: &Method, target: &str, now_ms: i64) -> String {
        let caller = caller.to_string();
        let signature =
            self.signature(&self.node_id, now_ms, &caller, method, target).finalize().into_bytes();
        format!("{};{now_ms};{caller};{}", self.node_id, hex::encode(signature))
    }

    /// The caller's address, when `mark` was made by a node of this cluster for this very
    /// request within the last minute.
    pub fn check(&self, mark: &str, method: &Method, target: &str, now_ms: i64) -> Option<SocketAddr> {
        let mut parts = mark.splitn(4, ';');
        let (node, at, caller, signature) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let at: i64 = at.parse().ok()?;
        if (now_ms - at).abs() > MARK_VALID_MS {
            return None;
        }
        let signature = hex::decode(signature).ok()?;
        self.signature(node, at, caller, method, target).verify_slice(&signature).ok()?;
        caller.parse().ok()
    }
}

fn target(parts: &Parts) -> &str {
    parts.uri.path_and_query().map_or("/", |target| target.as_str())
}

fn now_ms() -> i64 {
    wagate_service::time::now_ms()
}

/// Checks requests carried here, carries the ones another node must answer.
pub(crate) async fn to_owner(state: &AppState, request: Request, next: impl Rest) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Some(mark) = parts.headers.remove(&FORWARDED) {
        let caller = mark
            .to_str()
            .ok()
            .and_then(|mark| state.forwarder.check(mark, &parts.method, target(&parts), now_ms()));
        let Some(caller) = caller else {
            tracing::warn!(path = %parts.uri.path(), "a request with a forged or stale node mark");
            return carry_if_needed(state, parts, body, next).await;
        };
        // Answered here, never carried on: the sending node found that this one runs it.
        parts.extensions.insert(ConnectInfo(caller));
        parts.extensions.insert(Carried);
        return next.answer(Request::from_parts(parts, body)).await;
    }
    carry_if_needed(state, parts, body, next).await
}

/// Answers the request here, or carries it to the node that runs the session it needs.
async fn carry_if_needed(state: &AppState, parts: Parts, body: Body, next: impl Rest) -> Response {
    if !state.cluster.has_company() || !keeps_body(&parts.headers, &body) {
        return next.answer(Request::from_parts(parts, body)).await;
    }
    let body = match axum::body::to_bytes(body, KEPT_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return crate::error::ApiError::bad_request(
                "unreadable_body",
                "the request body could not be read",
            )
            .into_response();
        }
    };
    let upgrade = parts.extensions.get::<hyper::upgrade::OnUpgrade>().cloned();
    let response = next.answer(Request::from_parts(parts.clone(), Body::from(body.clone()))).await;
    let Some(RunsOn(node)) = response.extensions().get::<RunsOn>().cloned() else {
        return response;
    };
    let address = match state.cluster.address_of(&node).await {
        Ok(Some(address)) => address,
        Ok(None) => {
            tracing::warn!(%node, "the node that runs the session cannot be reached: it has no address");
            return response;
        }
        Err(err) => {
            tracing::warn!(%node, error = %err, "cannot look up the node that runs the session");
            return response;
        }
    };
    let caller = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |info| info.0);
    let carried = match upgrade {
        Some(upgrade) if is_websocket(&parts.headers) => {
            state.forwarder.carry_websocket(&address, &parts, caller, upgrade).await
        }
        _ => state.forwarder.carry(&address, &parts, body, caller).await,
    };
    match carried {
        Ok(mut answer) => {
            // The caller's quota was counted here: its standing goes with the answer.
            for (name, value) in response.headers() {
                if name.as_str().starts_with("ratelimit") {
                    answer.headers_mut().insert(name.clone(), value.clone());
                }
            }
            answer
        }
        Err(err) => {
            tracing::warn!(%node, %address, error = %err, "cannot carry the request to the node that runs the session");
            response
        }
    }
}

/// Whether the body can be kept to be sent again: of a known, small size.
fn keeps_body(headers: &HeaderMap, body: &Body) -> bool {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    declared.or_else(|| body.size_hint().exact()).is_some_and(|length| length <= KEPT_BODY_BYTES as u64)
}

fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Headers that belong to one connection, not to the request or answer they travel with.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for name in HOP_BY_HOP.iter().chain([&header::HOST, &header::CONTENT_LENGTH]) {
        headers.remove(name);
    }
    headers
}

impl Forwarder {
    fn request(&self, address: &str, parts: &Parts, caller: SocketAddr) -> reqwest::RequestBuilder {
        let target = target(parts);
        let mark = self.mark(caller, &parts.method, target, now_ms());
        let mut headers = end_to_end(&parts.headers);
        headers.insert(FORWARDED, HeaderValue::from_str(&mark).expect("a mark is plain text"));
        let url = format!("{}{target}", address.trim_end_matches('/'));
        self.client.request(parts.method.clone(), url).headers(headers)
    }

    /// Sends the request to `address` and streams its answer back.
    async fn carry(
        &self,
        address: &str,
        parts: &Parts,
        body: Bytes,
        caller: SocketAddr,
    ) -> Result<Response, reqwest::Error> {
        let answer = self.request(address, parts, caller).body(body).send().await?;
        Ok(pass_back(answer))
    }

    /// Opens the WebSocket on `address` and joins the caller's connection to it.
    async fn carry_websocket(
        &self,
        address: &str,
        parts: &Parts,
        caller: SocketAddr,
        upgrade: hyper::upgrade::OnUpgrade,
    ) -> Result<Response, reqwest::Error> {
        let answer = self
            .request(address, parts, caller)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .send()
            .await?;
        if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(pass_back(answer));
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *response.headers_mut() = answer.headers().clone();
        let there = answer.upgrade().await?;
        tokio::spawn(async move {
            let Ok(here) = upgrade.await else { return };
            let mut here = hyper_util::rt::TokioIo::new(here);
            let mut there = there;
            let _ = tokio::io::copy_bidirectional(&mut here, &mut there).await;
        });
        Ok(response)
    }
}

/// The other node's answer as this node's, its body streamed through.
fn pass_back(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_accepted_only_for_its_own_request_recent_and_signed_with_the_cluster_key() {
        let node = Forwarder::new("node-a", [7; 32]);
        let other = Forwarder::new("node-b", [7; 32]);
        let stranger = Forwarder::new("node-a", [8; 32]);
        let caller: SocketAddr = "203.0.113.9:4431".parse().unwrap();
        let mark = node.mark(caller, &Method::POST, "/api/v1/sessions/s1/restart", 1_000_000);

        assert_eq!(other.check(&mark, &Method::POST, "/api/v1/sessions/s1/restart", 1_000_500), Some(caller));
        assert_eq!(other.check(&mark, &Method::POST, "/api/v1/sessions/s2/restart", 1_000_500), None);
        assert_eq!(other.check(&mark, &Method::DELETE, "/api/v1/sessions/s1/restart", 1_000_500), None);
        assert_eq!(
            other.check(&mark, &Method::POST, "/api/v1/sessions/s1/restart", 1_070_000),
            None,
            "stale"
        );
        assert_eq!(stranger.check(&mark, &Method::POST, "/api/v1/sessions/s1/restart", 1_000_500), None);
        let forged = mark.replace("203.0.113.9", "198.51.100.1");
        assert_eq!(other.check(&forged, &Method::POST, "/api/v1/sessions/s1/restart", 1_000_500), None);
        assert_eq!(other.check("node-a;1000000;nonsense", &Method::GET, "/", 1_000_000), None);
    }
}
