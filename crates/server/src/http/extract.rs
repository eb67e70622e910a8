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

/// JSON body; malformed JSON is a 400, a body of the wrong shape a 422, too big a 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("malformed_json", format!("malformed JSON: {}", source(&err)))
        }
        JsonRejection::JsonDataError(err) => ApiError::unprocessable("invalid_body", source(&err)),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
        }
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
                super::quota::admit(state, parts, &principal)?;
                Ok(StreamAuth(principal))
            }
            None => Err(ApiError::unauthorized(
                "missing_credentials",
                "send a login token or API key header, or a stream token as `?token=`",
            )),
        }
    }
}

fn credential_from_headers(parts: &Parts) -> Result<Option<String>, ApiError> {
    if let Some(key) = parts.headers.get("x-api-key") {
        let key =
            key.to_str().map_err(|_| ApiError::unauthorized("invalid_credentials", "invalid X-API-Key"))?;
        return Ok(Some(key.trim().to_owned()));
    }
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, credential))
            if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() =>
        {
            Ok(Some(credential.trim().to_owned()))
        }
        _ => Err(ApiError::unauthorized(
            "invalid_credentials",
            "expected `Authorization: Bearer <token or key>`",
        )),
    }
}

/// The caller behind `credential`, counted against its allowance of requests.
async fn authenticate(state: &AppState, parts: &Parts, credential: &str) -> Result<Principal, ApiError> {
    let principal = if wagate_service::auth::looks_like_api_key(credential) {
        state.accounts.authenticate_api_key(credential).await
    } else {
        state.accounts.authenticate_token(credential).await
    }?;
    super::quota::admit(state, parts, &principal)?;
    Ok(principal)
}

/// The client's IP: the peer address, or the configured trusted proxy header.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(header) = &state.config.trusted_ip_header
            && let Some(value) = parts.headers.get(header.as_str()).and_then(|v| v.to_str().ok())
            && let Some(first) = value.split(',').next().map(str::trim).filter(|v| !v.is_empty())
        {
            return Ok(ClientIp(first.to_owned()));
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
        Ok(ClientIp(peer.unwrap_or_else(|| "unknown".into())))
    }
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
