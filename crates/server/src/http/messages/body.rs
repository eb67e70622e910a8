//! The body of a send request: JSON, or `multipart/form-data` with one file streamed to
//! storage while it arrives.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use wagate_service::messages::Upload;

use super::SendMessageRequest;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_message", detail)
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
                let stored = media.save_upload(kind, field).await?;
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
