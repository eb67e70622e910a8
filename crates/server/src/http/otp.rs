//! `/api/v1/otp`: issue, verify, follow, resend and cancel one-time passwords; tenant settings,
//! templates and per-phone failure counters.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json as JsonResponse, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::otp::OtpCode;
use wagate_core::{OtpMode, OtpStatus, Scope};
use wagate_store::{OtpFilter, OtpRecord};

use super::extract::{Auth, ClientIp, Json, QueryParams};
use super::messages::parse_time;
use super::sessions::{authorized_session, parse_phone};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::otp::templates::{self, TemplateError};
use wagate_service::otp::{
    Caller, Issued, OtpError, OtpSettings, SendRequest, SettingsError, Verdict, VerifyTarget,
};
use wagate_service::time::{now_ms, rfc3339};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/otp", get(list))
        .route("/otp/send", post(send))
        .route("/otp/verify", post(verify))
        .route("/otp/generate", get(generate))
        .route("/otp/settings", get(settings).patch(update_settings))
        .route("/otp/templates", get(list_templates))
        .route("/otp/templates/{name}/{locale}", put(put_template).delete(delete_template))
        .route("/otp/phones/{phone}", get(phone_failures))
        .route("/otp/phones/{phone}/failures", axum::routing::delete(reset_phone_failures))
        .route("/otp/{id}", get(show))
        .route("/otp/{id}/resend", post(resend))
        .route("/otp/{id}/cancel", post(cancel))
}

impl From<OtpError> for ApiError {
    fn from(err: OtpError) -> Self {
        let message = err.to_string();
        match err {
            OtpError::InvalidPhone(_) => ApiError::bad_request("invalid_phone", message),
            OtpError::CountryNotAllowed(_) => ApiError::unprocessable("country_not_allowed", message),
            OtpError::InvalidLength => ApiError::unprocessable("invalid_length", message),
            OtpError::InvalidTtl(_) => ApiError::unprocessable("invalid_ttl", message),
            OtpError::InvalidLocale(_) => ApiError::unprocessable("invalid_locale", message),
            OtpError::UnknownTemplate(_) => ApiError::unprocessable("unknown_template", message),
            OtpError::Template(TemplateError::Link) => ApiError::unprocessable("template_has_link", message),
            OtpError::Template(_) => ApiError::unprocessable("invalid_template", message),
            OtpError::CustomCodeForbidden => ApiError::forbidden("missing_scope", message),
            OtpError::InvalidCustomCode(_) => ApiError::unprocessable("invalid_custom_code", message),
            OtpError::InvalidCode(_) => ApiError::unprocessable("invalid_code", message),
            OtpError::MissingTarget => ApiError::unprocessable("missing_field", message),
            OtpError::RateLimited(_, wait) => {
                ApiError { detail: message, ..ApiError::too_many_requests(wait.as_secs() + 1) }
            }
            OtpError::PhoneLocked(wait) => ApiError {
                code: "phone_locked",
                detail: message,
                ..ApiError::too_many_requests(wait.as_secs() + 1)
            },
            OtpError::NotFound => ApiError::not_found("otp_not_found", message),
            OtpError::NotPending(status) => ApiError::conflict(
                match status {
                    OtpStatus::Approved => "otp_already_used",
                    OtpStatus::Expired => "otp_expired",
                    OtpStatus::Canceled => "otp_canceled",
                    OtpStatus::MaxAttempts => "otp_max_attempts",
                    OtpStatus::Failed | OtpStatus::Pending => "otp_failed",
                },
                message,
            ),
            OtpError::ResendCooldown(wait) => ApiError {
                code: "resend_cooldown",
                detail: message,
                ..ApiError::too_many_requests(wait.as_secs() + 1)
            },
            OtpError::ResendLimit => ApiError::conflict("resend_limit_reached", message),
            OtpError::NoSession(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_connected_session", message)
            }
            OtpError::SessionNotLinked => ApiError::conflict("session_not_linked", message),
            OtpError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            OtpError::Session(err) => ApiError::from(err),
            OtpError::Settings(SettingsError::Invalid(detail)) => {
                ApiError::unprocessable("invalid_settings", detail)
            }
            OtpError::Settings(SettingsError::Store(err)) | OtpError::Store(err) => ApiError::from(err),
        }
    }
}

/// Who is asking, for rate limits: the end user's IP (from `otp.client_ip_header` when the
/// caller sets it) and the credential.
pub(crate) struct OtpCaller(pub Caller);

impl FromRequestParts<AppState> for OtpCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let forwarded = state.config.otp.client_ip_header.as_ref().and_then(|name| {
            let value = parts.headers.get(name.as_str())?.to_str().ok()?;
            value
                .split(',')
                .next()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 64)
                .map(str::to_owned)
        });
        let ip = match forwarded {
            Some(ip) => ip,
            None => ClientIp::from_request_parts(parts, state).await?.0,
        };
        Ok(OtpCaller(Caller { ip, key: String::new() }))
    }
}

pub(crate) fn caller(principal: &Principal, OtpCaller(caller): OtpCaller) -> Caller {
    let key = principal.api_key_id.clone().unwrap_or_else(|| format!("user:{}", principal.user_id));
    Caller { key, ..caller }
}

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

/// A verification. The code is never part of it, except in a send response when the tenant
/// enabled `return_code_in_response`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OtpView {
    pub id: String,
    /// `pending`, `approved`, `expired`, `canceled`, `max_attempts` or `failed`.
    pub status: String,
    /// E.164.
    pub to: String,
    pub phone: String,
    pub channel: &'static str,
    /// How the code travels: `push` or `inbound`.
    pub mode: String,
    /// What the request asked for (`auto` may become either).
    pub requested_mode: String,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub message_id: Option<String>,
    /// The message's id under seed 004's name.
    #[serde(rename = "jobId")]
    pub job_id: Option<String>,
    /// Status of the message carrying the code (`queued`, `sent`, `delivered`, `read`, `failed`…).
    pub delivery_status: Option<String>,
    pub attempts: i64,
    pub attempts_left: i64,
    pub max_attempts: i64,
    pub sends: i64,
    pub length: i64,
    pub locale: String,
    pub reason: Option<String>,
    pub expires_at: String,
    pub otp_expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub approved_at: Option<String>,
    /// Inbound mode: the `wa.me` link that opens WhatsApp with the text to send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Inbound mode: the link as a QR code (PNG data URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
    /// `auto` mode fell back to inbound, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// Only with `return_code_in_response` (insecure; off by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Same as `code`, under seed 004's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp: Option<String>,
    /// A human-readable summary (send responses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl OtpView {
    fn new(record: &OtpRecord, delivery_status: Option<String>) -> Self {
        let status = record.effective_status(now_ms());
        OtpView {
            id: record.id.clone(),
            status: status.to_string(),
            to: record.phone.clone(),
            phone: record.phone.clone(),
            channel: "whatsapp",
            mode: record.mode.to_string(),
            requested_mode: record.requested_mode.to_string(),
            session_id: record.session_id.clone(),
            pool: record.pool.clone(),
            message_id: record.message_id.clone(),
            job_id: record.message_id.clone(),
            delivery_status,
            attempts: record.attempts,
            attempts_left: if status == OtpStatus::Pending { record.attempts_left() } else { 0 },
            max_attempts: record.max_attempts,
            sends: record.sends,
            length: record.code_length,
            locale: record.locale.clone(),
            reason: record.reason.clone(),
            expires_at: rfc3339(record.expires_at),
            otp_expires_at: rfc3339(record.expires_at),
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
            approved_at: record.approved_at.map(rfc3339),
            link: None,
            qr: None,
            fallback_reason: None,
            code: None,
            otp: None,
            message: None,
        }
    }

    pub(crate) fn from_issued(issued: Issued) -> Self {
        let delivery_status = issued.record.message_id.as_ref().map(|_| "queued".to_owned());
        let mut view = OtpView::new(&issued.record, delivery_status);
        view.message = Some(match &issued.link {
            Some(_) => "Verification created: the user sends the code from the link".into(),
            None => "OTP request accepted and queued for sending".into(),
        });
        view.qr = issued.link.as_deref().map(|link| {
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(crate::qr::png(link))
            )
        });
        view.link = issued.link;
        view.fallback_reason = issued.fallback_reason;
        view.code = issued.code.as_ref().map(|c| c.reveal().to_owned());
        view.otp = view.code.clone();
        view
    }
}

async fn delivery_status(state: &AppState, record: &OtpRecord) -> ApiResult<Option<String>> {
    Ok(match &record.message_id {
        Some(id) => state.store.message(id).await?.map(|m| m.status.to_string()),
        None => None,
    })
}

pub(crate) async fn view(state: &AppState, record: &OtpRecord) -> ApiResult<OtpView> {
    Ok(OtpView::new(record, delivery_status(state, record).await?))
}

fn no_store<T: IntoResponse>(status: StatusCode, body: T) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// Builds the service request from the body (shared with the seed routes).
pub(crate) async fn send_request(
    state: &AppState,
    principal: &Principal,
    body: SendOtpRequest,
) -> ApiResult<SendRequest> {
    principal.require(Scope::Otp)?;
    let raw_phone = match (body.phone, body.phone_number) {
        (Some(phone), None) | (None, Some(phone)) => phone,
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable("invalid_body", "give `phone` or `phoneNumber`, not both"));
        }
        (None, None) => return Err(ApiError::unprocessable("missing_field", "`phone` is required")),
    };
    let phone = parse_phone(state, &raw_phone)?;
    let session = match &body.session {
        Some(id) => Some(authorized_session(state, principal, id, Scope::Otp).await?),
        None => None,
    };
    if session.is_some() && body.pool.is_some() {
        return Err(ApiError::unprocessable("invalid_body", "give `session` or `pool`, not both"));
    }
    let length = match body.length {
        None => None,
        Some(n) => Some(usize::try_from(n).map_err(|_| OtpError::InvalidLength)?),
    };
    let ttl_secs = match body.ttl {
        None => None,
        Some(n) => Some(u64::try_from(n).map_err(|_| OtpError::InvalidTtl(state.config.otp.max_ttl_secs))?),
    };
    let brand = body.brand.or(body.company_name).or(body.company_name_camel).map(|b| b.trim().to_owned());
    if brand.as_ref().is_some_and(|b| b.is_empty() || b.chars().count() > 64) {
        return Err(ApiError::unprocessable("invalid_field", "brand must be 1 to 64 characters"));
    }
    if let Some(template) = &body.template {
        check_template_name(template)?;
    }
    Ok(SendRequest {
        phone,
        session,
        pool: body.pool,
        length,
        ttl_secs,
        locale: body.locale,
        brand,
        template: body.template,
        custom_code: body.custom_code,
        mode: body.mode.unwrap_or_default(),
    })
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

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResult {
    pub valid: bool,
    pub status: String,
    pub attempts_left: i64,
    /// Only when verified by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl From<&Verdict> for VerifyResult {
    fn from(v: &Verdict) -> Self {
        VerifyResult {
            valid: v.valid,
            status: v.status.to_string(),
            attempts_left: v.attempts_left,
            id: v.record.as_ref().map(|r| r.id.clone()),
        }
    }
}

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
        (None, Some(phone)) => VerifyTarget::Phone(parse_phone(state, &phone)?),
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

/// A verification: status, sends, attempts, the delivery of its message.
#[utoipa::path(get, path = "/api/v1/otp/{id}", tag = "otp", params(("id" = String, Path)),
    responses((status = 200, body = OtpView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<OtpView>> {
    principal.require(Scope::Otp)?;
    let record = state.otp.visible(&principal, &id).await?;
    Ok(JsonResponse(view(&state, &record).await?))
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
    let record = state.otp.visible(&principal, &id).await?;
    let mode = request.mode;
    let issued = state.otp.resend(&principal, &caller(&principal, otp_caller), record, mode).await?;
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
    let record = state.otp.visible(&principal, &id).await?;
    let canceled = state.otp.cancel(&record).await?;
    Ok(JsonResponse(view(&state, &canceled).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
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
    let limit = super::extract::page_limit(query.limit)?;
    let mut filter =
        OtpFilter { owner_id: principal.owner_filter().map(str::to_owned), limit, ..OtpFilter::default() };
    if let Some(phone) = &query.phone {
        filter.phone = Some(parse_phone(&state, phone)?.e164().to_owned());
    }
    if let Some(status) = &query.status {
        filter.status =
            Some(status.parse::<OtpStatus>().map_err(|e| ApiError::bad_request("invalid_query", e))?);
    }
    filter.since = query.since.as_deref().map(|v| parse_time("since", v)).transpose()?;
    filter.until = query.until.as_deref().map(|v| parse_time("until", v)).transpose()?;
    if let Some(cursor) = &query.cursor {
        let parsed =
            cursor.split_once(':').and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
        filter.before = Some(parsed.ok_or_else(|| ApiError::bad_request("invalid_query", "invalid cursor"))?);
    }
    let records = state.otp.list(&filter).await?;
    let next_cursor = (records.len() as u32 == limit)
        .then(|| records.last().map(|r| format!("{}:{}", r.created_at, r.id)))
        .flatten();
    let mut verifications = Vec::with_capacity(records.len());
    for record in records.iter().filter(|r| {
        principal.sessions.as_ref().is_none_or(|allowed| {
            r.session_id.as_ref().is_some_and(|s| allowed.iter().any(|a| a.as_str() == s))
        })
    }) {
        verifications.push(view(&state, record).await?);
    }
    Ok(JsonResponse(OtpPage { verifications, next_cursor }))
}

#[derive(Debug, Deserialize, IntoParams)]
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
    Auth(principal): Auth,
    QueryParams(query): QueryParams<GenerateQuery>,
) -> ApiResult<Response> {
    let code = generated(&principal, query.length)?;
    Ok(no_store(
        StatusCode::OK,
        JsonResponse(GeneratedCode { length: code.len(), code: code.reveal().to_owned() }),
    ))
}

pub(crate) fn generated(principal: &Principal, length: Option<i64>) -> ApiResult<OtpCode> {
    principal.require(Scope::Otp)?;
    let length = length.unwrap_or(wagate_core::otp::DEFAULT_LENGTH as i64);
    let range = wagate_core::otp::MIN_LENGTH as i64..=wagate_core::otp::MAX_LENGTH as i64;
    if !range.contains(&length) {
        return Err(OtpError::InvalidLength.into());
    }
    Ok(OtpCode::generate(length as usize))
}

/// Your OTP settings.
#[utoipa::path(get, path = "/api/v1/otp/settings", tag = "otp", responses((status = 200, body = super::schemas::OtpSettingsSchema)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<JsonResponse<OtpSettings>> {
    principal.require(Scope::Otp)?;
    Ok(JsonResponse(state.otp.settings(&principal.user_id).await?.as_ref().clone()))
}

/// Change some of your OTP settings (fields left out stay as they are; `null` clears one).
#[utoipa::path(patch, path = "/api/v1/otp/settings", tag = "otp", request_body = super::schemas::OtpSettingsSchema,
    responses((status = 200, body = super::schemas::OtpSettingsSchema), (status = 422, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
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
    let templates = state
        .otp
        .templates(&principal.user_id)
        .await?
        .into_iter()
        .map(|t| TemplateView {
            name: t.name,
            locale: t.locale,
            body: t.body,
            updated_at: Some(rfc3339(t.updated_at)),
        })
        .collect();
    let built_in = [templates::PUSH, templates::INBOUND]
        .iter()
        .flat_map(|name| {
            templates::BUILT_IN_LOCALES.iter().map(move |locale| TemplateView {
                name: (*name).to_owned(),
                locale: (*locale).to_owned(),
                body: templates::built_in(name, locale).unwrap_or_default().to_owned(),
                updated_at: None,
            })
        })
        .collect();
    Ok(JsonResponse(TemplateList { templates, built_in }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// minijinja; variables `code`, `brand` (or `company_name`), `minutes`, `length`. Must show
    /// the code; links are refused.
    pub body: String,
}

fn check_template_name(name: &str) -> ApiResult<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "invalid_template_name",
            "template names are 1 to 64 of a-z, 0-9, _ and -",
        ))
    }
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
    check_template_name(&name)?;
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
    if state.otp.delete_template(&principal.user_id, &name, &locale).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("template_not_found", "no such template"))
    }
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
    let phone = parse_phone(&state, &phone)?;
    let (failures, locked_until) = state.otp.phone_failures(&principal.user_id, phone.e164()).await?;
    Ok(JsonResponse(PhoneFailures {
        phone: phone.e164().to_owned(),
        consecutive_failures: failures,
        locked_until: locked_until.map(rfc3339),
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
    let phone = parse_phone(&state, &phone)?;
    state.otp.reset_phone_failures(&principal.user_id, phone.e164()).await?;
    Ok(StatusCode::NO_CONTENT)
}
