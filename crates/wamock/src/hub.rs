//! The state shared by every connection task and the public API.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::{Mutex as AsyncMutex, mpsc, watch};

use crate::noise::ServerIdentity;
use crate::state::{ConnectionEntry, Outbound, World};
use crate::{MockConfig, ReceivedMessage};

/// Everything behind a [`crate::WaMock`] handle.
pub(crate) struct Hub {
    pub(crate) config: MockConfig,
    pub(crate) server: ServerIdentity,
    world: Mutex<World>,
    received_tx: mpsc::UnboundedSender<ReceivedMessage>,
    received_rx: AsyncMutex<mpsc::UnboundedReceiver<ReceivedMessage>>,
    next_connection_id: AtomicU64,
    /// While true, handshakes wait before the server's hello (see [`crate::WaMock::hold_handshakes`]).
    pub(crate) handshakes_held: watch::Sender<bool>,
    /// Handshakes waiting for that now.
    pub(crate) waiting_handshakes: AtomicUsize,
}

impl Hub {
    /// A hub with an empty world.
    pub(crate) fn new(config: MockConfig, server: ServerIdentity) -> Self {
        let (received_tx, received_rx) = mpsc::unbounded_channel();
        Self {
            config,
            server,
            world: Mutex::new(World::default()),
            received_tx,
            received_rx: AsyncMutex::new(received_rx),
            next_connection_id: AtomicU64::new(1),
            handshakes_held: watch::Sender::new(false),
            waiting_handshakes: AtomicUsize::new(0),
        }
    }

    /// Returns once handshakes are not held, counting this one as waiting meanwhile.
    pub(crate) async fn handshake_turn(&self) {
        let mut held = self.handshakes_held.subscribe();
        if !*held.borrow_and_update() {
            return;
        }
        self.waiting_handshakes.fetch_add(1, Ordering::SeqCst);
        let _ = held.wait_for(|held| !held).await;
        self.waiting_handshakes.fetch_sub(1, Ordering::SeqCst);
    }

    /// Locks the world (never held across an await).
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a live connection and returns its id.
    pub(crate) fn register_connection(&self, outbound: mpsc::UnboundedSender<Outbound>) -> u64 {
        let id = self.next_connection_id.fetch_add(1, Ordering::Relaxed);
        self.world().connections.insert(
            id,
            ConnectionEntry {
                outbound,
                registration: None,
                pairing: None,
                session: None,
                closed_by_client: false,
            },
        );
        id
    }

    /// Notes that the client closed the connection, while the stanzas it sent before are
    /// still handled: the device no longer counts as logged in on it.
    pub(crate) fn closed_by_client(&self, id: u64) {
        if let Some(entry) = self.world().connections.get_mut(&id) {
            entry.closed_by_client = true;
        }
    }

    /// Forgets a closed connection.
    pub(crate) fn unregister_connection(&self, id: u64) {
        self.world().connections.remove(&id);
    }

    /// Sends a node on one connection, if it is still open.
    pub(crate) fn send_to(&self, connection: u64, node: wacore_binary::Node) {
        if let Some(entry) = self.world().connections.get(&connection) {
            entry.send(node);
        }
    }

    /// Closes one connection, if it is still open.
    pub(crate) fn close(&self, connection: u64) {
        if let Some(entry) = self.world().connections.get(&connection) {
            let _ = entry.outbound.send(Outbound::Close);
        }
    }

    /// Records a message a client sent, for [`crate::WaMock::next_message`].
    pub(crate) fn record_received(&self, message: ReceivedMessage) {
        let _ = self.received_tx.send(message);
    }

    /// The queue of recorded messages.
    pub(crate) fn received(&self) -> &AsyncMutex<mpsc::UnboundedReceiver<ReceivedMessage>> {
        &self.received_rx
    }
}
