//! `/api/v1/sessions/{id}/chats/{chat}/messages`: what arrived in a chat.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use wagate_core::Scope;

use super::extract::{Auth, QueryParams};
use super::sessions::{authorized_session, phone_for_session};
use crate::app::AppState;
use crate::error::{ApiResult, Problem};
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    Router::new().route("/sessions/{id}/chats/{chat}/messages", get(messages))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChatQuery {
    /// 1–200, default 50.
    pub limit: Option<u32>,
    /// `next_before` of the previous page.
    pub before: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InboundView {
    /// WhatsApp's message id.
    pub id: String,
    pub chat: String,
    /// Sender's phone number (E.164) and LID.
    pub from: Option<String>,
    pub from_lid: Option<String>,
    pub push_name: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    #[schema(value_type = Object)]
    pub content: wagate_core::MessageContent,
    pub quoted_id: Option<String>,
    pub timestamp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatPage {
    pub messages: Vec<InboundView>,
    pub next_before: Option<i64>,
}

/// Messages received in a chat (a phone number or a group JID), newest first.
#[utoipa::path(get, path = "/api/v1/sessions/{id}/chats/{chat}/messages", tag = "messages",
    params(("id" = String, Path), ("chat" = String, Path, description = "phone number or group JID"), ChatQuery),
    responses((status = 200, body = ChatPage), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((id, chat)): Path<(String, String)>,
    QueryParams(query): QueryParams<ChatQuery>,
) -> ApiResult<JsonResponse<ChatPage>> {
    let session = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let chat = if wagate_core::address::is_group(&chat) || wagate_core::address::is_lid(&chat) {
        chat
    } else {
        phone_for_session(&state, &session, &chat)?.jid()
    };
    let limit = super::extract::page_limit(query.limit)?;
    let records = state.activity.chat_messages(&session.id, &chat, query.before, limit).await?;
    let next_before = (records.len() as u32 == limit).then(|| records.last().map(|r| r.sent_at)).flatten();
    let messages = records
        .into_iter()
        .map(|r| InboundView {
            kind: r.content.kind().to_owned(),
            text: r.content.text().map(str::to_owned),
            id: r.wa_id,
            chat: r.chat,
            from: r.sender_phone,
            from_lid: r.sender_lid,
            push_name: r.push_name,
            content: r.content,
            quoted_id: r.quoted_id,
            timestamp: rfc3339(r.sent_at),
        })
        .collect();
    Ok(JsonResponse(ChatPage { messages, next_before }))
}
