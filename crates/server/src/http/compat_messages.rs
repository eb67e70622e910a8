//! Seed-compatible sending routes (docs/compat.md), as adapters over `/api/v1` messages.

mod seed_send;

use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, header};
use axum::routing::{get, post};
use axum::{Json as JsonResponse, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use wagate_core::Scope;

use super::messages::{
    ButtonBody, ButtonsBody, ListBody, ListRowBody, ListSectionBody, LocationBody, MediaBody, SendBody,
    SendMessageRequest,
};
use super::sessions::authorized_session;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use seed_send::{SeedAnswer, SeedSend, accept_and_render, json_body, queued, sent_003};

pub fn routes() -> Router<AppState> {
    let upload_limit = axum::extract::DefaultBodyLimit::disable();
    Router::new()
        .route("/api/messages/{session}/text", post(text))
        .route("/api/messages/{session}/location", post(location))
        .route("/api/messages/{session}/button", post(button))
        .route("/api/messages/{session}/list", post(list))
        .route("/api/messages/{session}/image", post(image).layer(upload_limit))
        .route("/api/messages/{session}/video", post(video).layer(upload_limit))
        .route("/api/messages/{session}/audio", post(audio).layer(upload_limit))
        .route("/api/messages/{session}/document", post(document).layer(upload_limit))
        .route("/api/messages/format-phone/{number}", get(format_phone))
        .route("/api/sessions/{id}/send", post(send_from_session))
        .route("/api/send", post(send_from_phone))
        .route("/api/sessions/{id}/check-number", post(check_number))
        .route("/api/sessions/{id}/groups", get(groups))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TextBody {
    pub to: String,
    /// The text (`text` is accepted too).
    pub message: Option<String>,
    pub text: Option<String>,
}

/// Send a text (`{to, message}`).
#[utoipa::path(post, path = "/api/messages/{session}/text", tag = "compat", params(("session" = String, Path)), request_body = TextBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn text(send: SeedSend) -> ApiResult<SeedAnswer> {
    let content = |body: TextBody| {
        let text = body.message.or(body.text).ok_or_else(|| {
            ApiError::bad_request("missing_field", "\"message\" is required in the request body")
        })?;
        Ok(SendMessageRequest { to: body.to, text: Some(text), ..Default::default() })
    };
    send.queue(content, queued).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LocationSeedBody {
    pub to: String,
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

/// Send a location (`{to, latitude, longitude, name?, address?}`).
#[utoipa::path(post, path = "/api/messages/{session}/location", tag = "compat", params(("session" = String, Path)), request_body = LocationSeedBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn location(send: SeedSend) -> ApiResult<SeedAnswer> {
    let content = |b: LocationSeedBody| {
        let location =
            LocationBody { latitude: b.latitude, longitude: b.longitude, name: b.name, address: b.address };
        Ok(SendMessageRequest { to: b.to, location: Some(location), ..Default::default() })
    };
    send.queue(content, queued).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ButtonSeedBody {
    pub to: String,
    pub message: Option<String>,
    pub text: Option<String>,
    pub footer: Option<String>,
    pub buttons: Vec<SeedButton>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SeedButton {
    pub id: Option<String>,
    pub title: Option<String>,
    /// Older clients name the label `text`.
    pub text: Option<String>,
}

/// Send buttons (best effort: WhatsApp delivers them unreliably to linked devices).
#[utoipa::path(post, path = "/api/messages/{session}/button", tag = "compat", params(("session" = String, Path)), request_body = ButtonSeedBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn button(send: SeedSend) -> ApiResult<SeedAnswer> {
    let content = |b: ButtonSeedBody| {
        let buttons = b
            .buttons
            .into_iter()
            .enumerate()
            .map(|(n, button)| {
                let title = button.title.or(button.text).unwrap_or_default();
                ButtonBody { id: button.id.unwrap_or_else(|| format!("btn-{}", n + 1)), title }
            })
            .collect();
        let body = ButtonsBody { text: b.message.or(b.text).unwrap_or_default(), footer: b.footer, buttons };
        Ok(SendMessageRequest { to: b.to, buttons: Some(body), ..Default::default() })
    };
    send.queue(content, queued).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListSeedBody {
    pub to: String,
    pub message: Option<String>,
    pub text: Option<String>,
    pub button_text: String,
    pub sections: Vec<SeedSection>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedSection {
    pub title: String,
    pub rows: Vec<SeedRow>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeedRow {
    pub id: Option<String>,
    pub row_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
}

/// Send a list (best effort, like buttons).
#[utoipa::path(post, path = "/api/messages/{session}/list", tag = "compat", params(("session" = String, Path)), request_body = ListSeedBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn list(send: SeedSend) -> ApiResult<SeedAnswer> {
    let content = |b: ListSeedBody| {
        let sections = b
            .sections
            .into_iter()
            .map(|s| ListSectionBody {
                title: s.title,
                rows: s
                    .rows
                    .into_iter()
                    .enumerate()
                    .map(|(n, r)| ListRowBody {
                        id: r.id.or(r.row_id).unwrap_or_else(|| format!("row-{}", n + 1)),
                        title: r.title,
                        description: r.description,
                    })
                    .collect(),
            })
            .collect();
        let body =
            ListBody { text: b.message.or(b.text).unwrap_or_default(), button_text: b.button_text, sections };
        Ok(SendMessageRequest { to: b.to, list: Some(body), ..Default::default() })
    };
    send.queue(content, queued).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaSeedBody {
    pub to: String,
    pub url: String,
    pub caption: Option<String>,
    pub file_name: Option<String>,
    pub mimetype: Option<String>,
    /// Audio only: a voice note.
    #[serde(default)]
    pub ptt: bool,
}

/// Media by multipart upload (`-F to=… -F caption=… -F image=@file`) or JSON `{to, url, caption}`.
async fn media(send: SeedSend, kind: &'static str) -> ApiResult<SeedAnswer> {
    let (session, state, headers, req) = send.session().await?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let request = if is_json {
        let b: MediaSeedBody = json_body(req, &state).await?;
        let media = MediaBody { url: b.url, mimetype: b.mimetype, file_name: b.file_name, voice: b.ptt };
        let mut request = SendMessageRequest { to: b.to, caption: b.caption, ..Default::default() };
        match kind {
            "image" => request.image = Some(media),
            "video" => request.video = Some(media),
            "audio" => request.audio = Some(media),
            _ => request.document = Some(media),
        }
        request
    } else {
        let SendBody(request) = SendBody::from_request(req, &state).await?;
        if request.upload.as_ref().is_some_and(|u| u.kind != kind) {
            if let Some(upload) = &request.upload {
                state.sessions.media().discard(&upload.media).await;
            }
            return Err(ApiError::unprocessable(
                "invalid_body",
                format!("send the file in a field named `{kind}`"),
            ));
        }
        request
    };
    accept_and_render(&state, &session, &headers, request, queued).await
}

macro_rules! media_route {
    ($name:ident, $kind:literal, $path:literal) => {
        #[doc = concat!("Send ", $kind, " media: multipart upload (field `", $kind, "`) or JSON `{to, url, caption}`.")]
        #[utoipa::path(post, path = $path, tag = "compat", params(("session" = String, Path)),
            responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
        pub async fn $name(send: SeedSend) -> ApiResult<SeedAnswer> {
            media(send, $kind).await
        }
    };
}

media_route!(image, "image", "/api/messages/{session}/image");
media_route!(video, "video", "/api/messages/{session}/video");
media_route!(audio, "audio", "/api/messages/{session}/audio");
media_route!(document, "document", "/api/messages/{session}/document");

/// `{success, message, data: {original, formatted, jid, e164}}`.
#[utoipa::path(get, path = "/api/messages/format-phone/{number}", tag = "compat", params(("number" = String, Path)),
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn format_phone(
    State(state): State<AppState>,
    super::extract::Auth(principal): super::extract::Auth,
    Path(number): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    principal.require(Scope::Read)?;
    let formatted = super::numbers::format(&state, &principal, &number, None).await?;
    let data = json!({ "original": number, "formatted": formatted.digits, "jid": formatted.jid, "e164": formatted.e164 });
    Ok(JsonResponse(json!({ "success": true, "message": "Phone number formatted", "data": data })))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SessionSendBody {
    pub recipient: String,
    pub message: String,
}

/// Seed 003: `{recipient, message}` from this session.
#[utoipa::path(post, path = "/api/sessions/{id}/send", tag = "compat", params(("id" = String, Path)), request_body = SessionSendBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn send_from_session(send: SeedSend) -> ApiResult<SeedAnswer> {
    let content = |b: SessionSendBody| {
        Ok(SendMessageRequest { to: b.recipient, text: Some(b.message), ..Default::default() })
    };
    send.queue(content, sent_003).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneSendBody {
    /// The linked number of the session to send from.
    pub phone: String,
    pub recipient: String,
    pub message: String,
}

/// Seed 003: `{phone, recipient, message}`, from the session linked to `phone`.
#[utoipa::path(post, path = "/api/send", tag = "compat", request_body = PhoneSendBody,
    responses((status = 202, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn send_from_phone(
    State(state): State<AppState>,
    super::extract::Auth(principal): super::extract::Auth,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<SeedAnswer> {
    let b: PhoneSendBody = json_body(req, &state).await?;
    principal.require(Scope::Send)?;
    let session = state.messages.session_by_phone(&principal, &b.phone).await?;
    let request = SendMessageRequest { to: b.recipient, text: Some(b.message), ..Default::default() };
    accept_and_render(&state, &session, &headers, request, sent_003).await
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckNumberBody {
    pub number: String,
}

/// Seed 003: `{success, number, on_whatsapp, verified, verified_name}`.
#[utoipa::path(post, path = "/api/sessions/{id}/check-number", tag = "compat", params(("id" = String, Path)), request_body = CheckNumberBody,
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn check_number(
    State(state): State<AppState>,
    super::extract::Auth(principal): super::extract::Auth,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<JsonResponse<Value>> {
    let session = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let b: CheckNumberBody = json_body(req, &state).await?;
    let result = super::numbers::check(&state, &session, vec![b.number.clone()]).await?;
    let found = result.first().ok_or_else(|| ApiError::bad_request("invalid_phone", "not a phone number"))?;
    Ok(JsonResponse(json!({
        "success": true,
        "number": b.number,
        "on_whatsapp": found.on_whatsapp,
        "jid": found.jid,
        "verified": found.business,
        "verified_name": Value::Null,
    })))
}

/// Seed 003: `{success, count, groups: [{jid, name, topic, description, owner, participant_count, is_admin, is_super_admin}]}`.
#[utoipa::path(get, path = "/api/sessions/{id}/groups", tag = "compat", params(("id" = String, Path)),
    responses((status = 200, description = "see docs/compat.md")), security(("bearer" = []), ("api_key" = [])))]
pub async fn groups(
    State(state): State<AppState>,
    super::extract::Auth(principal): super::extract::Auth,
    Path(id): Path<String>,
) -> ApiResult<JsonResponse<Value>> {
    let session = authorized_session(&state, &principal, &id, Scope::Read).await?;
    let groups = super::numbers::group_views(&state, &session).await?;
    let listed: Vec<Value> = groups
        .iter()
        .map(|g| {
            json!({
                "jid": g.jid,
                "name": g.subject,
                "topic": g.description.clone().unwrap_or_default(),
                "description": g.description.clone().unwrap_or_default(),
                "owner": g.owner,
                "participant_count": g.participant_count,
                "is_admin": g.is_admin,
                "is_super_admin": g.is_super_admin,
            })
        })
        .collect();
    Ok(JsonResponse(json!({ "success": true, "count": listed.len(), "groups": listed })))
}
