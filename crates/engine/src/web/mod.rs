//! The `web` engine: each session is a linked device on the real WhatsApp network, driven by
//! the `whatsapp-rust` client.
//!
//! A session's credentials and Signal keys live in its [`SessionState`](crate::state::SessionState)
//! (wagate's database; see [`backend`]); a `whatsapp.db` that an earlier version kept in the
//! session's directory is imported into it on the first start (see [`import`]).
//! A [`supervisor`] task per session owns the client: it rebuilds it when it stops on its
//! own, and turns the client's events into [`EngineEvent`](crate::EngineEvent)s.

mod acks;
mod attempts;
pub mod backend;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod content;
mod durable;
mod events;
mod import;
mod inbound;
mod jids;
mod session;
mod supervisor;

use std::sync::Arc;

use async_trait::async_trait;
use wagate_core::EngineKind;

use crate::{Capabilities, Connection, Engine, EngineError, EventSink, SessionSpec};

/// A WhatsApp Web version, `major.minor.patch` (e.g. `2.3000.1029384756`).
pub type WebVersion = (u32, u32, u32);

/// How `web` sessions reach WhatsApp.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// The WhatsApp Web version the client announces. `None` fetches the current one from
    /// web.whatsapp.com before each connection.
    pub version: Option<WebVersion>,
    /// Test builds only: the WebSocket URL of a test server to use instead of WhatsApp's.
    #[cfg(feature = "test-server")]
    pub server_url: Option<String>,
}

impl WebConfig {
    /// Where clients connect: a test server in test builds, WhatsApp's own (`None`) otherwise.
    fn server_url(&self) -> Option<&str> {
        #[cfg(feature = "test-server")]
        return self.server_url.as_deref();
        #[cfg(not(feature = "test-server"))]
        None
    }
}

pub struct WebEngine {
    config: Arc<WebConfig>,
}

impl WebEngine {
    pub fn new(config: WebConfig) -> Self {
        Self { config: Arc::new(config) }
    }
}

#[async_trait]
impl Engine for WebEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Web
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::LINKED_DEVICE
    }

    fn state_is_shared(&self) -> bool {
        true
    }

    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn Connection>, EngineError> {
        Ok(Arc::new(session::WebSession::open(spec, events, self.config.clone())))
    }
}
