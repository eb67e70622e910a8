//! Numbers, groups and phone formatting.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::{Phone, Scope};

use super::extract::{Auth, Json, QueryParams};
use super::sessions::{authorized_session, phone_for_caller, phone_for_session};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions/{id}/numbers/check", post(check_numbers))
        .route("/sessions/{id}/groups", get(groups))
        .route("/phone/format", get(format_phone))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckNumbersRequest {
    /// One number…
    pub number: Option<String>,
    /// …or up to 50.
    pub numbers: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NumberResult {
    pub input: String,
    /// E.164.
    pub phone: String,
    pub on_whatsapp: bool,
    pub jid: Option<String>,
    pub lid: Option<String>,
    pub business: bool,
    /// Answered from the cache.
    pub cached: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckNumbersResponse {
    pub results: Vec<NumberResult>,
}

pub(crate) async fn check(
    state: &AppState,
    session: &wagate_store::SessionRecord,
    inputs: Vec<String>,
) -> ApiResult<Vec<NumberResult>> {
    if inputs.is_empty() || inputs.len() > 50 {
        return Err(ApiError::unprocessable("invalid_field", "give 1 to 50 numbers"));
    }
    let phones =
        inputs.iter().map(|n| phone_for_session(state, session, n)).collect::<ApiResult<Vec<Phone>>>()?;
    let checked = state.numbers.check(&state.sessions, session, &phones).await?;
    Ok(inputs
        .into_iter()
        .zip(phones)
        .filter_map(|(input, phone)| {
            let found = checked.iter().find(|c| c.check.phone == phone)?;
            Some(NumberResult {
                input,
                phone: phone.e164().to_owned(),
                on_whatsapp: found.check.on_whatsapp,
                jid: found.check.jid.clone(),
                lid: found.check.lid.clone(),
                business: found.check.business,
                cached: found.cached,
            })
        })
        .collect())
}

/// Which numbers are on WhatsApp (answers cached for a while).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/numbers/check", tag = "numbers", params(("id" = String, Path)),
    request_body = CheckNumbersRequest,
    responses((status = 200, body = CheckNumbersResponse), (status = 400, body = Problem),
        (status = 409, description = "`session_on_other_node`: another node of the cluster runs the session", body = Problem),
        (status = 503, description = "session not connected", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn check_numbers(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    Json(request): Json<CheckNumbersRequest>,
) -> ApiResult<JsonResponse<CheckNumbersResponse>> {
    let session = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let inputs = match (request.number, request.numbers) {
        (Some(one), None) => vec![one],
        (None, Some(many)) => many,
        _ => return Err(ApiError::unprocessable("invalid_field", "give `number` or `numbers`")),
    };
    Ok(JsonResponse(CheckNumbersResponse { results: check(&state, &session, inputs).await? }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub participant_count: usize,
    pub participants: Vec<ParticipantView>,
    /// Whether this session's account is an admin of the group.
    pub is_admin: bool,
    pub is_super_admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantView {
    pub jid: String,
    pub phone: Option<String>,
    pub is_admin: bool,
    pub is_super_admin: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
}

pub(crate) async fn group_views(
    state: &AppState,
    session: &wagate_store::SessionRecord,
) -> ApiResult<Vec<GroupView>> {
    let groups = state.sessions.groups(session).await?;
    let me = session.account.as_ref().map(|a| a.phone.clone());
    Ok(groups
        .into_iter()
        .map(|g| {
            let mine = g.participants.iter().find(|p| p.phone.is_some() && p.phone == me);
            GroupView {
                is_admin: mine.is_some_and(|p| p.is_admin),
                is_super_admin: mine.is_some_and(|p| p.is_super_admin),
                participant_count: g.participants.len(),
                jid: g.jid,
                subject: g.subject,
                description: g.description,
                owner: g.owner,
                participants: g
                    .participants
                    .into_iter()
                    .map(|p| ParticipantView {
                        jid: p.jid,
                        phone: p.phone,
                        is_admin: p.is_admin,
                        is_super_admin: p.is_super_admin,
                    })
                    .collect(),
            }
        })
        .collect())
}

/// The groups the session's account is in.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/groups", tag = "numbers", params(("id" = String, Path)),
    responses((status = 200, body = GroupList),
        (status = 409, description = "`session_on_other_node`: another node of the cluster runs the session", body = Problem),
        (status = 503, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn groups(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<GroupList>> {
    let session = authorized_session(&state, &principal, &id, Scope::Read).await?;
    Ok(JsonResponse(GroupList { groups: group_views(&state, &session).await? }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    pub number: String,
    /// Region for national numbers (ISO 3166 alpha-2); default: the server's `default_region`,
    /// else the country that all of the caller's linked sessions share.
    pub region: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FormattedPhone {
    pub input: String,
    pub e164: String,
    /// Digits only, as WhatsApp ids use them.
    pub digits: String,
    pub jid: String,
    pub region: Option<String>,
    pub national: String,
    pub international: String,
}

pub(crate) async fn format(
    state: &AppState,
    principal: &Principal,
    number: &str,
    region: Option<&str>,
) -> ApiResult<FormattedPhone> {
    let phone = match region {
        Some(region) => Phone::parse(number, Some(region))
            .map_err(|e| ApiError::bad_request("invalid_phone", e.to_string()))?,
        None => phone_for_caller(state, principal, number).await?,
    };
    Ok(FormattedPhone {
        input: number.to_owned(),
        e164: phone.e164().to_owned(),
        digits: phone.digits().to_owned(),
        jid: phone.jid(),
        region: phone.region(),
        national: phone.national(),
        international: phone.international(),
    })
}

/// Normalise a phone number (E.164, digits, JID, national and international forms).
#[utoipa::path(get, path = "/api/v1/phone/format", tag = "numbers", params(FormatQuery),
    responses((status = 200, body = FormattedPhone), (status = 400, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn format_phone(
    Auth(principal): Auth,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<FormatQuery>,
) -> ApiResult<JsonResponse<FormattedPhone>> {
    principal.require(Scope::Read)?;
    Ok(JsonResponse(format(&state, &principal, &query.number, query.region.as_deref()).await?))
}
