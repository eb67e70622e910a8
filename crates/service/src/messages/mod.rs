//! Outgoing messages as callers see them: composing and accepting a message, finding the
//! sending session, and reading, retrying or cancelling messages.

mod accept;
mod compose;
mod queries;
mod request;

pub use request::{
    ButtonBody, ButtonsBody, ContactBody, ListBody, ListRowBody, ListSectionBody, LocationBody, MediaBody,
    PollBody, ReactionBody, SendMessageRequest, Upload,
};

use wagate_core::PhoneError;
use wagate_store::{Store, StoreError};

use crate::media::MediaError;
use crate::outbox::OutboxError;
use crate::phones::PhoneReader;
use crate::sessions::{SessionError, SessionManager};

#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The request does not make one valid message.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    InvalidPhone(#[from] PhoneError),
    #[error("not a group JID")]
    InvalidGroup,
    #[error("Idempotency-Key must be 1 to 255 visible characters")]
    InvalidIdempotencyKey,
    /// No session of the caller is linked to this number (E.164).
    #[error("none of your sessions is linked to {0}")]
    NoSessionForPhone(String),
    #[error("no session of yours is in pool `{0}`")]
    PoolNotFound(String),
    #[error("message not found")]
    NotFound,
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error(transparent)]
    Delivery(#[from] OutboxError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The messages service.
#[derive(Clone)]
pub struct Messages {
    sessions: SessionManager,
    store: Store,
    phones: PhoneReader,
}

impl Messages {
    pub fn new(sessions: SessionManager, store: Store, phones: PhoneReader) -> Self {
        Messages { sessions, store, phones }
    }
}
