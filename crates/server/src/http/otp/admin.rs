//! A tenant's OTP administration: settings, message templates and per-phone failure
//! counters.

use axum::Json as JsonResponse;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wagate_core::Scope;
use wagate_service::otp::{OtpSettings, TemplateEntry};
use wagate_service::time::{now_ms, rfc3339};

use crate::app::AppState;
use crate::error::{ApiResult, Problem};
use crate::http::extract::{Auth, Json};
use crate::http::sessions::phone_for_caller;

/// Your OTP settings.
#[utoipa::path(get, path = "/api/v1/otp/settings", tag = "otp", responses((status = 200, body = crate::http::schemas::OtpSettingsSchema)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<OtpSettings>> {
    principal.require(Scope::Otp)?;
    Ok(JsonResponse(state.otp.settings(&principal.user_id).await?.as_ref().clone()))
}

/// Change some of your OTP settings (fields left out stay as they are; `null` clears one).
#[utoipa::path(patch, path = "/api/v1/otp/settings", tag = "otp", request_body = crate::http::schemas::OtpSettingsSchema,
    responses((status = 200, body = crate::http::schemas::OtpSettingsSchema), (status = 422, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn update_settings(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Json(patch): Json<serde_json::Value>,
) -> ApiResult<JsonResponse<OtpSettings>> {
    principal.require(Scope::Otp)?;
    let updated = state.otp.update_settings(&principal.user_id, patch).await?;
    Ok(JsonResponse(updated.as_ref().clone()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub name: String,
    pub locale: String,
    pub body: String,
    /// Absent for built-in templates.
    pub updated_at: Option<String>,
}

impl From<TemplateEntry> for TemplateView {
    fn from(t: TemplateEntry) -> Self {
        TemplateView { name: t.name, locale: t.locale, body: t.body, updated_at: t.updated_at.map(rfc3339) }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    /// Yours; they take precedence over the built-in ones with the same name and locale.
    pub templates: Vec<TemplateView>,
    pub built_in: Vec<TemplateView>,
}

/// Your message templates, and the built-in ones.
#[utoipa::path(get, path = "/api/v1/otp/templates", tag = "otp", responses((status = 200, body = TemplateList)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn list_templates(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<TemplateList>> {
    principal.require(Scope::Otp)?;
    let catalog = state.otp.templates(&principal.user_id).await?;
    Ok(JsonResponse(TemplateList {
        templates: catalog.own.into_iter().map(TemplateView::from).collect(),
        built_in: catalog.built_in.into_iter().map(TemplateView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// minijinja; variables `code`, `brand` (or `company_name`), `minutes`, `length`. Must show
    /// the code; links are refused.
    pub body: String,
}

/// Create or replace a template (`default` is the pushed message, `inbound` the text users
/// send back in inbound mode).
#[utoipa::path(put, path = "/api/v1/otp/templates/{name}/{locale}", tag = "otp",
    params(("name" = String, Path), ("locale" = String, Path)), request_body = TemplateBody,
    responses((status = 200, body = TemplateView), (status = 422, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn put_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((name, locale)): Path<(String, String)>,
    Json(body): Json<TemplateBody>,
) -> ApiResult<JsonResponse<TemplateView>> {
    principal.require(Scope::Otp)?;
    state.otp.put_template(&principal.user_id, &name, &locale, &body.body).await?;
    Ok(JsonResponse(TemplateView { name, locale, body: body.body, updated_at: Some(rfc3339(now_ms())) }))
}

/// Delete one of your templates.
#[utoipa::path(delete, path = "/api/v1/otp/templates/{name}/{locale}", tag = "otp",
    params(("name" = String, Path), ("locale" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn delete_template(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((name, locale)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    principal.require(Scope::Otp)?;
    state.otp.delete_template(&principal.user_id, &name, &locale).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneFailures {
    pub phone: String,
    /// Wrong codes in a row, across verifications; a correct code clears it.
    pub consecutive_failures: i64,
    /// Set while the phone is locked.
    pub locked_until: Option<String>,
}

/// A phone's consecutive wrong codes and lock.
#[utoipa::path(get, path = "/api/v1/otp/phones/{phone}", tag = "otp", params(("phone" = String, Path)),
    responses((status = 200, body = PhoneFailures), (status = 400, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn phone_failures(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(phone): Path<String>,
) -> ApiResult<JsonResponse<PhoneFailures>> {
    principal.require(Scope::Otp)?;
    let phone = phone_for_caller(&state, &principal, &phone).await?;
    let standing = state.otp.phone_failures(&principal.user_id, phone.e164()).await?;
    Ok(JsonResponse(PhoneFailures {
        phone: phone.e164().to_owned(),
        consecutive_failures: standing.failures,
        locked_until: standing.locked_until.map(rfc3339),
    }))
}

/// Clear a phone's failure counter (and lock).
#[utoipa::path(delete, path = "/api/v1/otp/phones/{phone}/failures", tag = "otp", params(("phone" = String, Path)),
    responses((status = 204)), security(("bearer" = []), ("api_key" = [])))]
pub async fn reset_phone_failures(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(phone): Path<String>,
) -> ApiResult<StatusCode> {
    principal.require(Scope::Otp)?;
    let phone = phone_for_caller(&state, &principal, &phone).await?;
    state.otp.reset_phone_failures(&principal.user_id, phone.e164()).await?;
    Ok(StatusCode::NO_CONTENT)
}
