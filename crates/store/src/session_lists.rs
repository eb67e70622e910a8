//! Each owner's sessions, and each session, as last read. Every message sent names its session
//! or pool, and every code routed to "any of my sessions" needs the owner's list; reading them
//! from the database each time cost a round trip per request.
//!
//! Exact within the process: every write to the sessions table goes through [`Store`] and
//! clears the lists. Such a write also raises [`CacheTopic::Sessions`](crate::CacheTopic), so
//! nodes sharing the database clear theirs through [`Store::forget_session_lists`] when they
//! see it move; [`FRESH_FOR`] only bounds how long a list lives should that signal be missed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wagate_core::SessionId;

use crate::{Result, SessionRecord, Store};

const FRESH_FOR: Duration = Duration::from_secs(30);
/// Owners remembered at most (the map is emptied when it grows past this).
const MAX_OWNERS: usize = 10_000;
/// Sessions remembered at most by id (emptied the same way).
const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
pub(crate) struct SessionLists {
    /// Bumped after every write, so that a read which overlapped a write is not kept.
    generation: AtomicU64,
    lists: Mutex<HashMap<String, (Instant, Vec<SessionRecord>)>>,
    /// Sessions by id, under the same rules (emptied with the lists).
    records: Mutex<HashMap<String, (Instant, SessionRecord)>>,
}

impl SessionLists {
    fn lists(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<SessionRecord>)>> {
        self.lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, owner_id: &str) -> Option<Vec<SessionRecord>> {
        let lists = self.lists();
        let (read_at, sessions) = lists.get(owner_id)?;
        (read_at.elapsed() < FRESH_FOR).then(|| sessions.clone())
    }

    fn keep(&self, owner_id: &str, read_at: Instant, generation: u64, sessions: &[SessionRecord]) {
        let mut lists = self.lists();
        // Checked under the lock: a write that lands after this check clears what is kept here.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if lists.len() >= MAX_OWNERS {
            lists.clear();
        }
        lists.insert(owner_id.to_owned(), (read_at, sessions.to_vec()));
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, SessionRecord)>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh_record(&self, id: &str) -> Option<SessionRecord> {
        let records = self.records();
        let (read_at, record) = records.get(id)?;
        (read_at.elapsed() < FRESH_FOR).then(|| record.clone())
    }

    fn keep_record(&self, read_at: Instant, generation: u64, record: &SessionRecord) {
        let mut records = self.records();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if records.len() >= MAX_SESSIONS {
            records.clear();
        }
        records.insert(record.id.to_string(), (read_at, record.clone()));
    }

    /// Called after every write to the sessions table.
    pub(crate) fn forget(&self) {
        let mut lists = self.lists();
        let mut records = self.records();
        self.generation.fetch_add(1, Ordering::AcqRel);
        lists.clear();
        records.clear();
    }
}

impl Store {
    /// Drops every owner's list (another node changed the sessions table).
    pub fn forget_session_lists(&self) {
        self.session_lists.forget();
    }

    /// The owner's sessions, oldest first, as last read (see the module's
    /// documentation). For routing; pages that show sessions read them with [`Store::sessions`].
    pub async fn owner_sessions(&self, owner_id: &str) -> Result<Vec<SessionRecord>> {
        if let Some(sessions) = self.session_lists.fresh(owner_id) {
            return Ok(sessions);
        }
        let generation = self.session_lists.generation.load(Ordering::Acquire);
        let read_at = Instant::now();
        let sessions = self.sessions(Some(owner_id)).await?;
        self.session_lists.keep(owner_id, read_at, generation, &sessions);
        Ok(sessions)
    }

    /// The session, as last read (see the module's documentation). For sending; pages that
    /// show a session read it with [`Store::session`].
    pub async fn session_as_last_read(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        if let Some(record) = self.session_lists.fresh_record(id.as_str()) {
            return Ok(Some(record));
        }
        let generation = self.session_lists.generation.load(Ordering::Acquire);
        let read_at = Instant::now();
        let record = self.session(id).await?;
        if let Some(record) = &record {
            self.session_lists.keep_record(read_at, generation, record);
        }
        Ok(record)
    }

    /// The owner's sessions in `pool`, oldest first, as [`Store::owner_sessions`] sees them.
    pub async fn pool_sessions(&self, owner_id: &str, pool: &str) -> Result<Vec<SessionRecord>> {
        let mut sessions = self.owner_sessions(owner_id).await?;
        sessions.retain(|s| s.pool.as_deref() == Some(pool));
        Ok(sessions)
    }
}
