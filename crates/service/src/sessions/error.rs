//! What can go wrong with a session operation.

use wagate_core::{EngineKind, SessionId, SessionStatus};
use wagate_engine::EngineError;
use wagate_store::StoreError;

use crate::webhooks::WebhookError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("a session with id `{0}` already exists")]
    Exists(SessionId),
    #[error("the {0} engine is not available in this build or configuration")]
    EngineUnavailable(EngineKind),
    #[error("the session is already connected")]
    AlreadyConnected,
    #[error("the session is already linked to a phone; log out first")]
    AlreadyLinked,
    #[error("no QR code right now (session status: {0})")]
    NoQr(SessionStatus),
    /// The session's engine cannot do this (e.g. a QR code on an engine that links otherwise).
    #[error("the session's engine does not support {0}")]
    NotSupported(&'static str),
    /// Another node of the cluster runs the session's connection.
    #[error("the session runs on node `{0}`, which cannot be reached from here right now; try again shortly")]
    OnOtherNode(String),
    #[error(transparent)]
    Engine(EngineError),
    #[error("no session of yours is in pool `{0}`")]
    UnknownPool(String),
    #[error("webhook: {0}")]
    Webhook(WebhookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EngineError> for SessionError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::NotAvailable(kind) => SessionError::EngineUnavailable(kind),
            EngineError::AlreadyLinked => SessionError::AlreadyLinked,
            other => SessionError::Engine(other),
        }
    }
}
