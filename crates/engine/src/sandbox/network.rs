//! The simulated network: which sandbox sessions are online here, and (through its ledger)
//! every number's inbox and every group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use wagate_core::{Phone, SessionId};

use super::SandboxConfig;
use super::ledger::{Cursor, Delivery, MemoryLedger, SandboxGroup, SharedLedger};
use super::session::Command;
use crate::{Account, InboundMessage, MessageContent};

/// A message the sandbox delivered to a phone number.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct InboxEntry {
    pub id: String,
    /// The sending account's number (E.164).
    pub from: String,
    pub session_id: String,
    /// E.164.
    pub to: String,
    /// The group it was sent to, for group messages.
    pub group: Option<String>,
    /// Size of the media that came with it, in bytes.
    pub media_size: Option<usize>,
    pub content: MessageContent,
    /// Unix milliseconds.
    pub received_at: i64,
}

/// Why a sandbox test action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("the session is not open on the sandbox (connect it first)")]
    NotOpen,
    #[error("the session is not showing a QR code")]
    NoQr,
    #[error("that QR code is no longer valid")]
    QrMismatch,
    #[error("the session is not waiting for a pairing code")]
    NotPairing,
    #[error("wrong pairing code")]
    WrongPairCode,
    #[error("the session is not connected")]
    NotConnected,
    #[error("the gateway could not store the message (it would be delivered again)")]
    NotStored,
    #[error("the simulated network cannot reach its database: {0}")]
    Unavailable(String),
}

/// How often a node looks for deliveries other nodes recorded in a shared ledger.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How many deliveries between two trims of a shared ledger (about).
const TRIM_EVERY: u64 = 1_000;

pub struct SandboxNetwork {
    pub(super) config: SandboxConfig,
    live: Mutex<Live>,
    ledger: Ledger,
    /// Number → a count of its deliveries, while someone waits for one (a waiter is woken by
    /// deliveries to its number only).
    waiting: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// The sessions this process runs.
#[derive(Default)]
struct Live {
    sessions: HashMap<SessionId, mpsc::UnboundedSender<Command>>,
    /// Phone (E.164) → the connected session linked to it.
    online: HashMap<String, SessionId>,
}

enum Ledger {
    Memory(Mutex<MemoryLedger>),
    /// Deliveries reach this process's sessions and waiters through [`follow`] only, wherever
    /// they were sent from.
    Shared(Arc<dyn SharedLedger>),
}

impl SandboxNetwork {
    pub(super) fn new(config: SandboxConfig) -> Self {
        let ledger = MemoryLedger::new(config.inbox_capacity, config.state_dir.as_deref());
        Self::with(config, Ledger::Memory(Mutex::new(ledger)))
    }

    /// A network whose memory is `ledger`, shared with other nodes. Starts following it (call
    /// within a Tokio runtime).
    pub(super) fn shared(config: SandboxConfig, ledger: Arc<dyn SharedLedger>) -> Arc<Self> {
        let network = Arc::new(Self::with(config, Ledger::Shared(ledger.clone())));
        tokio::spawn(follow(Arc::downgrade(&network), ledger));
        network
    }

    fn with(config: SandboxConfig, ledger: Ledger) -> Self {
        SandboxNetwork { config, live: Mutex::default(), ledger, waiting: Mutex::default() }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn register(&self, id: &SessionId, commands: mpsc::UnboundedSender<Command>) {
        self.live().sessions.insert(id.clone(), commands);
    }

    /// Forgets a stopped session, unless a newer connection took its place.
    pub(super) fn unregister(&self, id: &SessionId, commands: &mpsc::UnboundedSender<Command>) {
        let mut live = self.live();
        if live.sessions.get(id).is_some_and(|current| current.same_channel(commands)) {
            live.sessions.remove(id);
        }
        live.online.retain(|_, session| session != id);
    }

    pub(super) fn set_online(&self, id: &SessionId, account: &Account) {
        self.live().online.insert(account.phone.e164().to_owned(), id.clone());
    }

    /// Puts a message into the recipient's inbox and, when the recipient is itself a connected
    /// sandbox session, hands it over as an inbound message. Like WhatsApp, a message id that
    /// already reached this recipient is not delivered twice.
    pub(super) async fn deliver(&self, delivery: Delivery) -> Result<(), SandboxError> {
        match &self.ledger {
            Ledger::Memory(ledger) => {
                let recorded =
                    ledger.lock().unwrap_or_else(|p| p.into_inner()).record(delivery.entry.clone());
                if recorded {
                    self.arrived(&delivery);
                }
                Ok(())
            }
            Ledger::Shared(ledger) => {
                ledger.record(&delivery).await.map_err(|err| SandboxError::Unavailable(err.0))?;
                Ok(())
            }
        }
    }

    /// A new delivery: to the recipient's session if it runs here, and to whoever waits.
    fn arrived(&self, delivery: &Delivery) {
        let to = &delivery.entry.to;
        {
            let live = self.live();
            if let Some(session) = live.online.get(to)
                && let Some(commands) = live.sessions.get(session)
                && let Some(inbound) = delivery.inbound()
            {
                let _ = commands.send(Command::Receive(inbound));
            }
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(signal) = waiting.get(to) {
            if signal.receiver_count() == 0 {
                waiting.remove(to);
            } else {
                signal.send_modify(|n| *n += 1);
            }
        }
    }

    pub(super) async fn group(&self, jid: &str) -> Result<Option<SandboxGroup>, SandboxError> {
        match &self.ledger {
            Ledger::Memory(ledger) => {
                Ok(ledger.lock().unwrap_or_else(|p| p.into_inner()).groups.get(jid).cloned())
            }
            Ledger::Shared(ledger) => ledger.group(jid).await.map_err(|err| SandboxError::Unavailable(err.0)),
        }
    }

    pub(super) async fn groups_of(&self, phone: &str) -> Result<Vec<(String, SandboxGroup)>, SandboxError> {
        let all = match &self.ledger {
            Ledger::Memory(ledger) => ledger
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .groups
                .iter()
                .map(|(jid, group)| (jid.clone(), group.clone()))
                .collect(),
            Ledger::Shared(ledger) => {
                ledger.groups().await.map_err(|err| SandboxError::Unavailable(err.0))?
            }
        };
        let mut groups: Vec<_> =
            all.into_iter().filter(|(_, g)| g.members.iter().any(|m| m == phone)).collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(groups)
    }

    /// Creates a group of the session's account and `members`; returns its JID.
    pub async fn create_group(
        &self,
        id: &SessionId,
        subject: String,
        members: Vec<Phone>,
    ) -> Result<String, SandboxError> {
        let owner = self.ask(id, |reply| Command::Whoami { reply }).await?;
        let jid = format!("120363{:012}@g.us", rand::random::<u64>() % 1_000_000_000_000);
        let owner = owner.phone.e164().to_owned();
        let mut all = vec![owner.clone()];
        all.extend(members.iter().map(|m| m.e164().to_owned()).filter(|m| *m != owner));
        let group = SandboxGroup { subject, members: all };
        match &self.ledger {
            Ledger::Memory(ledger) => {
                ledger.lock().unwrap_or_else(|p| p.into_inner()).groups.insert(jid.clone(), group);
            }
            Ledger::Shared(ledger) => {
                ledger.put_group(&jid, &group).await.map_err(|err| SandboxError::Unavailable(err.0))?
            }
        }
        Ok(jid)
    }

    fn commands(&self, id: &SessionId) -> Result<mpsc::UnboundedSender<Command>, SandboxError> {
        self.live().sessions.get(id).cloned().ok_or(SandboxError::NotOpen)
    }

    async fn ask<T>(
        &self,
        id: &SessionId,
        command: impl FnOnce(oneshot::Sender<Result<T, SandboxError>>) -> Command,
    ) -> Result<T, SandboxError> {
        let (reply, answer) = oneshot::channel();
        self.commands(id)?.send(command(reply)).map_err(|_| SandboxError::NotOpen)?;
        answer.await.map_err(|_| SandboxError::NotOpen)?
    }

    /// Scans the session's current QR code with the phone `phone`. With `qr`, only that exact
    /// code is accepted (as a camera would read it).
    pub async fn scan(
        &self,
        id: &SessionId,
        phone: Phone,
        push_name: Option<String>,
        qr: Option<String>,
    ) -> Result<Account, SandboxError> {
        self.ask(id, |reply| Command::Scan { phone, push_name, qr, reply }).await
    }

    /// Types the pairing code on the phone.
    pub async fn confirm_pair_code(&self, id: &SessionId, code: &str) -> Result<Account, SandboxError> {
        let code = super::codes::normalize_pair_code(code);
        self.ask(id, |reply| Command::ConfirmPairCode { code, reply }).await
    }

    /// Makes `from` send a text to the session's account.
    pub async fn inject(
        &self,
        id: &SessionId,
        from: Phone,
        text: String,
        push_name: Option<String>,
    ) -> Result<InboundMessage, SandboxError> {
        self.ask(id, |reply| Command::Inject { from, text, push_name, reply }).await
    }

    /// The phone removes the session's linked device: the session is logged out.
    pub async fn unlink(&self, id: &SessionId) -> Result<(), SandboxError> {
        self.ask(id, |reply| Command::Unlink { reply }).await
    }

    /// WhatsApp bans the session's account for `duration`; it reconnects by itself afterwards.
    pub async fn ban(&self, id: &SessionId, duration: std::time::Duration) -> Result<(), SandboxError> {
        self.ask(id, |reply| Command::Ban { duration, reply }).await
    }

    /// What was sent to `phone`, oldest first.
    pub async fn inbox(&self, phone: &Phone) -> Result<Vec<InboxEntry>, SandboxError> {
        match &self.ledger {
            Ledger::Memory(ledger) => {
                Ok(ledger.lock().unwrap_or_else(|p| p.into_inner()).inbox(phone.e164()))
            }
            Ledger::Shared(ledger) => {
                ledger.inbox(phone.e164()).await.map_err(|err| SandboxError::Unavailable(err.0))
            }
        }
    }

    /// Changes with every delivery to `phone`: subscribe, read the inbox, then wait on it for
    /// new entries.
    pub fn deliveries_to(&self, phone: &Phone) -> watch::Receiver<u64> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.len() >= 64 && waiting.len().is_power_of_two() {
            waiting.retain(|_, signal| signal.receiver_count() > 0);
        }
        waiting.entry(phone.e164().to_owned()).or_insert_with(|| watch::Sender::new(0)).subscribe()
    }
}

/// Hands the deliveries recorded in the shared ledger (by any node) to the sessions this node
/// runs and to its waiters, and keeps the ledger to the configured size; ends with the network.
async fn follow(network: Weak<SandboxNetwork>, ledger: Arc<dyn SharedLedger>) {
    let mut cursor = loop {
        match ledger.latest().await {
            Ok(latest) => break Cursor::at(latest),
            Err(err) => tracing::warn!(error = %err, "sandbox: cannot read the shared network; trying again"),
        }
        tokio::time::sleep(FOLLOW_EVERY * 10).await;
        if network.strong_count() == 0 {
            return;
        }
    };
    let mut since_trim = 0;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let Some(network) = network.upgrade() else { return };
        let deliveries = match ledger.since(cursor.from(), 1_000).await {
            Ok(deliveries) => deliveries,
            Err(err) => {
                tracing::debug!(error = %err, "sandbox: cannot read new deliveries");
                continue;
            }
        };
        for (seq, delivery) in deliveries {
            if cursor.admit(seq) {
                network.arrived(&delivery);
                since_trim += 1;
            }
        }
        cursor.settle(std::time::Instant::now());
        if since_trim >= TRIM_EVERY {
            since_trim = 0;
            if let Err(err) = ledger.keep_latest(network.config.inbox_capacity).await {
                tracing::debug!(error = %err, "sandbox: cannot trim the shared network");
            }
        }
    }
}
