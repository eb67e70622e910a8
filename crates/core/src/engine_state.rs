//! The shape of what an engine keeps for a session (a linked device's credentials and keys):
//! opaque values addressed by a `space` (what kind of value), a `scope` (a group, a chat, an
//! app-state collection; empty where the space has none) and a `name`, each with one number
//! (`stamp`) the engine uses for expiry times or flags. The store keeps them; engines give them
//! meaning.

/// The longest scope or name a store must accept (WhatsApp's addresses and ids are far shorter).
pub const STATE_KEY_MAX: usize = 255;

/// One stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    pub space: String,
    pub scope: String,
    pub name: String,
    pub value: Vec<u8>,
    pub stamp: i64,
}

impl StateEntry {
    pub fn new(space: &str, scope: &str, name: &str, value: Vec<u8>, stamp: i64) -> Self {
        StateEntry { space: space.to_owned(), scope: scope.to_owned(), name: name.to_owned(), value, stamp }
    }
}

/// Which rows of one space a change applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRows {
    pub space: String,
    /// `None`: every scope.
    pub scope: Option<String>,
    /// `None`: every name (of the scope, or of the space).
    pub names: Option<Vec<String>>,
}

impl StateRows {
    /// The named rows of one scope.
    pub fn named(space: &str, scope: &str, names: Vec<String>) -> Self {
        StateRows { space: space.to_owned(), scope: Some(scope.to_owned()), names: Some(names) }
    }

    /// One row.
    pub fn one(space: &str, scope: &str, name: &str) -> Self {
        Self::named(space, scope, vec![name.to_owned()])
    }
}

/// A change of a session's state; a store applies several in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange {
    /// Inserts or replaces entries.
    Put(Vec<StateEntry>),
    Delete(StateRows),
    /// Deletes the rows of a space whose stamp is in `from..below`.
    DeleteStamped {
        space: String,
        from: i64,
        below: i64,
    },
    /// Sets the stamp of existing rows.
    Restamp {
        rows: StateRows,
        stamp: i64,
    },
}
