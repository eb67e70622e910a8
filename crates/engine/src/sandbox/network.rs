//! The shared simulated network: which sandbox sessions are online, and every number's inbox.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use wagate_core::{Phone, SessionId};

use super::SandboxConfig;
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
}

pub struct SandboxNetwork {
    pub(super) config: SandboxConfig,
    state: Mutex<NetworkState>,
    /// Append-only log of deliveries (JSON lines), when the network keeps state on disk.
    journal: Option<Mutex<std::fs::File>>,
    /// Number → a count of its deliveries, while someone waits for one (a waiter is woken by
    /// deliveries to its number only).
    waiting: Mutex<HashMap<String, watch::Sender<u64>>>,
}

#[derive(Default)]
struct NetworkState {
    sessions: HashMap<SessionId, mpsc::UnboundedSender<Command>>,
    /// Phone (E.164) → the connected session linked to it.
    online: HashMap<String, SessionId>,
    inboxes: Inboxes,
    groups: HashMap<String, SandboxGroup>,
}

/// The most recent deliveries, per number; beyond the capacity the oldest are forgotten (a
/// test network need not keep everything, and the gateway's own memory use stays measurable).
#[derive(Default)]
struct Inboxes {
    by_phone: HashMap<String, VecDeque<InboxEntry>>,
    /// The number of every kept delivery, oldest first.
    order: VecDeque<String>,
    capacity: usize,
}

impl Inboxes {
    fn new(capacity: usize) -> Self {
        Inboxes { capacity: capacity.max(1), ..Inboxes::default() }
    }

    fn contains(&self, phone: &str, id: &str) -> bool {
        self.by_phone.get(phone).is_some_and(|inbox| inbox.iter().any(|m| m.id == id))
    }

    fn push(&mut self, entry: InboxEntry) {
        self.order.push_back(entry.to.clone());
        self.by_phone.entry(entry.to.clone()).or_default().push_back(entry);
        while self.order.len() > self.capacity {
            let Some(phone) = self.order.pop_front() else { break };
            if let Some(inbox) = self.by_phone.get_mut(&phone) {
                inbox.pop_front();
                if inbox.is_empty() {
                    self.by_phone.remove(&phone);
                }
            }
        }
    }

    fn get(&self, phone: &str) -> Vec<InboxEntry> {
        self.by_phone.get(phone).map(|inbox| inbox.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every kept delivery, oldest first.
    fn all(&self) -> Vec<&InboxEntry> {
        let mut next: HashMap<&str, usize> = HashMap::new();
        self.order
            .iter()
            .filter_map(|phone| {
                let n = next.entry(phone.as_str()).or_default();
                *n += 1;
                self.by_phone.get(phone).and_then(|inbox| inbox.get(*n - 1))
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub(super) struct SandboxGroup {
    pub subject: String,
    /// E.164 numbers; the first one created the group and is its super admin.
    pub members: Vec<String>,
}

impl SandboxNetwork {
    pub(super) fn new(config: SandboxConfig) -> Self {
        let mut state =
            NetworkState { inboxes: Inboxes::new(config.inbox_capacity), ..NetworkState::default() };
        let journal = config.state_dir.as_ref().and_then(|dir| match open_journal(dir, &mut state) {
            Ok(file) => Some(Mutex::new(file)),
            Err(err) => {
                tracing::error!(error = %err, "sandbox: cannot keep network state on disk; keeping it in memory");
                None
            }
        });
        SandboxNetwork { config, state: Mutex::new(state), journal, waiting: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, NetworkState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn register(&self, id: &SessionId, commands: mpsc::UnboundedSender<Command>) {
        self.state().sessions.insert(id.clone(), commands);
    }

    /// Forgets a stopped session, unless a newer connection took its place.
    pub(super) fn unregister(&self, id: &SessionId, commands: &mpsc::UnboundedSender<Command>) {
        let mut state = self.state();
        if state.sessions.get(id).is_some_and(|current| current.same_channel(commands)) {
            state.sessions.remove(id);
        }
        state.online.retain(|_, session| session != id);
    }

    pub(super) fn set_online(&self, id: &SessionId, account: &Account) {
        self.state().online.insert(account.phone.e164().to_owned(), id.clone());
    }

    /// Puts a message into the recipient's inbox and, when the recipient is itself a connected
    /// sandbox session, hands it over as an inbound message. Like WhatsApp, a message id that
    /// already reached this recipient is not delivered twice.
    pub(super) fn deliver(&self, entry: InboxEntry, inbound: InboundMessage) {
        let mut state = self.state();
        if state.inboxes.contains(&entry.to, &entry.id) {
            return;
        }
        if let Some(session) = state.online.get(&entry.to)
            && let Some(commands) = state.sessions.get(session)
        {
            let _ = commands.send(Command::Receive(inbound));
        }
        if let Some(journal) = &self.journal {
            use std::io::Write;
            let line = serde_json::to_string(&entry).expect("entries serialize");
            let mut file = journal.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = writeln!(file, "{line}") {
                tracing::error!(error = %err, "sandbox: cannot record a delivery");
            }
        }
        let to = entry.to.clone();
        state.inboxes.push(entry);
        drop(state);
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(signal) = waiting.get(&to) {
            if signal.receiver_count() == 0 {
                waiting.remove(&to);
            } else {
                signal.send_modify(|n| *n += 1);
            }
        }
    }

    pub(super) fn group(&self, jid: &str) -> Option<SandboxGroup> {
        self.state().groups.get(jid).cloned()
    }

    pub(super) fn groups_of(&self, phone: &str) -> Vec<(String, SandboxGroup)> {
        let state = self.state();
        let mut groups: Vec<_> = state
            .groups
            .iter()
            .filter(|(_, g)| g.members.iter().any(|m| m == phone))
            .map(|(jid, g)| (jid.clone(), g.clone()))
            .collect();
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups
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
        self.state().groups.insert(jid.clone(), SandboxGroup { subject, members: all });
        Ok(jid)
    }

    fn commands(&self, id: &SessionId) -> Result<mpsc::UnboundedSender<Command>, SandboxError> {
        self.state().sessions.get(id).cloned().ok_or(SandboxError::NotOpen)
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

    /// What was sent to `phone`, oldest first.
    pub fn inbox(&self, phone: &Phone) -> Vec<InboxEntry> {
        self.state().inboxes.get(phone.e164())
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

/// Opens the delivery journal and replays it into `state`. A journal that holds more than the
/// kept deliveries is rewritten with just those, so it stays as small as the memory.
fn open_journal(dir: &std::path::Path, state: &mut NetworkState) -> std::io::Result<std::fs::File> {
    use std::io::{BufRead, Write};
    std::fs::create_dir_all(dir)?;
    let path = dir.join("sandbox-deliveries.jsonl");
    let mut lines = 0;
    if let Ok(file) = std::fs::File::open(&path) {
        for line in std::io::BufReader::new(file).lines() {
            lines += 1;
            // A torn last line (a crash mid-write) is skipped.
            if let Ok(entry) = serde_json::from_str::<InboxEntry>(&line?) {
                state.inboxes.push(entry);
            }
        }
    }
    if lines > state.inboxes.order.len() {
        let compacted = dir.join("sandbox-deliveries.jsonl.new");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&compacted)?);
        for entry in state.inboxes.all() {
            writeln!(file, "{}", serde_json::to_string(entry).expect("entries serialize"))?;
        }
        file.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&compacted, &path)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}
