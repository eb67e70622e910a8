//! Issuing codes: send, resend and cancel.

use axum::Json as JsonResponse;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use wagate_core::{OtpMode, Phone, Scope, SessionId};
use wagate_service::auth::Principal;
use wagate_service::otp::SendRequest;

use super::views::OtpView;
use super::{OtpCaller, caller, no_store};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{Auth, Json};
use crate::http::sessions::{
    authorized_session, parse_phone, parse_session_id, phone_for_caller, phone_for_session,
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendOtpRequest {
    /// The recipient, in any accepted phone format.
    pub phone: Option<String>,
    /// Alias of `phone` (seed 004 clients).
    #[serde(rename = "phoneNumber")]
    pub phone_number: Option<String>,
    /// Send from this session…
    pub session: Option<String>,
    /// …or from a connected member of this pool (default: the tenant's `default_pool`, else any
    /// connected session of yours).
    pub pool: Option<String>,
    /// Digits, 4–10 (default 6).
    pub length: Option<i64>,
    /// Seconds the code is valid (default 300, at most 600).
    pub ttl: Option<i64>,
    /// `en`, `id`, … (default: the tenant's default locale, else `en`).
    pub locale: Option<String>,
    /// The brand in the message ("company name").
    pub brand: Option<String>,
    pub company_name: Option<String>,
    #[serde(rename = "companyName")]
    pub company_name_camel: Option<String>,
    /// One of your templates (default `default`).
    pub template: Option<String>,
    /// Use this code instead of a random one (admin scope only; for tests).
    pub custom_code: Option<String>,
    /// `push` (default), `inbound` or `auto`.
    #[schema(value_type = Option<String>)]
    pub mode: Option<OtpMode>,
}

/// Parses the body into the service request (shared with the seed routes).
pub(crate) async fn send_request(
    state: &AppState,
    principal: &Principal,
    body: SendOtpRequest,
) -> ApiResult<SendRequest> {
    principal.require(Scope::Otp)?;
    let session = body.session.as_deref().map(parse_session_id).transpose()?;
    // Seed 004 names the field `phoneNumber` and answers 400 when it is missing or malformed.
    let phone = match (body.phone, body.phone_number) {
        (Some(phone), None) => recipient(state, principal, session.as_ref(), &phone).await?,
        (None, Some(phone)) => recipient(state, principal, session.as_ref(), &phone).await.map_err(|err| {
            ApiError::bad_request(
                "invalid_phone",
                format!(
                    "Bad Request: Invalid phone number format in \"phoneNumber\" ({}). Please provide the \
                     number in international format starting with + and country code (e.g. +966XXXXXXXXX).",
                    err.detail
                ),
            )
        })?,
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable("invalid_body", "give `phone` or `phoneNumber`, not both"));
        }
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_field",
                "Bad Request: \"phoneNumber\" (or \"phone\") is required in the request body.",
            ));
        }
    };
    Ok(SendRequest {
        phone,
        session,
        pool: body.pool,
        length: body.length,
        ttl_secs: body.ttl,
        locale: body.locale,
        brand: body.brand.or(body.company_name).or(body.company_name_camel),
        template: body.template,
        custom_code: body.custom_code,
        mode: body.mode.unwrap_or_default(),
    })
}

/// The number the code goes to. A national number is read in the named session's country, or
/// in the country of the caller's sessions when none is named; the session is looked up only
/// for such numbers.
async fn recipient(
    state: &AppState,
    principal: &Principal,
    session: Option<&SessionId>,
    raw: &str,
) -> ApiResult<Phone> {
    if let Ok(phone) = parse_phone(state, raw) {
        return Ok(phone);
    }
    match session {
        Some(id) => {
            let record = authorized_session(state, principal, id.as_str(), Scope::Otp).await?;
            phone_for_session(state, &record, raw)
        }
        None => phone_for_caller(state, principal, raw).await,
    }
}

/// Send a one-time password.
#[utoipa::path(post, path = "/api/v1/otp/send", tag = "otp", request_body = SendOtpRequest,
    responses((status = 202, description = "issued (and queued in push mode)", body = OtpView),
        (status = 400, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Json(body): Json<SendOtpRequest>,
) -> ApiResult<Response> {
    let request = send_request(&state, &principal, body).await?;
    let issued = state.otp.send(&principal, &caller(&principal, otp_caller), request).await?;
    Ok(no_store(StatusCode::ACCEPTED, JsonResponse(OtpView::from_issued(issued))))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendRequest {
    /// Switch modes, e.g. to `inbound` after WhatsApp restricted the sender.
    #[schema(value_type = Option<String>)]
    pub mode: Option<OtpMode>,
}

/// Send a new code (the previous one stops working), after the cooldown and within the cap.
#[utoipa::path(post, path = "/api/v1/otp/{id}/resend", tag = "otp", params(("id" = String, Path)), request_body(content = Option<ResendRequest>),
    responses((status = 202, body = OtpView), (status = 409, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    principal.require(Scope::Otp)?;
    // The body is optional: an empty one resends in the same mode.
    let request: ResendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResendRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::unprocessable("invalid_body", e.to_string()),
            _ => ApiError::bad_request("malformed_json", format!("malformed JSON: {e}")),
        })?
    };
    let issued = state.otp.resend(&principal, &caller(&principal, otp_caller), &id, request.mode).await?;
    Ok(no_store(StatusCode::ACCEPTED, JsonResponse(OtpView::from_issued(issued))))
}

/// Cancel a pending verification (its code stops working; a queued message is withdrawn).
#[utoipa::path(post, path = "/api/v1/otp/{id}/cancel", tag = "otp", params(("id" = String, Path)),
    responses((status = 200, body = OtpView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<OtpView>> {
    principal.require(Scope::Otp)?;
    let canceled = state.otp.cancel(&principal, &id).await?;
    Ok(JsonResponse(OtpView::from_tracked(&canceled)))
}
