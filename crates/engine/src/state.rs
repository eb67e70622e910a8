//! Where an engine keeps what it must remember of a session (a linked device's credentials and
//! keys). wagate gives each session a [`SessionState`] backed by its database, so that any node
//! sharing the database can run the session and nothing of it lives on one node's disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
pub use wagate_core::engine_state::{STATE_KEY_MAX, StateChange, StateEntry, StateRows};

/// Why the state could not be read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StateError {
    /// Another node runs the session now: this one must stop acting for it.
    #[error("the session is run by another node now")]
    Fenced,
    #[error("{0}")]
    Failed(String),
}

/// One session's state. Writes are applied together or not at all.
#[async_trait]
pub trait SessionState: Send + Sync {
    /// The entries of `names` in one scope (those that exist).
    async fn get(&self, space: &str, scope: &str, names: &[&str]) -> Result<Vec<StateEntry>, StateError>;

    /// Every entry of a space, or of one scope of it.
    async fn list(&self, space: &str, scope: Option<&str>) -> Result<Vec<StateEntry>, StateError>;

    /// The greatest name of a space, compared byte by byte.
    async fn max_name(&self, space: &str) -> Result<Option<String>, StateError>;

    /// Whether a name in one of `spaces` starts with one of `prefixes` (no `%`, `_` or `\`).
    async fn any_prefixed(&self, spaces: &[&str], prefixes: &[&str]) -> Result<bool, StateError>;

    /// Applies the changes in one transaction; the rows each changed.
    async fn change(&self, changes: Vec<StateChange>) -> Result<Vec<u64>, StateError>;

    /// Removes one entry and returns it.
    async fn take(&self, space: &str, scope: &str, name: &str) -> Result<Option<StateEntry>, StateError>;

    /// Whether anything is kept.
    async fn exists(&self) -> Result<bool, StateError>;

    /// Deletes everything.
    async fn forget(&self) -> Result<(), StateError>;
}

impl std::fmt::Debug for dyn SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionState")
    }
}

type Key = (String, String, String);

/// A [`SessionState`] in memory, gone with the process: for tests, and for sessions of engines
/// that keep nothing.
#[derive(Default)]
pub struct MemoryState {
    entries: Mutex<BTreeMap<Key, (Vec<u8>, i64)>>,
}

impl MemoryState {
    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, (Vec<u8>, i64)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn entry(key: &Key, (value, stamp): &(Vec<u8>, i64)) -> StateEntry {
    StateEntry::new(&key.0, &key.1, &key.2, value.clone(), *stamp)
}

fn selected(rows: &StateRows, key: &Key) -> bool {
    key.0 == rows.space
        && rows.scope.as_ref().is_none_or(|scope| *scope == key.1)
        && rows.names.as_ref().is_none_or(|names| names.contains(&key.2))
}

#[async_trait]
impl SessionState for MemoryState {
    async fn get(&self, space: &str, scope: &str, names: &[&str]) -> Result<Vec<StateEntry>, StateError> {
        let entries = self.entries();
        Ok(names
            .iter()
            .filter_map(|name| {
                let key = (space.to_owned(), scope.to_owned(), (*name).to_owned());
                entries.get(&key).map(|value| entry(&key, value))
            })
            .collect())
    }

    async fn list(&self, space: &str, scope: Option<&str>) -> Result<Vec<StateEntry>, StateError> {
        let rows = StateRows { space: space.to_owned(), scope: scope.map(str::to_owned), names: None };
        Ok(self
            .entries()
            .iter()
            .filter(|(key, _)| selected(&rows, key))
            .map(|(key, value)| entry(key, value))
            .collect())
    }

    async fn max_name(&self, space: &str) -> Result<Option<String>, StateError> {
        Ok(self.entries().keys().filter(|key| key.0 == space).map(|key| key.2.clone()).max())
    }

    async fn any_prefixed(&self, spaces: &[&str], prefixes: &[&str]) -> Result<bool, StateError> {
        Ok(self.entries().keys().any(|key| {
            spaces.contains(&key.0.as_str()) && prefixes.iter().any(|prefix| key.2.starts_with(prefix))
        }))
    }

    async fn change(&self, changes: Vec<StateChange>) -> Result<Vec<u64>, StateError> {
        let mut entries = self.entries();
        let mut counts = Vec::with_capacity(changes.len());
        for change in changes {
            let count = match change {
                StateChange::Put(new) => {
                    let count = new.len() as u64;
                    for row in new {
                        entries.insert((row.space, row.scope, row.name), (row.value, row.stamp));
                    }
                    count
                }
                StateChange::Delete(rows) => {
                    let before = entries.len();
                    entries.retain(|key, _| !selected(&rows, key));
                    (before - entries.len()) as u64
                }
                StateChange::DeleteStamped { space, from, below } => {
                    let before = entries.len();
                    entries.retain(|key, (_, stamp)| !(key.0 == space && (from..below).contains(stamp)));
                    (before - entries.len()) as u64
                }
                StateChange::Restamp { rows, stamp } => {
                    let mut count = 0;
                    for (_, value) in entries.iter_mut().filter(|(key, _)| selected(&rows, key)) {
                        value.1 = stamp;
                        count += 1;
                    }
                    count
                }
            };
            counts.push(count);
        }
        Ok(counts)
    }

    async fn take(&self, space: &str, scope: &str, name: &str) -> Result<Option<StateEntry>, StateError> {
        let key = (space.to_owned(), scope.to_owned(), name.to_owned());
        Ok(self.entries().remove(&key).map(|value| entry(&key, &value)))
    }

    async fn exists(&self) -> Result<bool, StateError> {
        Ok(!self.entries().is_empty())
    }

    async fn forget(&self) -> Result<(), StateError> {
        self.entries().clear();
        Ok(())
    }
}
