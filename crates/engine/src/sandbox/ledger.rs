//! What the simulated network remembers beyond its sessions: every delivery (the inboxes) and
//! the groups. One process keeps them itself ([`MemoryLedger`], with a journal on disk); nodes
//! sharing a database keep them there, through a [`SharedLedger`] the gateway provides, so a
//! session on one node messages a session on another and any node shows every inbox.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use wagate_core::Phone;

use super::network::InboxEntry;
use crate::InboundMessage;

/// One message reaching one number, with what its recipient's session is shown of the sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub entry: InboxEntry,
    pub from_lid: Option<String>,
    pub push_name: Option<String>,
}

impl Delivery {
    /// The message as the recipient's session receives it.
    pub(super) fn inbound(&self) -> Option<InboundMessage> {
        let entry = &self.entry;
        let from = Phone::parse(&entry.from, None).ok()?;
        Some(InboundMessage {
            id: entry.id.clone(),
            chat: entry.group.clone().unwrap_or_else(|| from.jid()),
            from,
            from_lid: self.from_lid.clone(),
            push_name: self.push_name.clone(),
            content: entry.content.clone(),
            quoted_id: None,
            timestamp: entry.received_at,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxGroup {
    pub subject: String,
    /// E.164 numbers; the first one created the group and is its super admin.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("sandbox network: {0}")]
pub struct LedgerError(pub String);

/// The network's memory in a database that several nodes share.
#[async_trait]
pub trait SharedLedger: Send + Sync {
    /// Records a delivery; `false` when this message id already reached this number.
    async fn record(&self, delivery: &Delivery) -> Result<bool, LedgerError>;

    /// The kept deliveries to `phone` (E.164), oldest first.
    async fn inbox(&self, phone: &str) -> Result<Vec<InboxEntry>, LedgerError>;

    /// Deliveries recorded after `cursor`, in recording order, at most `limit`, each with its
    /// own cursor. Cursors grow, but one recorded later may show up before an earlier one
    /// (transactions commit in any order), and some are never used.
    async fn since(&self, cursor: i64, limit: usize) -> Result<Vec<(i64, Delivery)>, LedgerError>;

    /// The greatest cursor so far (0 when nothing was recorded).
    async fn latest(&self) -> Result<i64, LedgerError>;

    /// Forgets all but the latest `keep` deliveries.
    async fn keep_latest(&self, keep: usize) -> Result<(), LedgerError>;

    async fn put_group(&self, jid: &str, group: &SandboxGroup) -> Result<(), LedgerError>;

    async fn group(&self, jid: &str) -> Result<Option<SandboxGroup>, LedgerError>;

    /// Every group, by JID.
    async fn groups(&self) -> Result<Vec<(String, SandboxGroup)>, LedgerError>;
}

/// The network's memory in this process: the most recent deliveries per number (beyond the
/// capacity the oldest are forgotten: a test network need not keep everything, and the
/// gateway's memory use stays measurable), the groups, and a journal of the deliveries on
/// disk, when configured, so inboxes survive a restart.
pub(super) struct MemoryLedger {
    by_phone: HashMap<String, VecDeque<InboxEntry>>,
    /// The number of every kept delivery, oldest first.
    order: VecDeque<String>,
    capacity: usize,
    pub(super) groups: HashMap<String, SandboxGroup>,
    journal: Option<Journal>,
}

impl MemoryLedger {
    pub(super) fn new(capacity: usize, state_dir: Option<&Path>) -> Self {
        let mut ledger = MemoryLedger {
            by_phone: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            groups: HashMap::new(),
            journal: None,
        };
        ledger.journal = state_dir.and_then(|dir| match Journal::open(dir, &mut ledger) {
            Ok(journal) => Some(journal),
            Err(err) => {
                tracing::error!(error = %err, "sandbox: cannot keep network state on disk; keeping it in memory");
                None
            }
        });
        ledger
    }

    /// Records a delivery; `false` when this message id already reached this number.
    pub(super) fn record(&mut self, entry: InboxEntry) -> bool {
        if self.contains(&entry.to, &entry.id) {
            return false;
        }
        if let Some(mut journal) = self.journal.take() {
            if let Err(err) = journal.append(&entry, self) {
                tracing::error!(error = %err, "sandbox: cannot record a delivery");
            }
            self.journal = Some(journal);
        }
        self.push(entry);
        true
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

    pub(super) fn inbox(&self, phone: &str) -> Vec<InboxEntry> {
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
    /// Opens the journal in `dir` and replays it into `ledger`; a journal that holds more
    /// than the kept deliveries is rewritten with just those.
    fn open(dir: &Path, ledger: &mut MemoryLedger) -> std::io::Result<Journal> {
        use std::io::BufRead;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("sandbox-deliveries.jsonl");
        let mut lines = 0;
        if let Ok(file) = std::fs::File::open(&path) {
            for line in std::io::BufReader::new(file).lines() {
                lines += 1;
                // A torn last line (a crash mid-write) is skipped.
                if let Ok(entry) = serde_json::from_str::<InboxEntry>(&line?) {
                    ledger.push(entry);
                }
            }
        }
        let file = Self::append_to(&path)?;
        let mut journal = Journal { path, file, lines };
        if lines > ledger.order.len() {
            journal.write_all(ledger.all().into_iter())?;
        }
        Ok(journal)
    }

    fn append_to(path: &Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).append(true).open(path)
    }

    /// Records `entry`, about to join `ledger`.
    fn append(&mut self, entry: &InboxEntry, ledger: &MemoryLedger) -> std::io::Result<()> {
        writeln!(self.file, "{}", serde_json::to_string(entry).expect("entries serialize"))?;
        self.lines += 1;
        if self.lines > 2 * ledger.capacity {
            // What the ledger will keep once `entry` joined it: it, and all but the oldest.
            let kept = ledger.all();
            let skip = (kept.len() + 1).saturating_sub(ledger.capacity);
            self.write_all(kept.into_iter().skip(skip).chain(std::iter::once(entry)))?;
        }
        Ok(())
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

/// Where a node is in the shared ledger's deliveries: every cursor up to `settled` was seen,
/// and those in `seen` beyond it. A missing cursor is waited for [`GAP_WAIT`] (a delivery
/// still being committed), then given up (one that failed, or a duplicate refused).
pub(super) struct Cursor {
    settled: i64,
    seen: std::collections::BTreeSet<i64>,
    gap_since: Option<std::time::Instant>,
}

pub(super) const GAP_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Cursor {
    pub(super) fn at(latest: i64) -> Self {
        Cursor { settled: latest, seen: Default::default(), gap_since: None }
    }

    /// Where to read from.
    pub(super) fn from(&self) -> i64 {
        self.settled
    }

    /// Whether `seq` is new (and from now on seen).
    pub(super) fn admit(&mut self, seq: i64) -> bool {
        seq > self.settled && self.seen.insert(seq)
    }

    /// Moves past what was seen without a gap, and past a gap older than [`GAP_WAIT`].
    pub(super) fn settle(&mut self, now: std::time::Instant) {
        loop {
            while self.seen.remove(&(self.settled + 1)) {
                self.settled += 1;
                self.gap_since = None;
            }
            let Some(&next) = self.seen.first() else {
                self.gap_since = None;
                return;
            };
            match self.gap_since {
                None => {
                    self.gap_since = Some(now);
                    return;
                }
                Some(since) if now.duration_since(since) < GAP_WAIT => return,
                Some(_) => {
                    self.settled = next - 1;
                    self.gap_since = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_cursor_waits_for_a_gap_then_moves_past_it() {
        let start = Instant::now();
        let mut cursor = Cursor::at(10);
        assert!(!cursor.admit(10), "seen before");
        assert!(cursor.admit(11) && cursor.admit(13));
        assert!(!cursor.admit(13), "once");
        cursor.settle(start);
        assert_eq!(cursor.from(), 11, "12 may still be committing");
        assert!(cursor.admit(12), "a late one is still taken");
        cursor.settle(start);
        assert_eq!(cursor.from(), 13);
        assert!(cursor.admit(15));
        cursor.settle(start);
        cursor.settle(start + GAP_WAIT / 2);
        assert_eq!(cursor.from(), 13);
        cursor.settle(start + GAP_WAIT + Duration::from_millis(1));
        assert_eq!(cursor.from(), 15, "14 is given up");
        assert!(!cursor.admit(14));
    }
}
