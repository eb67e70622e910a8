//! The mock's shared world: accounts and their linked devices, contacts,
//! restricted numbers and live connections.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use wacore_binary::{Jid, Node, Server};

use wacore_libsignal::protocol::IdentityKeyPair;

use crate::signal_store::SignalDevice;

/// A fake device shared between connection tasks and the test's API calls.
pub(crate) type SharedDevice = Arc<AsyncMutex<SignalDevice>>;

/// Something for a connection task to do.
pub(crate) enum Outbound {
    /// Encrypt and send a node.
    Node(Box<Node>),
    /// Drop the connection without a goodbye.
    Close,
}

/// Keys a linked device uploaded (`iq xmlns=encrypt type=set`).
#[derive(Clone)]
pub(crate) struct UploadedKeys {
    pub(crate) registration_id: u32,
    pub(crate) identity: [u8; 32],
    pub(crate) signed_pre_key_id: u32,
    pub(crate) signed_pre_key: [u8; 32],
    pub(crate) signed_pre_key_signature: Vec<u8>,
    pub(crate) one_time_pre_keys: VecDeque<(u32, [u8; 32])>,
}

/// A companion device linked to an account (a wagate session).
pub(crate) struct LinkedDevice {
    pub(crate) noise_key: [u8; 32],
    pub(crate) keys: Option<UploadedKeys>,
    /// Freshly paired: the phone still owes it the app-state key share.
    pub(crate) awaits_key_share: bool,
    /// Messages waiting for the device to come online.
    pub(crate) offline_queue: Vec<Node>,
}

/// A WhatsApp account whose phone linked one or more devices.
pub(crate) struct Account {
    pub(crate) phone: String,
    pub(crate) lid: String,
    pub(crate) primary: SharedDevice,
    /// The primary phone's identity, also its ADV account signing key.
    pub(crate) primary_identity: IdentityKeyPair,
    pub(crate) devices: BTreeMap<u16, LinkedDevice>,
}

/// A fake WhatsApp user the accounts talk to.
pub(crate) struct Contact {
    pub(crate) phone: String,
    pub(crate) lid: String,
    pub(crate) business: bool,
    pub(crate) device: SharedDevice,
}

/// A connection waiting for a QR scan.
pub(crate) struct PendingRegistration {
    pub(crate) refs: Vec<String>,
    pub(crate) noise_key: [u8; 32],
    pub(crate) identity_key: [u8; 32],
}

/// A pairing in flight: pair-success sent, pair-device-sign awaited.
pub(crate) struct PairingInFlight {
    pub(crate) request_id: String,
    pub(crate) phone: String,
    pub(crate) device: u16,
    pub(crate) noise_key: [u8; 32],
    pub(crate) done: oneshot::Sender<()>,
}

/// One live connection.
pub(crate) struct ConnectionEntry {
    pub(crate) outbound: mpsc::UnboundedSender<Outbound>,
    pub(crate) registration: Option<PendingRegistration>,
    pub(crate) pairing: Option<PairingInFlight>,
    /// `(phone, device)` once the connection logged in.
    pub(crate) session: Option<(String, u16)>,
    /// The client closed the socket; what it sent before is still being handled.
    pub(crate) closed_by_client: bool,
}

impl ConnectionEntry {
    /// Queues a node for this connection (ignored when it already closed).
    pub(crate) fn send(&self, node: Node) {
        let _ = self.outbound.send(Outbound::Node(Box::new(node)));
    }
}

/// Who a JID's user part belongs to.
pub(crate) enum Party<'a> {
    Account(&'a Account),
    Contact(&'a Contact),
}

/// Everything the mock knows.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) accounts: HashMap<String, Account>,
    pub(crate) contacts: HashMap<String, Contact>,
    /// LID user → phone number, for accounts and contacts alike.
    pub(crate) phone_by_lid: HashMap<String, String>,
    pub(crate) restricted: HashSet<String>,
    /// Accounts whose logins are refused, and with what `<failure>`.
    pub(crate) refusals: HashMap<String, LoginRefusal>,
    pub(crate) connections: HashMap<u64, ConnectionEntry>,
    /// Phones of devices that logged in while another connection of the same device was still
    /// logged in (WhatsApp would replace the older one, and may log the device out).
    pub(crate) overlapping_logins: Vec<String>,
}

/// Why the server refuses an account's logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginRefusal {
    /// `<failure reason="402" code expire>`: a temporary ban.
    Banned { code: u16, expire_secs: u64 },
    /// `<failure reason="405">`: the client's version is too old.
    Outdated,
}

impl World {
    /// The phone number a PN or LID JID refers to.
    pub(crate) fn phone_of(&self, jid: &Jid) -> Option<String> {
        match jid.server {
            Server::Lid => self.phone_by_lid.get(jid.user.as_str()).cloned(),
            Server::Pn => Some(jid.user.to_string()),
            _ => None,
        }
    }

    /// The account or contact a JID refers to.
    pub(crate) fn party(&self, jid: &Jid) -> Option<Party<'_>> {
        let phone = self.phone_of(jid)?;
        if let Some(account) = self.accounts.get(&phone) {
            return Some(Party::Account(account));
        }
        self.contacts.get(&phone).map(Party::Contact)
    }

    /// The LID user part of a phone number, when known.
    pub(crate) fn lid_of(&self, phone: &str) -> Option<String> {
        if let Some(account) = self.accounts.get(phone) {
            return Some(account.lid.clone());
        }
        self.contacts.get(phone).map(|contact| contact.lid.clone())
    }

    /// Live connections logged in as that device.
    pub(crate) fn connections_of(&self, phone: &str, device: u16) -> impl Iterator<Item = &ConnectionEntry> {
        self.connections
            .values()
            .filter(move |entry| entry.session.as_ref().is_some_and(|(p, d)| p == phone && *d == device))
    }

    /// The linked device a logged-in connection belongs to.
    pub(crate) fn device_mut(&mut self, phone: &str, device: u16) -> Option<&mut LinkedDevice> {
        self.accounts.get_mut(phone)?.devices.get_mut(&device)
    }
}
