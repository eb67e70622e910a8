//! The engine port: the only way the rest of wagate talks to WhatsApp.
//!
//! An [`Engine`] opens a [`Connection`] for one session; everything the network says comes
//! back as [`EngineEvent`]s through the session's [`EventSink`], except the answer to a sent
//! message, which [`Connection::send`] hands back as a [`PendingAck`]. The port knows nothing of
//! HTTP or of wagate's database: each session gets a [`state::SessionState`] for what it must
//! remember (wagate backs it with its database) and a directory for anything else.

mod acks;
mod port;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod state;
#[cfg(feature = "web")]
pub mod web;

pub use acks::{ConnectionDropped, PendingAck, PendingAcks, SendOutcome};
pub use port::*;
