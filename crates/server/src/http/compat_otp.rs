//! Seed-compatible OTP routes (docs/compat.md), as adapters over the OTP service. Seed 004's
//! `POST /api/v1/otp/send` is the v1 route itself (it accepts `phoneNumber` and answers with
//! `message`, `jobId` and `otp_expires_at`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use wagate_core::Scope;

use super::extract::{Auth, Json, QueryParams};
use super::otp::{
    OtpCaller, OtpView, SendOtpRequest, VerifyOtpRequest, caller, send_request, verify_request,
};
use super::sessions::phone_for_caller;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/messages/{session}/otp", post(send))
        .route("/api/messages/{session}/generate-otp", get(generate))
        .route("/api/otp/verify", post(verify))
        .route("/api/otp/status/{phone}", get(status))
        .route("/api/otp/resend", post(resend))
        .route("/api/otp/expire", post(expire))
}

/// Seed 001's `data` object of an OTP answer.
fn seed_data(view: &OtpView) -> Value {
    json!({
        "verificationId": view.id,
        "sessionId": view.session_id,
        "to": wagate_core::address::jid_of_stored(&view.phone),
        "phone": view.phone,
        "otp": view.code,
        "messageId": view.message_id,
        "status": view.status,
        "expiresAt": view.expires_at,
        "timestamp": view.created_at,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedOtpBody {
    pub to: String,
    pub company_name: Option<String>,
    pub length: Option<i64>,
}

/// Send an OTP from this session (`{to, companyName}`); `data.otp` only when the tenant
/// enabled `return_code_in_response`.
#[utoipa::path(post, path = "/api/messages/{session}/otp", tag = "compat", params(("session" = String, Path)), request_body = SeedOtpBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Path(session): Path<String>,
    Json(body): Json<SeedOtpBody>,
) -> ApiResult<(StatusCode, JsonResponse<Value>)> {
    let request = SendOtpRequest {
        phone: Some(body.to),
        session: Some(session),
        length: body.length,
        company_name: body.company_name,
        ..Default::default()
    };
    let request = send_request(&state, &principal, request).await?;
    let issued = state.otp.send(&principal, &caller(&principal, otp_caller), request).await?;
    let view = OtpView::from_issued(issued);
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(
            json!({ "success": true, "message": "OTP sent successfully", "data": seed_data(&view) }),
        ),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeedGenerateQuery {
    pub length: Option<i64>,
}

/// A random code (`{success, data: {otp, length}}`); nothing is stored or sent.
#[utoipa::path(get, path = "/api/messages/{session}/generate-otp", tag = "compat", params(("session" = String, Path), SeedGenerateQuery),
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn generate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(_session): Path<String>,
    QueryParams(query): QueryParams<SeedGenerateQuery>,
) -> ApiResult<JsonResponse<Value>> {
    principal.require(Scope::Otp)?;
    let code = state.otp.generate(query.length)?;
    Ok(JsonResponse(json!({ "success": true, "data": { "otp": code.reveal(), "length": code.len() } })))
}

/// Verify (`{phoneNumber, otp}`, or `{id, code}`).
#[utoipa::path(post, path = "/api/otp/verify", tag = "compat", request_body = VerifyOtpRequest,
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Json(body): Json<VerifyOtpRequest>,
) -> ApiResult<JsonResponse<Value>> {
    let caller = caller(&principal, otp_caller);
    let verdict = verify_request(&state, &principal, &caller, body).await?;
    let message = if verdict.valid { "OTP verified successfully" } else { "Invalid OTP" };
    Ok(JsonResponse(json!({
        "success": verdict.valid,
        "message": message,
        "data": { "valid": verdict.valid, "status": verdict.status, "attemptsLeft": verdict.attempts_left },
    })))
}

/// Status of the latest verification of a phone.
#[utoipa::path(get, path = "/api/otp/status/{phone}", tag = "compat", params(("phone" = String, Path)),
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn status(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(phone): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    principal.require(Scope::Otp)?;
    let phone = phone_for_caller(&state, &principal, &phone).await?;
    let tracked = state.otp.latest(&principal, &phone).await?;
    Ok(JsonResponse(json!({ "success": true, "data": OtpView::from_tracked(&tracked) })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedPhoneBody {
    pub phone_number: Option<String>,
    pub phone: Option<String>,
    /// Accepted and ignored: the verification keeps its session.
    #[allow(dead_code)]
    pub session_id: Option<String>,
}

impl SeedPhoneBody {
    fn phone(&self) -> ApiResult<&str> {
        self.phone_number
            .as_deref()
            .or(self.phone.as_deref())
            .ok_or_else(|| ApiError::unprocessable("missing_field", "`phoneNumber` is required"))
    }
}

/// Send a new code for the phone's pending verification.
#[utoipa::path(post, path = "/api/otp/resend", tag = "compat", request_body = SeedPhoneBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    Auth(principal): Auth,
    otp_caller: OtpCaller,
    Json(body): Json<SeedPhoneBody>,
) -> ApiResult<(StatusCode, JsonResponse<Value>)> {
    let raw_phone = body.phone()?;
    principal.require(Scope::Otp)?;
    let phone = phone_for_caller(&state, &principal, raw_phone).await?;
    let issued = state.otp.resend_latest(&principal, &caller(&principal, otp_caller), &phone).await?;
    let view = OtpView::from_issued(issued);
    Ok((
        StatusCode::ACCEPTED,
        JsonResponse(
            json!({ "success": true, "message": "OTP resent successfully", "data": seed_data(&view) }),
        ),
    ))
}

/// Expire (cancel) the phone's pending verification.
#[utoipa::path(post, path = "/api/otp/expire", tag = "compat", request_body = SeedPhoneBody,
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn expire(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(body): Json<SeedPhoneBody>,
) -> ApiResult<JsonResponse<Value>> {
    let raw_phone = body.phone()?;
    principal.require(Scope::Otp)?;
    let phone = phone_for_caller(&state, &principal, raw_phone).await?;
    let canceled = state.otp.cancel_latest(&principal, &phone).await?;
    Ok(JsonResponse(
        json!({ "success": true, "message": "OTP expired", "data": OtpView::from_tracked(&canceled) }),
    ))
}
