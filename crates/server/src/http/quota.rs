//! Requests per minute per credential (`[api_limits]`): a limited credential's answers carry
//! `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`; beyond
//! its allowance it gets `429 rate_limited` with `Retry-After`.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use wagate_service::auth::{Principal, Quota};

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::Rest;
use crate::http::forward::Carried;

/// Where authentication leaves the request's standing for the answer's headers. Its presence
/// also marks a request as counted, so a handler that authenticates twice counts once.
#[derive(Clone, Default)]
struct QuotaSlot(Arc<Mutex<Option<Quota>>>);

impl QuotaSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Quota>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Gives every request a slot, and the answer the headers of what authentication put in it.
pub(crate) async fn rate_limit_headers(mut request: Request, next: impl Rest) -> Response {
    let slot = QuotaSlot::default();
    request.extensions_mut().insert(slot.clone());
    let mut response = next.answer(request).await;
    if let Some(quota) = *slot.lock() {
        let headers = response.headers_mut();
        headers.insert("ratelimit-limit", HeaderValue::from(quota.limit));
        headers.insert("ratelimit-remaining", HeaderValue::from(quota.remaining));
        headers.insert("ratelimit-reset", HeaderValue::from(quota.reset_secs));
        if let Ok(policy) = HeaderValue::from_str(&format!("{};w=60", quota.limit)) {
            headers.insert("ratelimit-policy", policy);
        }
    }
    response
}

/// Counts the request against its credential's allowance (once per request, on the node it
/// reached first: a request carried here from another node was counted there).
pub(crate) async fn admit(state: &AppState, parts: &Parts, principal: &Principal) -> Result<(), ApiError> {
    let slot = parts.extensions.get::<QuotaSlot>();
    if slot.is_some_and(|slot| slot.lock().is_some()) || parts.extensions.get::<Carried>().is_some() {
        return Ok(());
    }
    let (quota, refused) = match state.quota.admit(principal).await? {
        Ok(None) => return Ok(()),
        Ok(Some(quota)) => (quota, None),
        Err(exceeded) => {
            let quota = Quota { limit: exceeded.limit, remaining: 0, reset_secs: exceeded.retry_after_secs };
            let mut error =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", exceeded.to_string());
            error.retry_after = Some(exceeded.retry_after_secs.max(1));
            (quota, Some(error))
        }
    };
    if let Some(slot) = slot {
        *slot.lock() = Some(quota);
    }
    refused.map_or(Ok(()), Err)
}
