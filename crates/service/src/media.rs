//! Media of outgoing messages: uploads streamed to disk with a size limit, URLs fetched by the
//! dispatcher when the message is sent, and the type checked from the bytes themselves.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use wagate_core::message::MediaRef;
use wagate_engine::MediaData;

use crate::url_guard::UrlGuard;

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// Largest accepted upload or download, in bytes.
    pub max_bytes: u64,
    pub download_timeout_ms: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig { max_bytes: 50 * 1024 * 1024, download_timeout_ms: 30_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{kind} media must be {allowed}; this file is {found}")]
    WrongType { kind: &'static str, allowed: &'static str, found: String },
    #[error("the file is empty")]
    Empty,
    #[error("media URL refused: {0}")]
    Url(String),
    #[error("media download failed: {0}")]
    Download(String, bool),
    #[error("stored media is missing: {0}")]
    Missing(String),
    #[error("cannot store media: {0}")]
    Io(#[from] std::io::Error),
    /// The client's upload could not be read to its end (a malformed or cut-off body).
    #[error("the upload could not be read: {0}")]
    BrokenUpload(String),
}

impl MediaError {
    /// Whether trying again later may help (timeouts, 5xx, connection errors).
    pub fn is_transient(&self) -> bool {
        matches!(self, MediaError::Download(_, true))
    }
}

pub struct MediaStore {
    dir: PathBuf,
    pub config: MediaConfig,
    client: reqwest::Client,
    url_guard: UrlGuard,
}

/// Removes a partial file unless it was kept.
struct PartialFile(Option<PathBuf>);

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl MediaStore {
    pub fn new(data_dir: &Path, config: MediaConfig, url_guard: UrlGuard) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.download_timeout_ms))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client builds");
        MediaStore { dir: data_dir.join("media"), config, client, url_guard }
    }

    fn path_of(&self, name: &str) -> Option<PathBuf> {
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        valid.then(|| self.dir.join(name))
    }

    /// Streams an upload to disk, refusing it as soon as it passes the size limit, and checks
    /// its type from its first bytes. The file is removed on any failure.
    pub async fn save_upload<S, E>(&self, kind: &'static str, mut chunks: S) -> Result<MediaRef, MediaError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        tokio::fs::create_dir_all(&self.dir).await?;
        let name = wagate_core::new_id();
        let path = self.dir.join(&name);
        let mut guard = PartialFile(Some(path.clone()));
        let mut file = tokio::fs::File::create(&path).await?;
        let mut size: u64 = 0;
        let mut head: Vec<u8> = Vec::with_capacity(64);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| MediaError::BrokenUpload(e.to_string()))?;
            size += chunk.len() as u64;
            if size > self.config.max_bytes {
                return Err(MediaError::TooLarge { limit: self.config.max_bytes });
            }
            if head.len() < 64 {
                head.extend_from_slice(&chunk[..chunk.len().min(64 - head.len())]);
            }
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        if size == 0 {
            return Err(MediaError::Empty);
        }
        let mimetype = check_type(kind, &head)?;
        guard.0 = None;
        Ok(MediaRef { source: format!("upload:{name}"), mimetype: Some(mimetype), size: Some(size) })
    }

    /// Checks a media URL when a message is accepted.
    pub async fn check_url(&self, url: &str) -> Result<(), MediaError> {
        self.url_guard.check(url).await.map(|_| ()).map_err(|refused| MediaError::Url(refused.0))
    }

    /// The bytes to send: read from storage, or downloaded (with the same limits as uploads).
    pub async fn load(&self, kind: &'static str, media: &MediaRef) -> Result<MediaData, MediaError> {
        let bytes = match media.source.strip_prefix("upload:") {
            Some(name) => {
                let path = self.path_of(name).ok_or_else(|| MediaError::Missing(media.source.clone()))?;
                tokio::fs::read(&path).await.map_err(|_| MediaError::Missing(media.source.clone()))?
            }
            None => self.download(&media.source).await?,
        };
        let mimetype = check_type(kind, &bytes[..bytes.len().min(64)])?;
        Ok(MediaData { bytes: Arc::new(bytes), mimetype: media.mimetype.clone().unwrap_or(mimetype) })
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, MediaError> {
        let checked = self.url_guard.check(url).await.map_err(|refused| MediaError::Url(refused.0))?;
        let response = self.client.get(checked).send().await.map_err(|e| {
            let transient = e.is_timeout() || e.is_connect();
            MediaError::Download(if e.is_timeout() { "timed out".into() } else { e.to_string() }, transient)
        })?;
        let status = response.status();
        if !status.is_success() {
            let transient = status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408;
            return Err(MediaError::Download(format!("HTTP {}", status.as_u16()), transient));
        }
        if response.content_length().is_some_and(|n| n > self.config.max_bytes) {
            return Err(MediaError::TooLarge { limit: self.config.max_bytes });
        }
        let mut body = response.bytes_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                MediaError::Download(if e.is_timeout() { "timed out".into() } else { e.to_string() }, true)
            })?;
            if (bytes.len() + chunk.len()) as u64 > self.config.max_bytes {
                return Err(MediaError::TooLarge { limit: self.config.max_bytes });
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(MediaError::Empty);
        }
        Ok(bytes)
    }

    /// Deletes a stored upload once its message is sent.
    pub async fn discard(&self, media: &MediaRef) {
        if let Some(path) = media.source.strip_prefix("upload:").and_then(|name| self.path_of(name)) {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// Retention: removes uploads last written before `cutoff` (Unix ms), left behind by
    /// messages that never went (their rows are gone by then too).
    pub async fn remove_files_older_than(&self, cutoff: i64) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else { return };
        let cutoff = std::time::UNIX_EPOCH + Duration::from_millis(cutoff.max(0) as u64);
        while let Ok(Some(entry)) = entries.next_entry().await {
            let old = entry.metadata().await.and_then(|m| m.modified()).is_ok_and(|at| at < cutoff);
            if old && let Err(err) = tokio::fs::remove_file(entry.path()).await {
                tracing::warn!(file = %entry.path().display(), error = %err, "cannot remove an old upload");
            }
        }
    }
}

/// The media type from the first bytes of a file.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Some("image/webp")
    } else if starts(b"GIF8") {
        Some("image/gif")
    } else if head.get(4..8) == Some(b"ftyp") {
        match head.get(8..11) {
            Some(b"M4A") => Some("audio/mp4"),
            Some(b"3gp") => Some("video/3gpp"),
            _ => Some("video/mp4"),
        }
    } else if starts(b"OggS") {
        Some("audio/ogg")
    } else if starts(b"ID3")
        || (head.len() > 1 && head[0] == 0xFF && (head[1] & 0xE0) == 0xE0 && (head[1] & 0x06) != 0)
    {
        Some("audio/mpeg")
    } else if head.len() > 1 && head[0] == 0xFF && (head[1] & 0xF6) == 0xF0 {
        Some("audio/aac")
    } else if starts(b"#!AMR") {
        Some("audio/amr")
    } else if starts(b"%PDF") {
        Some("application/pdf")
    } else if starts(b"PK\x03\x04") {
        Some("application/zip")
    } else {
        None
    }
}

/// What WhatsApp accepts per media kind.
fn check_type(kind: &'static str, head: &[u8]) -> Result<String, MediaError> {
    let found = sniff(head);
    let (allowed, ok): (&'static str, bool) = match kind {
        "image" => {
            ("JPEG or PNG (WebP accepted)", matches!(found, Some("image/jpeg" | "image/png" | "image/webp")))
        }
        "video" => ("MP4 or 3GPP", matches!(found, Some("video/mp4" | "video/3gpp"))),
        "audio" => (
            "OGG/Opus, MP3, AAC, M4A or AMR",
            matches!(found, Some("audio/ogg" | "audio/mpeg" | "audio/aac" | "audio/mp4" | "audio/amr")),
        ),
        "sticker" => ("WebP", found == Some("image/webp")),
        _ => ("any file", true),
    };
    if ok {
        Ok(found.unwrap_or("application/octet-stream").to_owned())
    } else {
        Err(MediaError::WrongType {
            kind,
            allowed,
            found: found.unwrap_or("an unrecognised type").to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_common_types() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42"), Some("video/mp4"));
        assert_eq!(sniff(b"OggS\0\x02"), Some("audio/ogg"));
        assert_eq!(sniff(b"%PDF-1.7"), Some("application/pdf"));
        assert_eq!(sniff(b"hello"), None);
    }

    #[test]
    fn kinds_accept_only_their_types() {
        assert!(check_type("image", b"\x89PNG\r\n\x1a\n").is_ok());
        assert!(matches!(check_type("image", b"%PDF-1.7"), Err(MediaError::WrongType { .. })));
        assert!(check_type("document", b"anything at all").is_ok());
        assert!(check_type("sticker", b"\x89PNG\r\n\x1a\n").is_err());
    }
}
