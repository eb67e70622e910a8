//! The shared simulated network: which sandbox sessions are online, and every number's inbox.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Log of deliveries (JSON lines), when the network keeps state on disk.
    journal: Option<Mutex<Journal>>,
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
        let journal = config.state_dir.as_ref().and_then(|dir| match Journal::open(dir, &mut state.inboxes) {
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
        let to = entry.to.clone();
        if let Some(journal) = &self.journal {
            let mut journal = journal.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(err) = journal.append(&entry, &state.inboxes) {
                tracing::error!(error = %err, "sandbox: cannot record a delivery");
            }
        }
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

    /// The phone removes the session's linked device: the session is logged out.
    pub async fn unlink(&self, id: &SessionId) -> Result<(), SandboxError> {
        self.ask(id, |reply| Command::Unlink { reply }).await
    }

    /// WhatsApp bans the session's account for `duration`; it reconnects by itself afterwards.
    pub async fn ban(&self, id: &SessionId, duration: std::time::Duration) -> Result<(), SandboxError> {
        self.ask(id, |reply| Command::Ban { duration, reply }).await
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

/// The deliveries on disk, one JSON line each. It holds the kept deliveries plus those
/// appended since it was last rewritten; once it holds twice as many lines as the network
/// keeps, it is rewritten with the kept ones, so the file stays within twice the memory's
/// size however long the network runs, at the cost of one rewrite per `capacity` deliveries.
struct Journal {
    path: PathBuf,
    file: std::fs::File,
    lines: usize,
}

impl Journal {
    /// Opens the journal in `dir` and replays it into `inboxes`; a journal that holds more
    /// than the kept deliveries is rewritten with just those.
    fn open(dir: &Path, inboxes: &mut Inboxes) -> std::io::Result<Journal> {
        use std::io::BufRead;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("sandbox-deliveries.jsonl");
        let mut lines = 0;
        if let Ok(file) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(file).lines() {
                lines += 1;
                // A torn last line (a crash mid-write) is skipped.
                if let Ok(entry) = serde_json::from_str::<InboxEntry>(&line?) {
                    inboxes.push(entry);
                }
            }
        }
        let file = Self::append_to(&path)?;
        let mut journal = Journal { path, file, lines };
        if lines > inboxes.order.len() {
            journal.rewrite(inboxes)?;
        }
        Ok(journal)
    }

    fn append_to(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).append(true).open(path)
    }

    /// Records `entry`, about to join `inboxes`.
    fn append(&mut self, entry: &InboxEntry, inboxes: &Inboxes) -> std::io::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(entry).expect("entries serialize"))?;
        self.lines += 1;
        if self.lines > 2 * inboxes.capacity {
            // What the inboxes will keep once `entry` joined them: it, and all but the oldest.
            let kept = inboxes.all();
            let skip = (kept.len() + 1).saturating_sub(inboxes.capacity);
            self.write_all(kept.into_iter().skip(skip).chain(std::iter::once(entry)))?;
        }
        Ok(())
    }

    /// Replaces the file with the deliveries `inboxes` keep.
    fn rewrite(&mut self, inboxes: &Inboxes) -> std::io::Result<()> {
        self.write_all(inboxes.all().into_iter())
    }

    fn write_all<'a>(&mut self, entries: impl Iterator<Item = &'a InboxEntry>) -> std::io::Result<()> {
        let fresh = self.path.with_extension("jsonl.new");
        let mut file = std::io::BufWriter::new(std::fs::File::create(&fresh)?);
        let mut lines = 0;
        for entry in entries {
            writeln!(file, "{}", serde_json::to_string(entry).expect("entries serialize"))?;
            lines += 1;
        }
        file.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
        std::fs::rename(&fresh, &self.path)?;
        self.file = Self::append_to(&self.path)?;
        self.lines = lines;
        Ok(())
    }
}
