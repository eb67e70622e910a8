//! A fake WhatsApp server and fake phones, at the protocol level, for
//! wagate's tests. Never part of a release build.
//!
//! [`WaMock`] listens on a loopback WebSocket and speaks the real protocol
//! to a real `whatsapp-rust` client (built with the
//! `danger-skip-cert-chain-verify` feature, since the mock signs no
//! certificates): Noise `XX`/`IK`/`XXfallback` handshakes, QR pairing with
//! a signed ADV identity and the 515 restart, login, the post-login IQs,
//! usync number checks and device lists, prekey uploads and fetches, and
//! Signal-encrypted messages both ways between linked devices and fake
//! contacts. On a test's command it also ends sessions the ways WhatsApp
//! does: a dropped connection, a logout (401), a stream replaced by another
//! client, a temporary ban (402) and an outdated client version (405).
//!
//! # Timing the client imposes
//! * A fresh pairing reaches `Connected` about half a second after the scan:
//!   the mock waits 300 ms before the 515 (sent at once, the client
//!   sometimes drops the next connection once), and its fake phone shares
//!   an app-state key right after the device uploads its prekeys, which
//!   spares the client's 10 s wait for that key.
//! * A restart from a kept store logs in over `IK` without a QR in ~0.1 s.
//! * `send_text` on the client returns before the server's ack: acceptance
//!   is `Event::ServerAck`; a restricted number answers with a nack only
//!   (`ServerAck.error == Some("463")`), nothing else.
//! * With `auto_receipts`, `delivered` follows the ack at once and `read`
//!   50 ms later; the client dispatches events on separate tasks, so
//!   `ServerAck`/`Receipt` events may still arrive in any order.
//! * Failed reconnect attempts emit no event; the client retries with
//!   backoff (1, 1, 2, 3, 5 … s), so a dropped connection is back after ~1 s.
//! * Inbound messages come from the contact's phone-number JID
//!   (`from=PN@s.whatsapp.net`, with `sender_lid`); messages to an offline
//!   device are queued and delivered after its next login.
//!
//! # Not simulated
//! * Phone-number pairing stops after stage one: the client's
//!   `companion_hello` is answered with a pairing ref, so it emits
//!   `Event::PairingCode`, but no phone confirms the code (`primary_hello`,
//!   `companion_finish` and the resulting `pair-success` are not exercised).
//! * Groups: `get_participating` answers an empty list; no group messages.
//! * App-state patches: every collection is empty at version 0.
//! * Media upload/download, presence, calls, history sync, retries of
//!   undecryptable messages.
//! * Accounts have no other companions in device lists (only device 0).
//! * State lives as long as the `WaMock`: a new mock (even with the same
//!   seed) knows no paired device, so stored clients get a 401.

mod connection;
mod hub;
mod keys;
mod messages;
mod nodes;
mod noise;
mod pairing;
mod phone;
mod prekeys;
mod router;
mod session;
mod signal_store;
mod state;
mod usync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::hub::Hub;
use crate::keys::seeded_key_pair;
use crate::noise::ServerIdentity;
use crate::session::{stream_error, stream_replaced};
use crate::state::{LoginRefusal, Outbound};

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Seed for the server's static key and the fake phones' keys.
    pub seed: [u8; 32],
    /// After acking a message to a contact, send `delivered`, then `read`
    /// 50 ms later (default `true`).
    pub auto_receipts: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self { seed: [7; 32], auto_receipts: true }
    }
}

/// The WhatsApp account whose phone scans a QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockAccount {
    /// Phone number, E.164 digits without `+` (e.g. `"15550001111"`).
    pub phone: String,
    /// LID user part, digits.
    pub lid: String,
    /// The name the account shows to others (becomes the client's push name).
    pub push_name: String,
}

/// A fake WhatsApp user registered with [`WaMock::add_contact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockContact {
    /// Phone number, E.164 digits.
    pub phone: String,
    /// LID user part, digits (derived from the seed and the phone number).
    pub lid: String,
    /// Whether number checks report it as a business.
    pub business: bool,
}

/// A message a linked device sent to a contact, as the contact read it.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The stanza's message id (as returned by the client's send call).
    pub id: String,
    /// The sending account's phone number.
    pub from: String,
    /// The recipient contact's phone number.
    pub to: String,
    /// The decrypted message.
    pub message: waproto::whatsapp::Message,
    /// Its text, for plain and extended text messages.
    pub text: Option<String>,
}

/// Why a mock operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    /// The string is not a WhatsApp QR payload.
    #[error("not a WhatsApp QR code")]
    InvalidQr,
    /// No connection is currently showing that QR code.
    #[error("no connection shows that QR code")]
    UnknownQr,
    /// The client did not answer the pairing in time.
    #[error("timed out")]
    Timeout,
    /// The client's connection closed during the operation.
    #[error("the connection closed")]
    Disconnected,
    /// No account with that phone number has been paired.
    #[error("unknown account")]
    UnknownAccount,
    /// No contact with that phone number was added.
    #[error("unknown contact")]
    UnknownContact,
    /// The account has no linked device that uploaded its keys yet.
    #[error("the account has no linked device with keys")]
    NotLinked,
    /// A Signal or signature operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
}

/// A running fake WhatsApp server; clone it freely (clones share state).
#[derive(Clone)]
pub struct WaMock {
    hub: Arc<Hub>,
    address: SocketAddr,
    _shutdown: Arc<ShutdownOnDrop>,
}

/// Stops accepting and closes every connection when the last `WaMock`
/// clone is dropped.
struct ShutdownOnDrop {
    acceptor: JoinHandle<()>,
    hub: Arc<Hub>,
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.acceptor.abort();
        for entry in self.hub.world().connections.values() {
            let _ = entry.outbound.send(Outbound::Close);
        }
    }
}

impl WaMock {
    /// Binds `127.0.0.1:0` and serves on the caller's tokio runtime.
    pub async fn start(config: MockConfig) -> std::io::Result<WaMock> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let server = ServerIdentity::new(seeded_key_pair(&config.seed, "server-static"));
        let hub = Arc::new(Hub::new(config, server));
        let acceptor_hub = Arc::clone(&hub);
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection::serve(Arc::clone(&acceptor_hub), stream));
            }
        });
        Ok(WaMock { hub: Arc::clone(&hub), address, _shutdown: Arc::new(ShutdownOnDrop { acceptor, hub }) })
    }

    /// The WebSocket URL for the client: `ws://127.0.0.1:PORT/ws/chat`.
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.address)
    }

    /// The phone of `account` scans a QR string the client showed: signs and
    /// sends `pair-success` to the connection holding that ref, and returns
    /// once the client signed back (the 515 restart follows 300 ms later).
    pub async fn scan(&self, qr: &str, account: &MockAccount) -> Result<(), MockError> {
        pairing::scan(&self.hub, qr, account).await
    }

    /// Registers a fake WhatsApp user with a LID and one device (id 0).
    pub fn add_contact(&self, phone: &str) -> MockContact {
        phone::add_contact(&self.hub, phone, false)
    }

    /// Registers a fake WhatsApp user that number checks report as a business.
    pub fn add_business_contact(&self, phone: &str) -> MockContact {
        phone::add_contact(&self.hub, phone, true)
    }

    /// Messages to this phone number get a nack with error 463.
    pub fn restrict(&self, phone: &str) {
        self.hub.world().restricted.insert(phone.to_owned());
    }

    /// The next message a client sent to a contact, decrypted by the
    /// contact's device; `None` after `timeout`.
    pub async fn next_message(&self, timeout: Duration) -> Option<ReceivedMessage> {
        let mut received = self.hub.received().lock().await;
        tokio::time::timeout(timeout, received.recv()).await.ok().flatten()
    }

    /// A contact sends a text to every linked device of an account
    /// (Signal-encrypted per device); returns the message id. Devices that
    /// are offline get it at their next login.
    pub async fn send_text(
        &self,
        from_contact: &str,
        to_account: &str,
        text: &str,
    ) -> Result<String, MockError> {
        phone::send_text(&self.hub, from_contact, to_account, text).await
    }

    /// Closes every live connection of that account abruptly (the client
    /// reconnects on its own), or every connection when `None`.
    pub fn drop_connections(&self, account: Option<&str>) {
        let world = self.hub.world();
        for entry in world.connections.values() {
            let belongs = match account {
                None => true,
                Some(phone) => {
                    entry.session.as_ref().is_some_and(|(session_phone, _)| session_phone == phone)
                }
            };
            if belongs {
                let _ = entry.outbound.send(Outbound::Close);
            }
        }
    }

    /// Server-side logout: `stream:error 401` to the account's connections,
    /// and its linked devices are forgotten (logging in again with the old
    /// credentials fails with 401).
    pub async fn logout(&self, account: &str) {
        let mut world = self.hub.world();
        if let Some(known) = world.accounts.get_mut(account) {
            known.devices.clear();
        }
        drop(world);
        self.end_sessions(account, stream_error(401));
    }

    /// Another client takes over the account's connection: `stream:error` with a
    /// `replaced` conflict, then the connection closes.
    pub fn replace_stream(&self, account: &str) {
        self.end_sessions(account, stream_replaced());
    }

    /// WhatsApp bans the account for a while: its connections close and its logins are
    /// refused with `<failure reason="402">` (`code` 101–106, `expire` in seconds).
    pub fn ban(&self, account: &str, code: u16, expire: Duration) {
        let refusal = LoginRefusal::Banned { code, expire_secs: expire.as_secs() };
        self.hub.world().refusals.insert(account.to_owned(), refusal);
        self.drop_connections(Some(account));
    }

    /// The server stops accepting the client's version: the account's connections close and
    /// its logins are refused with `<failure reason="405">`.
    pub fn outdate(&self, account: &str) {
        self.hub.world().refusals.insert(account.to_owned(), LoginRefusal::Outdated);
        self.drop_connections(Some(account));
    }

    fn end_sessions(&self, account: &str, last_word: wacore_binary::Node) {
        let mut world = self.hub.world();
        for entry in world.connections.values_mut() {
            if entry.session.as_ref().is_some_and(|(phone, _)| phone == account) {
                entry.session = None;
                entry.send(last_word.clone());
                let _ = entry.outbound.send(Outbound::Close);
            }
        }
    }

    /// Holds every new connection's handshake before the server's hello, so a client stays
    /// "connecting" until [`release_handshakes`](Self::release_handshakes).
    pub fn hold_handshakes(&self) {
        self.hub.handshakes_held.send_replace(true);
    }

    /// Lets held handshakes, and every later one, go on.
    pub fn release_handshakes(&self) {
        self.hub.handshakes_held.send_replace(false);
    }

    /// How many handshakes are held right now.
    pub fn held_handshakes(&self) -> usize {
        self.hub.waiting_handshakes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many connections completed the Noise handshake and are still open
    /// (logged in, waiting for a QR scan, or being refused).
    pub fn connection_count(&self) -> usize {
        self.hub.world().connections.len()
    }

    /// Phones of devices that logged in while another connection of the same device was still
    /// logged in, one entry per such login.
    pub fn overlapping_logins(&self) -> Vec<String> {
        self.hub.world().overlapping_logins.clone()
    }

    /// Phone numbers of accounts with a logged-in connection, sorted.
    pub fn online_accounts(&self) -> Vec<String> {
        let world = self.hub.world();
        let mut phones: Vec<String> = world
            .connections
            .values()
            .filter_map(|entry| entry.session.as_ref().map(|(phone, _)| phone.clone()))
            .collect();
        phones.sort();
        phones.dedup();
        phones
    }
}
