//! Domain types shared by every layer of wagate.
//!
//! Values are parsed once, at the edge, into these types ("parse, don't validate"): a
//! `SessionId` or a `Phone` that exists is valid, so the layers below never re-check them.

pub mod access;
pub mod address;
pub mod engine_state;
pub mod message;
mod message_id;
pub mod otp;
pub mod pacing;
pub mod phone;
pub mod session;
pub mod user;

pub use access::{Role, Scope, ScopeSet};
pub use address::{GroupJid, Recipient};
pub use engine_state::{STATE_KEY_MAX, StateChange, StateEntry, StateRows};
pub use message::{MessageContent, MessageStatus};
pub use otp::{OtpCode, OtpMode, OtpStatus};
pub use pacing::Pacing;
pub use phone::{Phone, PhoneError};
pub use session::{EngineKind, SessionId, SessionIdError, SessionName, SessionStatus};
pub use user::{Username, UsernameError};

/// A random identifier that sorts by creation time (UUID v7, hyphenated).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
