//! `/api/v1/…/messages`: accept messages into the outbox, follow them, retry or cancel them.

use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use wagate_core::message::{Button, ListRow, ListSection, MediaRef};
use wagate_core::{GroupJid, MessageContent, MessageStatus, Phone, Scope};
use wagate_store::{MessageFilter, MessageRecord, SessionRecord};

use super::extract::{Auth, QueryParams};
use super::sessions::{authorized_session, parse_phone, visible_sessions};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};
use wagate_service::auth::Principal;
use wagate_service::media::MediaError;
use wagate_service::outbox::{NewOutgoing, OutboxError};
use wagate_service::sessions::PoolStrategy;
use wagate_service::time::rfc3339;

pub fn routes() -> Router<AppState> {
    // Sending takes uploads up to the media limit: the body extractor enforces its own limits.
    Router::new()
        .route("/sessions/{id}/messages", post(send_from_session).layer(DefaultBodyLimit::disable()))
        .route("/messages", get(list).post(send).layer(DefaultBodyLimit::disable()))
        .route("/messages/{id}", get(show).delete(cancel))
        .route("/messages/{id}/retry", post(retry))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationBody {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// The contact's name as shown in the chat.
    pub name: String,
    /// A full vCard; or give `phone` and one is made.
    pub vcard: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReactionBody {
    pub message_id: String,
    /// An emoji; empty removes the reaction.
    pub emoji: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollBody {
    pub question: String,
    pub options: Vec<String>,
    #[serde(default = "one")]
    pub selectable_count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonsBody {
    pub text: String,
    pub footer: Option<String>,
    pub buttons: Vec<ButtonBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ButtonBody {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListBody {
    pub text: String,
    pub button_text: String,
    pub sections: Vec<ListSectionBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSectionBody {
    pub title: String,
    pub rows: Vec<ListRowBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRowBody {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// Media by URL (fetched when the message is sent). To upload a file instead, send the request
/// as `multipart/form-data` with the file in a field named after the type (`image`, `video`,
/// `audio`, `document`, `sticker`) and the other fields as text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    /// An http(s) URL to fetch the media from.
    pub url: String,
    pub mimetype: Option<String>,
    /// For documents: the name the recipient sees.
    pub file_name: Option<String>,
    /// For audio: send as a voice note (push-to-talk).
    #[serde(default)]
    pub voice: bool,
}

/// A message: `to` and exactly one content field (`text`, `location`, `contact`, `reaction`,
/// `poll`, `buttons`, `list`, `image`, `video`, `audio`, `document`, `sticker`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// A phone number in any accepted format, or a group JID (`…@g.us`).
    pub to: String,
    /// For `POST /api/v1/messages`: the session to send from…
    pub session: Option<String>,
    /// …or the phone number of one of your linked sessions (seed 003's "phone")…
    pub from: Option<String>,
    /// …or a pool: a healthy session of the pool sends it, and the message moves to another
    /// member if that session stops being healthy.
    pub pool: Option<String>,
    /// How the pool picks the session (default `round_robin`).
    #[schema(value_type = Option<String>)]
    pub strategy: Option<PoolStrategy>,
    pub text: Option<String>,
    /// Phone numbers to mention in `text`.
    pub mentions: Option<Vec<String>>,
    /// Id of a message to reply to.
    pub reply_to: Option<String>,
    pub location: Option<LocationBody>,
    pub contact: Option<ContactBody>,
    pub reaction: Option<ReactionBody>,
    pub poll: Option<PollBody>,
    /// Best effort: WhatsApp delivers buttons unreliably to linked devices.
    pub buttons: Option<ButtonsBody>,
    /// Best effort, like buttons.
    pub list: Option<ListBody>,
    pub image: Option<MediaBody>,
    pub video: Option<MediaBody>,
    pub audio: Option<MediaBody>,
    pub document: Option<MediaBody>,
    pub sticker: Option<MediaBody>,
    /// Caption of an image, video or document.
    pub caption: Option<String>,
    /// A file sent as `multipart/form-data` (not part of JSON bodies).
    #[serde(skip)]
    #[schema(ignore)]
    pub upload: Option<Upload>,
}

/// A file received in a multipart request, already stored.
#[derive(Debug)]
pub struct Upload {
    pub kind: &'static str,
    pub media: MediaRef,
    pub file_name: Option<String>,
    pub voice: bool,
}

impl Upload {
    fn into_content(self, caption: Option<String>) -> MessageContent {
        let media = self.media;
        match self.kind {
            "image" => MessageContent::Image { media, caption },
            "video" => MessageContent::Video { media, caption },
            "audio" => MessageContent::Audio { media, voice: self.voice },
            "sticker" => MessageContent::Sticker { media },
            _ => MessageContent::Document {
                media,
                file_name: self.file_name.unwrap_or_else(|| "file".into()),
                caption,
            },
        }
    }
}

fn file_name_from_url(url: &str) -> String {
    let last = url.split(['?', '#']).next().unwrap_or("").rsplit('/').next().unwrap_or("");
    if last.is_empty() { "file".into() } else { last.chars().take(255).collect() }
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_message", detail)
}

/// Turns the request into one validated content value.
fn content_of(state: &AppState, request: SendMessageRequest) -> ApiResult<MessageContent> {
    let mut contents = Vec::new();
    if let Some(body) = request.text {
        let mentions = request
            .mentions
            .unwrap_or_default()
            .iter()
            .map(|m| parse_phone(state, m).map(|p| p.jid()))
            .collect::<ApiResult<Vec<_>>>()?;
        contents.push(MessageContent::Text { body, mentions, reply_to: request.reply_to.clone() });
    }
    if let Some(l) = request.location {
        contents.push(MessageContent::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
        });
    }
    if let Some(c) = request.contact {
        let vcard = match (c.vcard, c.phone) {
            (Some(vcard), _) => vcard,
            (None, Some(phone)) => {
                let phone = parse_phone(state, &phone)?;
                format!(
                    "BEGIN:VCARD\nVERSION:3.0\nFN:{}\nTEL;type=CELL;waid={}:{}\nEND:VCARD",
                    c.name.replace(['\n', '\r'], " "),
                    phone.digits(),
                    phone.e164()
                )
            }
            (None, None) => return Err(invalid("contact: give `vcard` or `phone`")),
        };
        contents.push(MessageContent::Contact { display_name: c.name, vcard });
    }
    if let Some(r) = request.reaction {
        contents.push(MessageContent::Reaction { message_id: r.message_id, emoji: r.emoji });
    }
    if let Some(p) = request.poll {
        contents.push(MessageContent::Poll {
            question: p.question,
            options: p.options,
            selectable_count: p.selectable_count,
        });
    }
    if let Some(b) = request.buttons {
        let buttons = b.buttons.into_iter().map(|b| Button { id: b.id, title: b.title }).collect();
        contents.push(MessageContent::Buttons { body: b.text, footer: b.footer, buttons });
    }
    if let Some(l) = request.list {
        let sections = l
            .sections
            .into_iter()
            .map(|s| ListSection {
                title: s.title,
                rows: s
                    .rows
                    .into_iter()
                    .map(|r| ListRow { id: r.id, title: r.title, description: r.description })
                    .collect(),
            })
            .collect();
        contents.push(MessageContent::List { body: l.text, button_text: l.button_text, sections });
    }
    let caption = request.caption.clone();
    let by_url = |media: &MediaBody| MediaRef {
        source: media.url.clone(),
        mimetype: media.mimetype.clone(),
        size: None,
    };
    if let Some(m) = &request.image {
        contents.push(MessageContent::Image { media: by_url(m), caption: caption.clone() });
    }
    if let Some(m) = &request.video {
        contents.push(MessageContent::Video { media: by_url(m), caption: caption.clone() });
    }
    if let Some(m) = &request.audio {
        contents.push(MessageContent::Audio { media: by_url(m), voice: m.voice });
    }
    if let Some(m) = &request.document {
        let file_name = m.file_name.clone().unwrap_or_else(|| file_name_from_url(&m.url));
        contents.push(MessageContent::Document { media: by_url(m), file_name, caption: caption.clone() });
    }
    if let Some(m) = &request.sticker {
        contents.push(MessageContent::Sticker { media: by_url(m) });
    }
    if let Some(upload) = request.upload {
        contents.push(upload.into_content(caption));
    }
    let mut contents = contents.into_iter();
    let (Some(content), None) = (contents.next(), contents.next()) else {
        return Err(invalid("give exactly one of text, location, contact, reaction, poll, buttons, list"));
    };
    content.validate().map_err(|err| invalid(err.to_string()))?;
    Ok(content)
}

/// `…@g.us` group JIDs as they are, phone numbers in E.164.
fn recipient_of(state: &AppState, to: &str) -> ApiResult<String> {
    if wagate_core::address::is_group(to) {
        return GroupJid::parse(to)
            .map(|group| group.as_str().to_owned())
            .map_err(|_| ApiError::bad_request("invalid_recipient", "not a group JID"));
    }
    parse_phone(state, to).map(|p: Phone| p.e164().to_owned())
}

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => {
            let key = value.to_str().ok().map(str::trim).filter(|k| !k.is_empty() && k.len() <= 255);
            key.map(|k| Some(k.to_owned())).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible characters",
                )
            })
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    pub session_id: String,
    /// E.164 phone number or group JID.
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = Object)]
    pub content: MessageContent,
    /// `queued`, `sending`, `sent`, `delivered`, `read`, `failed` or `canceled`.
    pub status: String,
    /// Why it failed (or why it is waiting).
    pub reason: Option<String>,
    pub attempts: i64,
    /// `otp` messages jump the queue.
    pub priority: String,
    /// Buttons and lists reach linked devices unreliably.
    pub best_effort: bool,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub delivered_at: Option<String>,
    pub read_at: Option<String>,
    pub status_url: String,
    /// Every transition, oldest first (only on `GET /api/v1/messages/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<StatusChange>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusChange {
    pub status: String,
    pub reason: Option<String>,
    pub at: String,
}

impl From<&MessageRecord> for MessageView {
    fn from(m: &MessageRecord) -> Self {
        MessageView {
            id: m.id.clone(),
            session_id: m.session_id.to_string(),
            to: m.recipient.clone(),
            kind: m.content.kind().to_owned(),
            content: shown_content(&m.content),
            status: m.status.to_string(),
            reason: m.reason.clone(),
            attempts: m.attempts,
            priority: if m.priority > 0 { "otp" } else { "normal" }.to_owned(),
            best_effort: m.content.is_best_effort(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            sent_at: m.sent_at.map(rfc3339),
            delivered_at: m.delivered_at.map(rfc3339),
            read_at: m.read_at.map(rfc3339),
            status_url: format!("/api/v1/messages/{}", m.id),
            history: None,
        }
    }
}

/// The content as callers see it: the text of a one-time-password message is sealed in the
/// database and never shown.
fn shown_content(content: &MessageContent) -> MessageContent {
    match content {
        MessageContent::Text { body, mentions, reply_to } if wagate_core::otp::is_sealed(body) => {
            MessageContent::Text {
                body: "[one-time password: hidden]".into(),
                mentions: mentions.clone(),
                reply_to: reply_to.clone(),
            }
        }
        other => other.clone(),
    }
}

impl From<OutboxError> for ApiError {
    fn from(err: OutboxError) -> Self {
        let message = err.to_string();
        match err {
            OutboxError::IdempotencyMismatch => ApiError::conflict("idempotency_key_reused", message),
            OutboxError::NotFound => ApiError::not_found("message_not_found", message),
            OutboxError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            OutboxError::WrongStatus { .. } => ApiError::conflict("invalid_message_status", message),
            OutboxError::Store(err) => ApiError::from(err),
        }
    }
}

/// Accepts one message for `session`: durable in the outbox before the answer.
/// The v1 answer: 202 with the message (200 for an idempotent repeat) and its status URL.
async fn respond(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    request: SendMessageRequest,
) -> ApiResult<Response> {
    let (created, view) = accept(state, session, headers, request).await?;
    let location = HeaderValue::from_str(&view.status_url).expect("ids are header-safe");
    let status = if created { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, [(header::LOCATION, location)], JsonResponse(view)).into_response())
}

/// Accepts one message for `session`: durable in the outbox before the answer. Returns
/// whether it is new (not an idempotent repeat) and the message.
pub(crate) async fn accept(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    request: SendMessageRequest,
) -> ApiResult<(bool, MessageView)> {
    let upload_media = request.upload.as_ref().map(|u| u.media.clone());
    let result = accept_checked(state, session, headers, request).await;
    if result.is_err()
        && let Some(media) = upload_media
    {
        state.sessions.media().discard(&media).await;
    }
    result
}

async fn accept_checked(
    state: &AppState,
    session: &SessionRecord,
    headers: &HeaderMap,
    mut request: SendMessageRequest,
) -> ApiResult<(bool, MessageView)> {
    let upload = request.upload.take();
    let fingerprint = {
        let mut hasher = Sha256::new();
        // A pool send may pick another session on a repeat: the pool identifies the request.
        match &request.pool {
            Some(pool) => hasher.update(format!("pool:{pool}")),
            None => hasher.update(session.id.as_str()),
        }
        hasher.update(format!("{request:?}"));
        if let Some(upload) = &upload {
            hasher.update(format!(
                "{}:{:?}:{:?}:{:?}",
                upload.kind, upload.media.size, upload.media.mimetype, upload.file_name
            ));
        }
        hex::encode(hasher.finalize())
    };
    request.upload = upload;
    let pool = request.pool.take();
    let recipient = recipient_of(state, &request.to)?;
    let content = content_of(state, request)?;
    if let Some(media) = content.media()
        && !media.source.starts_with("upload:")
    {
        state
            .sessions
            .media()
            .check_url(&media.source)
            .await
            .map_err(|e| ApiError::unprocessable("invalid_media_url", e.to_string()))?;
    }
    let key = idempotency_key(headers)?;
    let accepted = state
        .sessions
        .delivery()
        .accept(NewOutgoing {
            owner_id: &session.owner_id,
            session_id: &session.id,
            pool: pool.as_deref(),
            recipient: &recipient,
            content: &content,
            priority: 0,
            expires_at: None,
            idempotency_key: key.as_deref(),
            request_hash: Some(&fingerprint),
        })
        .await?;
    if accepted.created {
        state.sessions.notify_work(session);
    }
    Ok((accepted.created, MessageView::from(&accepted.message)))
}

/// Queue a message from this session.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/messages", tag = "messages", params(("id" = String, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeat a request safely: same key and body → same message")),
    request_body = SendMessageRequest,
    responses((status = 202, description = "queued", body = MessageView), (status = 200, description = "an idempotent repeat", body = MessageView),
        (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem), (status = 501, body = Problem),
        (status = 503, description = "the server is shutting down (`shutting_down`)", body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send_from_session(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    SendBody(request): SendBody,
) -> ApiResult<Response> {
    let session = authorized_session(&state, &principal, &id, Scope::Send).await?;
    if request.session.is_some()
        || request.from.is_some()
        || request.pool.is_some()
        || request.strategy.is_some()
    {
        return Err(invalid("`session`, `from`, `pool` and `strategy` belong to POST /api/v1/messages"));
    }
    respond(&state, &session, &headers, request).await
}

/// Queue a message from a session named by `session`, or by its linked phone number (`from`).
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages", request_body = SendMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = MessageView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn send(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    SendBody(mut request): SendBody,
) -> ApiResult<Response> {
    let strategy = request.strategy.take();
    let session = match (request.session.take(), request.from.take(), request.pool.clone()) {
        (Some(id), None, None) => authorized_session(&state, &principal, &id, Scope::Send).await?,
        (None, Some(phone), None) => session_by_phone(&state, &principal, &phone).await?,
        (None, None, Some(pool)) => {
            principal.require(Scope::Send)?;
            let chosen = state
                .sessions
                .pick_from_pool(&principal.user_id, &pool, strategy.unwrap_or(PoolStrategy::RoundRobin))
                .await?;
            if !principal.can_see(&chosen) {
                return Err(ApiError::not_found(
                    "pool_not_found",
                    format!("no session of yours is in pool `{pool}`"),
                ));
            }
            chosen
        }
        _ => return Err(invalid("give exactly one of `session`, `from` or `pool`")),
    };
    respond(&state, &session, &headers, request).await
}

pub(crate) async fn session_by_phone(
    state: &AppState,
    principal: &Principal,
    phone: &str,
) -> ApiResult<SessionRecord> {
    principal.require(Scope::Send)?;
    let phone = parse_phone(state, phone)?;
    let record = state.store.session_by_phone(principal.owner_filter(), phone.e164()).await?;
    record.filter(|r| principal.can_see(r)).ok_or_else(|| {
        ApiError::not_found(
            "session_not_found",
            format!("none of your sessions is linked to {}", phone.e164()),
        )
    })
}

pub(crate) async fn visible_message(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<MessageRecord> {
    principal.require(Scope::Read)?;
    let not_found = || ApiError::not_found("message_not_found", "message not found");
    if id.len() > 64 {
        return Err(not_found());
    }
    let message = state.sessions.delivery().message(id).await.map_err(|_| not_found())?;
    if principal.may_access(&message.owner_id, Some(message.session_id.as_str())) {
        Ok(message)
    } else {
        Err(not_found())
    }
}

/// A message with its status history.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", params(("id" = String, Path)),
    responses((status = 200, body = MessageView), (status = 404, body = Problem)), security(("bearer" = []), ("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<MessageView>> {
    let message = visible_message(&state, &principal, &id).await?;
    let history = state.store.message_history(&message.id).await?;
    let mut view = MessageView::from(&message);
    view.history = Some(
        history
            .into_iter()
            .map(|h| StatusChange {
                status: h.status.to_string(),
                reason: h.reason,
                at: rfc3339(h.created_at),
            })
            .collect(),
    );
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
    let message = visible_message(&state, &principal, &id).await?;
    let message = state.sessions.delivery().retry(&message.id).await?;
    if let Ok(session) = state.sessions.get(&message.session_id).await {
        state.sessions.notify_work(&session);
    }
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
    let message = visible_message(&state, &principal, &id).await?;
    let message = state.sessions.delivery().cancel(&message.id).await?;
    Ok(JsonResponse(MessageView::from(&message)))
}

#[derive(Debug, Deserialize, IntoParams)]
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
    let limit = super::extract::page_limit(query.limit)?;
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
        filter.recipient = Some(recipient_of(&state, to)?);
    }
    filter.since = query.since.as_deref().map(|v| parse_time("since", v)).transpose()?;
    filter.until = query.until.as_deref().map(|v| parse_time("until", v)).transpose()?;
    filter.search = query.q.clone().filter(|q| !q.trim().is_empty());
    if let Some(cursor) = &query.cursor {
        let parsed =
            cursor.split_once(':').and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
        filter.before = Some(parsed.ok_or_else(|| ApiError::bad_request("invalid_query", "invalid cursor"))?);
    }
    let visible: Option<Vec<String>> = match &principal.sessions {
        Some(_) => {
            Some(visible_sessions(&state, &principal).await?.into_iter().map(|s| s.id.to_string()).collect())
        }
        None => None,
    };
    let records = state.store.messages(&filter).await?;
    let next_cursor = (records.len() as u32 == limit)
        .then(|| records.last().map(|m| format!("{}:{}", m.created_at, m.id)))
        .flatten();
    let messages = records
        .iter()
        .filter(|m| visible.as_ref().is_none_or(|v| v.contains(&m.session_id.to_string())))
        .map(MessageView::from)
        .collect();
    Ok(JsonResponse(MessagePage { messages, next_cursor }))
}

/// Largest JSON body of a send request.
const MAX_JSON_BYTES: usize = 1024 * 1024;

/// A send request as JSON, or as `multipart/form-data` with a file (streamed to storage while
/// it arrives, refused as soon as it passes the media limit).
pub struct SendBody(pub SendMessageRequest);

impl FromRequest<AppState> for SendBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        if content_type.starts_with("multipart/form-data") {
            let multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
            return read_multipart(state, multipart).await.map(SendBody);
        }
        if !content_type.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send JSON (`Content-Type: application/json`) or a multipart/form-data upload",
            ));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BYTES).await.map_err(|_| {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the JSON body is too large")
        })?;
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let request = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
            let inner = err.inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::bad_request("malformed_json", format!("malformed JSON: {inner}"))
            } else {
                ApiError::unprocessable("invalid_body", format!("{}: {inner}", err.path()))
            }
        })?;
        Ok(SendBody(request))
    }
}

const MEDIA_FIELDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];

async fn read_multipart(state: &AppState, mut multipart: Multipart) -> ApiResult<SendMessageRequest> {
    let media = state.sessions.media();
    let mut text: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut upload: Option<Upload> = None;
    let outcome: ApiResult<()> = async {
        while let Some(field) = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?
        {
            let name = field.name().unwrap_or_default().to_owned();
            if let Some(kind) = MEDIA_FIELDS.iter().find(|k| **k == name) {
                if upload.is_some() {
                    return Err(invalid("only one file per message"));
                }
                let file_name = field.file_name().map(str::to_owned);
                let stored = media.save_upload(kind, field).await.map_err(media_error)?;
                upload = Some(Upload { kind, media: stored, file_name, voice: false });
            } else {
                let value = field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
                if value.len() > 70_000 {
                    return Err(invalid(format!("field `{name}` is too long")));
                }
                text.insert(name, value);
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = outcome {
        if let Some(upload) = &upload {
            media.discard(&upload.media).await;
        }
        return Err(err);
    }
    let known = ["to", "session", "from", "pool", "text", "caption", "file_name", "voice"];
    if let Some(unknown) = text.keys().find(|k| !known.contains(&k.as_str())) {
        if let Some(upload) = &upload {
            media.discard(&upload.media).await;
        }
        return Err(ApiError::unprocessable("invalid_body", format!("unknown field `{unknown}`")));
    }
    if let Some(upload) = upload.as_mut() {
        upload.file_name = text.remove("file_name").or(upload.file_name.take());
        upload.voice = text.remove("voice").is_some_and(|v| v == "true" || v == "1");
    }
    let Some(to) = text.remove("to") else {
        if let Some(upload) = &upload {
            media.discard(&upload.media).await;
        }
        return Err(invalid("`to` is required"));
    };
    Ok(SendMessageRequest {
        to,
        session: text.remove("session"),
        from: text.remove("from"),
        pool: text.remove("pool"),
        strategy: None,
        text: text.remove("text"),
        mentions: None,
        reply_to: None,
        location: None,
        contact: None,
        reaction: None,
        poll: None,
        buttons: None,
        list: None,
        image: None,
        video: None,
        audio: None,
        document: None,
        sticker: None,
        caption: text.remove("caption"),
        upload,
    })
}

pub(crate) fn media_error(err: MediaError) -> ApiError {
    match err {
        MediaError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string())
        }
        MediaError::WrongType { .. } | MediaError::Empty => {
            ApiError::unprocessable("invalid_media", err.to_string())
        }
        MediaError::Url(_) => ApiError::unprocessable("invalid_media_url", err.to_string()),
        other => ApiError::internal("media", other),
    }
}
