//! Checking codes.

use axum::Json as JsonResponse;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;
use wagate_core::Scope;
use wagate_service::auth::Principal;
use wagate_service::otp::{Caller, OtpError, Verdict, VerifyTarget};

use super::views::VerifyResult;
use super::{OtpCaller, caller, no_store};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{Auth, Json};
use crate::http::sessions::phone_for_caller;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyOtpRequest {
    /// The verification id…
    pub id: Option<String>,
    /// …or the phone number it was sent to.
    pub phone: Option<String>,
    #[serde(rename = "phoneNumber")]
    pub phone_number: Option<String>,
    /// The code the user typed (`otp` is accepted too).
    pub code: Option<String>,
    pub otp: Option<String>,
}

/// Parses the body and checks the code (shared with the seed routes).
pub(crate) async fn verify_request(
    state: &AppState,
    principal: &Principal,
    caller: &Caller,
    body: VerifyOtpRequest,
) -> ApiResult<Verdict> {
    principal.require(Scope::Otp)?;
    let code = body
        .code
        .or(body.otp)
        .ok_or_else(|| ApiError::unprocessable("missing_field", "`code` is required"))?;
    let target = match (body.id, body.phone.or(body.phone_number)) {
        (Some(id), None) => VerifyTarget::Id(id),
        (None, Some(phone)) => VerifyTarget::Phone(phone_for_caller(state, principal, &phone).await?),
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "give the verification `id` or the `phone`, not both",
            ));
        }
        (None, None) => return Err(OtpError::MissingTarget.into()),
    };
    Ok(state.otp.verify(principal, caller, target, &code).await?)
}

/// Check a code, by verification id or by phone. A phone without a pending verification
/// answers like a wrong code.
#[utoipa::path(post, path = "/api/v1/otp/verify", tag = "otp", request_body = VerifyOtpRequest,
    responses((status = 200, body = VerifyResult), (status = 404, body = Problem), (status = 409, description = "no longer pending (by id)", body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Json(body): Json<VerifyOtpRequest>,
) -> ApiResult<Response> {
    let caller = caller(&principal, otp_caller);
    let verdict = verify_request(&state, &principal, &caller, body).await?;
    Ok(no_store(StatusCode::OK, JsonResponse(VerifyResult::from(&verdict))))
}
