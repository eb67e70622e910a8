//! Following verifications: one by id, the log, and codes generated without being sent.

use axum::Json as JsonResponse;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::{OtpStatus, Scope};
use wagate_store::OtpFilter;

use super::no_store;
use super::views::OtpView;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{Auth, QueryParams, page_limit};
use crate::http::messages::parse_time;
use crate::http::sessions::phone_for_caller;
use wagate_service::auth::Principal;

/// A verification: status, sends, attempts, the delivery of its message.
#[utoipa::path(get, path = "/api/v1/otp/{id}", tag = "otp", params(("id" = String, Path)),
    responses((status = 200, body = OtpView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<OtpView>> {
    principal.require(Scope::Otp)?;
    let tracked = state.otp.show(&principal, &id).await?;
    Ok(JsonResponse(OtpView::from_tracked(&tracked)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OtpListQuery {
    pub phone: Option<String>,
    pub status: Option<String>,
    /// RFC 3339; created at or after.
    pub since: Option<String>,
    /// RFC 3339; created before.
    pub until: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OtpPage {
    pub verifications: Vec<OtpView>,
    pub next_cursor: Option<String>,
}

/// The OTP log, newest first (codes are never stored in clear, so never shown).
#[utoipa::path(get, path = "/api/v1/otp", tag = "otp", params(OtpListQuery),
    responses((status = 200, body = OtpPage), (status = 400, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<OtpListQuery>,
) -> ApiResult<JsonResponse<OtpPage>> {
    principal.require(Scope::Otp)?;
    let filter = otp_filter(&state, &principal, &query, page_limit(query.limit)?).await?;
    let listing = state.otp.page(&principal, filter).await?;
    Ok(JsonResponse(OtpPage {
        verifications: listing.verifications.iter().map(OtpView::from_tracked).collect(),
        next_cursor: listing.next.map(|(created_at, id)| crate::http::extract::page_cursor(created_at, &id)),
    }))
}

/// The filter of an OTP listing (the log, its export), `limit` already checked.
pub(crate) async fn otp_filter(
    state: &AppState,
    principal: &Principal,
    query: &OtpListQuery,
    limit: u32,
) -> ApiResult<OtpFilter> {
    let mut filter = OtpFilter { limit, ..OtpFilter::default() };
    if let Some(phone) = &query.phone {
        filter.phone = Some(phone_for_caller(state, principal, phone).await?.e164().to_owned());
    }
    if let Some(status) = &query.status {
        filter.status =
            Some(status.parse::<OtpStatus>().map_err(|e| ApiError::bad_request("invalid_query", e))?);
    }
    filter.since = query.since.as_deref().map(|v| parse_time("since", v)).transpose()?;
    filter.until = query.until.as_deref().map(|v| parse_time("until", v)).transpose()?;
    filter.before = query.cursor.as_deref().map(crate::http::extract::parse_page_cursor).transpose()?;
    Ok(filter)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GenerateQuery {
    /// 4–10, default 6.
    pub length: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GeneratedCode {
    pub code: String,
    pub length: usize,
}

/// A random code from the OS generator; nothing is stored or sent.
#[utoipa::path(get, path = "/api/v1/otp/generate", tag = "otp", params(GenerateQuery),
    responses((status = 200, body = GeneratedCode), (status = 422, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn generate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<GenerateQuery>,
) -> ApiResult<Response> {
    principal.require(Scope::Otp)?;
    let code = state.otp.generate(query.length)?;
    Ok(no_store(
        StatusCode::OK,
        JsonResponse(GeneratedCode { length: code.len(), code: code.reveal().to_owned() }),
    ))
}
