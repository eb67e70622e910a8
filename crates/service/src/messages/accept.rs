//! Accepting a message into the outbox: durable before the caller gets its answer.

use sha2::{Digest, Sha256};
use wagate_store::SessionRecord;

use super::request::{SendMessageRequest, Upload};
use super::{MessageError, Messages};
use crate::outbox::{Accepted, NewOutgoing};

/// Whether an `Idempotency-Key` value is usable: 1 to 255 visible characters once trimmed.
fn idempotency_key(raw: Option<&[u8]>) -> Result<Option<&str>, MessageError> {
    let Some(raw) = raw else { return Ok(None) };
    // Visible ASCII (and tabs), as HTTP header values are read as text.
    let visible = raw.iter().all(|&b| (32..127).contains(&b) || b == b'\t');
    let key = visible.then(|| std::str::from_utf8(raw).ok()).flatten().map(str::trim);
    key.filter(|k| !k.is_empty() && k.len() <= 255).map(Some).ok_or(MessageError::InvalidIdempotencyKey)
}

/// What identifies a request for idempotency: the session (or the pool, since a repeat may
/// pick another session of it), the request, and the uploaded file's description.
/// `request` comes without its upload, which is described by `upload`.
fn fingerprint(session: &SessionRecord, request: &SendMessageRequest, upload: Option<&Upload>) -> String {
    let mut hasher = Sha256::new();
    match &request.pool {
        Some(pool) => hasher.update(format!("pool:{pool}")),
        None => hasher.update(session.id.as_str()),
    }
    hasher.update(format!("{request:?}"));
    if let Some(upload) = upload {
        hasher.update(format!(
            "{}:{:?}:{:?}:{:?}",
            upload.kind, upload.media.size, upload.media.mimetype, upload.file_name
        ));
    }
    hex::encode(hasher.finalize())
}

impl Messages {
    /// Accepts one message for `session`: durable in the outbox before the answer, and the
    /// session's dispatcher woken for a new one. On any failure a file uploaded with the
    /// request is deleted. `idempotency_key` is the raw header value, if any.
    pub async fn accept(
        &self,
        session: &SessionRecord,
        request: SendMessageRequest,
        idempotency_key: Option<&[u8]>,
    ) -> Result<Accepted, MessageError> {
        let upload_media = request.upload.as_ref().map(|u| u.media.clone());
        let result = self.accept_checked(session, request, idempotency_key).await;
        if result.is_err()
            && let Some(media) = upload_media
        {
            self.sessions.media().discard(&media).await;
        }
        result
    }

    async fn accept_checked(
        &self,
        session: &SessionRecord,
        mut request: SendMessageRequest,
        raw_key: Option<&[u8]>,
    ) -> Result<Accepted, MessageError> {
        let upload = request.upload.take();
        let fingerprint = fingerprint(session, &request, upload.as_ref());
        request.upload = upload;
        let pool = request.pool.take();
        let recipient = self.recipient_of(&request.to, session)?;
        let content = self.content_of(request, session)?;
        if let Some(media) = content.media()
            && !media.source.starts_with("upload:")
        {
            self.sessions.media().check_url(&media.source).await?;
        }
        let key = idempotency_key(raw_key)?;
        let accepted = self
            .sessions
            .outbox()
            .accept(NewOutgoing {
                owner_id: &session.owner_id,
                session_id: &session.id,
                pool: pool.as_deref(),
                recipient: &recipient,
                content: &content,
                priority: 0,
                expires_at: None,
                idempotency_key: key,
                request_hash: Some(&fingerprint),
            })
            .await?;
        if accepted.created {
            self.sessions.notify_work(session);
        }
        Ok(accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::idempotency_key;

    #[test]
    fn idempotency_keys_are_short_visible_text() {
        assert_eq!(idempotency_key(None).unwrap(), None);
        assert_eq!(idempotency_key(Some(b" abc ")).unwrap(), Some("abc"));
        assert!(idempotency_key(Some(b"  ")).is_err());
        assert!(idempotency_key(Some(&[b'a'; 256])).is_err());
        assert!(idempotency_key(Some(b"caf\xc3\xa9")).is_err());
    }
}
