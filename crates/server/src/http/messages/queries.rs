//! Reading messages: one with its history, a filtered page; and retrying or cancelling one.

use axum::Json as JsonResponse;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::{MessageStatus, Scope};
use wagate_store::{MessageFilter, MessageRecord};

use super::{MessageView, StatusChange};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{Auth, QueryParams};
use crate::http::sessions::authorized_session;
use wagate_service::auth::Principal;

/// The message if the caller may read it; 404 otherwise.
pub(crate) async fn visible_message(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<MessageRecord> {
    principal.require(Scope::Read)?;
    Ok(state.messages.visible_message(principal, id).await?)
}

/// A message with its status history.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<MessageView>> {
    principal.require(Scope::Read)?;
    let (message, history) = state.messages.message_with_history(&principal, &id).await?;
    let mut view = MessageView::from(&message);
    view.history = Some(history.into_iter().map(StatusChange::from).collect());
    Ok(JsonResponse(view))
}

/// Re-queue a failed message (same id).
#[utoipa::path(post, path = "/api/v1/messages/{id}/retry", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<MessageView>> {
    principal.require(Scope::Send)?;
    principal.require(Scope::Read)?;
    let message = state.messages.retry(&principal, &id).await?;
    Ok(JsonResponse(MessageView::from(&message)))
}

/// Cancel a queued message.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 409, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<MessageView>> {
    principal.require(Scope::Send)?;
    principal.require(Scope::Read)?;
    let message = state.messages.cancel(&principal, &id).await?;
    Ok(JsonResponse(MessageView::from(&message)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub session: Option<String>,
    pub status: Option<String>,
    /// Recipient, in any accepted phone format or a group JID.
    pub to: Option<String>,
    /// RFC 3339; created at or after.
    pub since: Option<String>,
    /// RFC 3339; created before.
    pub until: Option<String>,
    /// Search in ids, recipients, text and failure reasons.
    pub q: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    pub messages: Vec<MessageView>,
    pub next_cursor: Option<String>,
}

pub(crate) fn parse_time(field: &str, value: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| ApiError::bad_request("invalid_query", format!("{field} must be an RFC 3339 time")))
}

/// Messages, newest first, with filters and search.
#[utoipa::path(get, path = "/api/v1/messages", tag = "messages", params(ListQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListQuery>,
) -> ApiResult<JsonResponse<MessagePage>> {
    principal.require(Scope::Read)?;
    let limit = crate::http::extract::page_limit(query.limit)?;
    let mut filter = MessageFilter {
        owner_id: principal.owner_filter().map(str::to_owned),
        limit,
        ..MessageFilter::default()
    };
    if let Some(session) = &query.session {
        filter.session_id =
            Some(authorized_session(&state, &principal, session, Scope::Read).await?.id.to_string());
    }
    if let Some(status) = &query.status {
        filter.status =
            Some(status.parse::<MessageStatus>().map_err(|e| ApiError::bad_request("invalid_query", e))?);
    }
    if let Some(to) = &query.to {
        filter.recipient = Some(state.messages.recipient_for_caller(to, &principal).await?);
    }
    filter.since = query.since.as_deref().map(|v| parse_time("since", v)).transpose()?;
    filter.until = query.until.as_deref().map(|v| parse_time("until", v)).transpose()?;
    filter.search = query.q.clone().filter(|q| !q.trim().is_empty());
    if let Some(cursor) = &query.cursor {
        filter.before = Some(crate::http::extract::parse_page_cursor(cursor)?);
    }
    let (records, next_cursor) = state.messages.list(&principal, &filter).await?;
    let messages = records.iter().map(MessageView::from).collect();
    Ok(JsonResponse(MessagePage { messages, next_cursor }))
}
