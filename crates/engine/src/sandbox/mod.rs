//! The sandbox: an in-process simulated WhatsApp network.
//!
//! Sessions on the sandbox engine behave like linked devices: they show rotating QR codes
//! (first valid 60 s, then 20 s each, and stop when they run out), link when a test or a user
//! "scans" them as some phone number (or confirms a pairing code), deliver messages into a
//! per-number inbox with delivered/read receipts, and receive injected inbound messages.
//! Sessions linked in the same sandbox can message each other.
//!
//! Recipients whose number ends in one of these digit groups fail like the real network:
//!
//! | ends in | behaviour |
//! |---------|-----------|
//! | `0000`  | not on WhatsApp: the number check says so and sends fail permanently |
//! | `0463`  | reach-out restriction: WhatsApp error 463, the send is refused |
//! | `0500`  | send failure: a transient error, worth retrying |
//! | `0999`  | slow delivery: accepted at once, delivered after `slow_delivery` |

mod codes;
mod device;
mod ledger;
mod magic;
mod network;
mod session;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use wagate_core::{EngineKind, Phone};

pub use ledger::{Delivery, LedgerError, SandboxGroup, SharedLedger};
pub use magic::MagicNumber;
pub use network::{InboxEntry, SandboxError, SandboxNetwork};

use crate::{Capabilities, Connection, Engine, EngineError, EventSink, SessionSpec};

/// Timings of the simulated network.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Validity of the first QR code (WhatsApp: 60 s).
    pub qr_first_timeout: Duration,
    /// Validity of every later QR code (WhatsApp: 20 s).
    pub qr_timeout: Duration,
    /// How many QR codes are shown before the session stops (WhatsApp: 6).
    pub qr_codes: u32,
    /// Validity of a pairing code.
    pub pair_code_timeout: Duration,
    /// Time from "sent" to "delivered" for ordinary recipients.
    pub delivery_delay: Duration,
    /// Time from "delivered" to "read".
    pub read_delay: Duration,
    /// Time from "sent" to "delivered" for slow-delivery numbers.
    pub slow_delivery: Duration,
    /// Where a network of this process alone keeps what it delivered, so that (like
    /// WhatsApp's servers) it remembers across restarts of wagate: inboxes survive and a resent
    /// message id is not delivered twice. `None`: in memory only.
    pub state_dir: Option<std::path::PathBuf>,
    /// How many deliveries the network remembers (inboxes show these; older ones are gone).
    pub inbox_capacity: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            qr_first_timeout: Duration::from_secs(60),
            qr_timeout: Duration::from_secs(20),
            qr_codes: 6,
            pair_code_timeout: Duration::from_secs(180),
            delivery_delay: Duration::from_millis(300),
            read_delay: Duration::from_secs(2),
            slow_delivery: Duration::from_secs(30),
            state_dir: None,
            inbox_capacity: 10_000,
        }
    }
}

/// The sandbox engine; all its sessions share one [`SandboxNetwork`].
pub struct SandboxEngine {
    network: Arc<SandboxNetwork>,
}

impl SandboxEngine {
    /// A network of this process alone (its memory on disk in `config.state_dir`).
    pub fn new(config: SandboxConfig) -> Self {
        SandboxEngine { network: Arc::new(SandboxNetwork::new(config)) }
    }

    /// A network shared with the other nodes of a database: its deliveries and groups are kept
    /// in `ledger`. Call within a Tokio runtime.
    pub fn shared(config: SandboxConfig, ledger: Arc<dyn SharedLedger>) -> Self {
        SandboxEngine { network: SandboxNetwork::shared(config, ledger) }
    }

    /// Test actions: scan, confirm a pairing code, inject a message, read an inbox.
    pub fn network(&self) -> Arc<SandboxNetwork> {
        self.network.clone()
    }
}

#[async_trait]
impl Engine for SandboxEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Sandbox
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { simulated: true, ..Capabilities::LINKED_DEVICE }
    }

    /// A sandbox session keeps its linked account in its state.
    fn state_is_shared(&self) -> bool {
        true
    }

    fn fixed_test_code(&self, phone: &Phone, length: usize) -> Option<String> {
        magic::fixed_test_code(phone, length)
    }

    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn Connection>, EngineError> {
        let connection = session::open(self.network.clone(), spec, events).await?;
        Ok(connection)
    }
}

#[cfg(test)]
mod tests;
