//! The activity and audit log: who did what, when and from which address, and what went wrong
//! on its own (a session dropped, a message failed, a webhook given up). Recording never fails
//! the action it describes: a line that cannot be written is reported in the server's log.

use wagate_store::{ActivityRecord, Store};

use crate::auth::Principal;
use crate::time::now_ms;

/// Who acted: a user (through a login, the dashboard or an API key), or the server itself.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<String>,
    pub name: String,
    pub ip: Option<String>,
}

impl Actor {
    /// The server itself: the network, a worker, the command line.
    pub fn system() -> Self {
        Actor { user_id: None, name: "system".into(), ip: None }
    }

    /// Someone who is not signed in, known by the name they gave.
    pub fn anonymous(name: &str, ip: &str) -> Self {
        Actor { user_id: None, name: name.chars().take(100).collect(), ip: Some(ip.to_owned()) }
    }

    pub fn of(principal: &Principal) -> Self {
        Actor {
            user_id: Some(principal.user_id.clone()),
            name: principal.username.clone(),
            ip: principal.ip.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One line to write.
#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: String,
    pub level: Level,
    pub actor: Actor,
    /// The tenant the line belongs to (`None`: the server's own, seen by admins only).
    pub owner_id: Option<String>,
    pub session_id: Option<String>,
    pub detail: serde_json::Value,
}

impl Entry {
    pub fn new(kind: impl Into<String>, level: Level, actor: Actor) -> Self {
        let owner_id = actor.user_id.clone();
        Entry { kind: kind.into(), level, actor, owner_id, session_id: None, detail: serde_json::Value::Null }
    }

    pub fn owner(mut self, owner_id: Option<&str>) -> Self {
        self.owner_id = owner_id.map(str::to_owned);
        self
    }

    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

#[derive(Clone)]
pub struct AuditLog {
    store: Store,
}

impl AuditLog {
    pub fn new(store: Store) -> Self {
        AuditLog { store }
    }

    pub async fn record(&self, entry: Entry) {
        let record = ActivityRecord {
            id: wagate_core::new_id(),
            owner_id: entry.owner_id,
            actor_id: entry.actor.user_id,
            actor: entry.actor.name,
            kind: entry.kind,
            level: entry.level.as_str().to_owned(),
            session_id: entry.session_id,
            ip: entry.actor.ip,
            detail: (!entry.detail.is_null()).then(|| entry.detail.to_string()),
            created_at: now_ms(),
        };
        if let Err(err) = self.store.insert_activity(&record).await {
            tracing::error!(error = %err, kind = record.kind, "cannot record an activity log line");
        }
    }
}
