//! Request extractors whose failures are problem+json with stable codes.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;
use wagate_service::auth::Principal;

/// A JSON object as the body; malformed JSON is a 400, a body of the wrong shape (an array
/// where an object is expected, a field of the wrong type) a 422, too big a 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// A JSON body that may be left out: no body reads as `T::default()`.
pub struct JsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for JsonOrEmpty<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonOrEmpty(T::default()));
        }
        if !json {
            return Err(not_json());
        }
        parse_json(&bytes).map(JsonOrEmpty)
    }
}

/// The largest JSON body a route takes (uploads have their own limit, `media.max_bytes`).
pub const JSON_BODY_LIMIT: usize = 1024 * 1024;

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    // Refused on its declared length, before a byte of it is read: a client that announces
    // more than the limit gets its answer at once instead of the server waiting for the body.
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > JSON_BODY_LIMIT as u64) {
        return Err(too_large());
    }
    axum::body::Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })
}

fn too_large() -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Structs would also read from an array of their fields in order; no client means that.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::unprocessable("invalid_body", "the body must be a JSON object"));
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(value)) => Ok(value),
        Err(rejection) => Err(json_rejection(rejection)),
    }
}

/// `application/json` or `application/…+json`.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON with `Content-Type: application/json`",
    )
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("malformed_json", format!("malformed JSON: {}", source(&err)))
        }
        JsonRejection::JsonDataError(err) => ApiError::unprocessable("invalid_body", source(&err)),
        JsonRejection::MissingJsonContentType(_) => not_json(),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::bad_request("invalid_body", other.body_text()),
    }
}

/// The innermost cause, which names the field and the problem ("unknown field `x`…").
fn source(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Query string with problem+json failures.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| QueryParams(value))
            .map_err(|err| ApiError::bad_request("invalid_query", source(&err)))
    }
}

/// The authenticated caller, from `X-API-Key` or `Authorization: Bearer` (a login token or an
/// API key).
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match credential_from_headers(parts)? {
            Some(credential) => authenticate(state, parts, &credential).await.map(Auth),
            None => Err(ApiError::unauthorized(
                "missing_credentials",
                "send a login token or an API key (`Authorization: Bearer …` or `X-API-Key`)",
            )),
        }
    }
}

/// Like [`Auth`], and also a signed token in `?token=` (login or stream token, never an API
/// key): for pages and streams a browser opens directly.
pub struct StreamAuth(pub Principal);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(credential) = credential_from_headers(parts)? {
            return authenticate(state, parts, &credential).await.map(StreamAuth);
        }
        let token = Query::<TokenQuery>::from_request_parts(parts, state).await.ok().and_then(|q| q.0.token);
        match token {
            Some(token) if wagate_service::auth::looks_like_api_key(&token) => Err(ApiError::unauthorized(
                "api_key_in_url",
                "API keys are not accepted in URLs; use a stream token from POST /api/v1/sessions/{id}/stream-token",
            )),
            Some(token) => {
                let principal = state.accounts.authenticate_token(&token).await?;
                super::quota::admit(state, parts, &principal).await?;
                Ok(StreamAuth(principal))
            }
            None => Err(ApiError::unauthorized(
                "missing_credentials",
                "send a login token or API key header, or a stream token as `?token=`",
            )),
        }
    }
}

/// The credential of `X-API-Key` or `Authorization: Bearer …`. A request that carries both
/// must carry the same key in both: two different credentials are refused rather than one of
/// them silently preferred.
fn credential_from_headers(parts: &Parts) -> Result<Option<String>, ApiError> {
    let bearer = match parts.headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => match value.to_str().unwrap_or_default().split_once(' ') {
            Some((scheme, credential))
                if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() =>
            {
                Some(credential.trim().to_owned())
            }
            _ => {
                return Err(ApiError::unauthorized(
                    "invalid_credentials",
                    "expected `Authorization: Bearer <token or key>`",
                ));
            }
        },
    };
    let Some(key) = parts.headers.get("x-api-key") else { return Ok(bearer) };
    let key = key.to_str().map_err(|_| ApiError::unauthorized("invalid_credentials", "invalid X-API-Key"))?;
    let key = key.trim().to_owned();
    match bearer {
        Some(other) if other != key => Err(ApiError::unauthorized(
            "conflicting_credentials",
            "the request carries two different credentials (X-API-Key and Authorization); send one",
        )),
        _ => Ok(Some(key)),
    }
}

/// The caller behind `credential`, counted against its allowance of requests.
async fn authenticate(state: &AppState, parts: &Parts, credential: &str) -> Result<Principal, ApiError> {
    let principal = if wagate_service::auth::looks_like_api_key(credential) {
        state.accounts.authenticate_api_key(credential).await
    } else {
        state.accounts.authenticate_token(credential).await
    }?;
    let mut principal = principal;
    principal.ip = Some(client_ip(state, parts));
    super::audit::remember(&principal);
    super::quota::admit(state, parts, &principal).await?;
    Ok(principal)
}

/// The client's IP: the peer address, or the configured trusted proxy header.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(state, parts)))
    }
}

pub(crate) fn client_ip(state: &AppState, parts: &Parts) -> String {
    if let Some(header) = &state.config.trusted_ip_header
        && let Some(value) = parts.headers.get(header.as_str()).and_then(|v| v.to_str().ok())
        && let Some(first) = value.split(',').next().map(str::trim).filter(|v| !v.is_empty())
    {
        return first.chars().take(64).collect();
    }
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
    peer.unwrap_or_else(|| "unknown".into())
}

/// A page's `next_cursor`: where the next page starts (newest-first listings).
pub fn page_cursor(created_at: i64, id: &str) -> String {
    format!("{created_at}:{id}")
}

/// Reads a `cursor` written by [`page_cursor`]; anything else is `400 invalid_query`.
pub fn parse_page_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    cursor
        .split_once(':')
        .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())))
        .filter(|(_, id)| !id.is_empty() && id.len() <= 64)
        .ok_or_else(|| ApiError::bad_request("invalid_query", "invalid cursor"))
}

/// A list's page size: default 50, 1 to 200.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=200).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_query", "limit must be between 1 and 200"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn cursors_read_back_what_they_wrote(at in any::<i64>(), id in "[A-Za-z0-9:_-]{1,64}") {
            prop_assert_eq!(parse_page_cursor(&page_cursor(at, &id)).unwrap(), (at, id));
        }

        #[test]
        fn any_cursor_text_is_read_or_refused_with_a_400(text in "\\PC{0,80}") {
            if let Err(err) = parse_page_cursor(&text) {
                prop_assert_eq!(err.status, StatusCode::BAD_REQUEST);
            }
        }
    }
}
