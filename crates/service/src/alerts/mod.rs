//! Alerts (`[alerts]`): a session dropped and not back within the grace period, logged out by
//! the phone, banned, restricted by WhatsApp (463), a queue older than a threshold, webhook
//! dead letters, the database unreachable. One notice per condition and subject when it
//! starts, one when it ends; a notice a channel could not take is tried again at the next
//! check. Disconnecting or logging out through the API alerts nobody.

mod channels;
mod conditions;
mod config;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wagate_core::SessionStatus;
use wagate_store::{Store, StoreError};

pub use channels::{Channel, Notice};
pub use conditions::{Condition, Kind};
pub use config::{AlertWebhookConfig, AlertsConfig, SmtpConfig, SmtpSecurity, TelegramConfig};

use crate::audit::{Actor, AuditLog, Entry, Level};
use crate::cluster::Cluster;
use crate::sessions::SessionManager;
use crate::time::now_ms;

struct Open {
    condition: Condition,
    /// Channels (by index) that have not taken the opening notice yet.
    unsent: Vec<usize>,
}

/// What the checks remember between two runs.
#[derive(Default)]
pub struct Memory {
    open: BTreeMap<(Kind, String), Open>,
    /// Sessions offline while they should be online, since when.
    down_since: HashMap<String, i64>,
}

pub struct Alerts {
    store: Store,
    sessions: SessionManager,
    config: AlertsConfig,
    channels: Vec<Channel>,
    client: reqwest::Client,
    audit: AuditLog,
}

impl Alerts {
    pub fn new(store: Store, sessions: SessionManager, config: AlertsConfig) -> Result<Self, String> {
        let channels = Channel::all(&config)?;
        Ok(Alerts {
            audit: AuditLog::new(store.clone()),
            store,
            sessions,
            config,
            channels,
            client: reqwest::Client::new(),
        })
    }

    /// Checks every `check_interval_ms` until shutdown, on the node that runs the cluster's
    /// jobs, and on any node that cannot reach the database (which then knows of nothing else).
    pub async fn run(self, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        let mut memory = Memory::default();
        let mut every = tokio::time::interval(Duration::from_millis(self.config.check_interval_ms.max(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if cluster.runs_jobs() || cluster.database_lost() {
                        self.check(&mut memory).await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One check: opens, closes and (re)sends notices.
    pub async fn check(&self, memory: &mut Memory) {
        let (found, complete) = match self.current(memory).await {
            Ok(found) => (found, true),
            Err(err) => {
                let database = Condition {
                    kind: Kind::Database,
                    subject: "database".into(),
                    owner_id: None,
                    session_id: None,
                    text: format!("the database does not answer: {err}"),
                };
                (vec![database], false)
            }
        };
        let keys: HashSet<(Kind, String)> = found.iter().map(Condition::key).collect();
        // When the database did not answer, nothing else is known: only the database recovers.
        let ended: Vec<(Kind, String)> = memory
            .open
            .keys()
            .filter(|key| !keys.contains(key) && (complete || key.0 == Kind::Database))
            .cloned()
            .collect();
        for key in ended {
            if let Some(open) = memory.open.remove(&key) {
                self.recovered(open).await;
            }
        }
        for condition in found {
            if let std::collections::btree_map::Entry::Vacant(slot) = memory.open.entry(condition.key()) {
                self.record(&condition, "alert.opened", Level::Error).await;
                let unsent = (0..self.channels.len()).collect();
                slot.insert(Open { condition, unsent });
            }
        }
        for open in memory.open.values_mut() {
            if open.unsent.is_empty() {
                continue;
            }
            let notice = notice("alert.opened", &open.condition);
            let mut still = Vec::new();
            for &index in &open.unsent {
                if !self.deliver(index, &notice).await {
                    still.push(index);
                }
            }
            open.unsent = still;
        }
    }

    async fn recovered(&self, open: Open) {
        self.record(&open.condition, "alert.recovered", Level::Info).await;
        let notice = notice("alert.recovered", &open.condition);
        // Only channels that heard of the alert hear of its end.
        for index in (0..self.channels.len()).filter(|i| !open.unsent.contains(i)) {
            self.deliver(index, &notice).await;
        }
    }

    async fn deliver(&self, index: usize, notice: &Notice) -> bool {
        let channel = &self.channels[index];
        match channel.send(&self.client, notice).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(channel = channel.name(), condition = notice.condition, error = %err, "cannot send an alert; trying again at the next check");
                false
            }
        }
    }

    async fn record(&self, condition: &Condition, kind: &str, level: Level) {
        let mut entry = Entry::new(kind, level, Actor::system())
            .owner(condition.owner_id.as_deref())
            .detail(serde_json::json!({ "condition": condition.kind.as_str(), "subject": condition.subject, "text": condition.text }));
        if let Some(session) = &condition.session_id {
            entry = entry.session(session);
        }
        if condition.kind != Kind::Database {
            self.audit.record(entry).await;
        }
    }

    /// The conditions that hold now.
    async fn current(&self, memory: &mut Memory) -> Result<Vec<Condition>, StoreError> {
        let now = now_ms();
        let grace_ms = self.config.disconnect_grace_secs as i64 * 1000;
        let sessions = self.store.sessions(None).await?;
        let mut found = Vec::new();
        let mut down = HashSet::new();
        for record in &sessions {
            let id = record.id.to_string();
            if conditions::is_down(record) {
                memory.down_since.entry(id.clone()).or_insert(now);
                down.insert(id.clone());
            }
            let restricted = record.status == SessionStatus::Connected && self.sessions.is_restricted(record);
            let down_since = memory.down_since.get(&id).copied();
            found.extend(conditions::of_session(record, restricted, down_since, grace_ms, now));
        }
        memory.down_since.retain(|id, _| down.contains(id));

        let queue_age_ms = self.config.queue_age_secs as i64 * 1000;
        for (session_id, since) in self.store.oldest_queued_per_session().await? {
            let Some(record) = sessions.iter().find(|s| s.id.as_str() == session_id) else { continue };
            if now - since >= queue_age_ms {
                let minutes = (now - since) / 60_000;
                found.push(Condition {
                    kind: Kind::QueueStalled,
                    subject: session_id.clone(),
                    owner_id: Some(record.owner_id.clone()),
                    session_id: Some(session_id),
                    text: format!(
                        "{}: a queued message has waited {minutes} min",
                        conditions::session_name(record)
                    ),
                });
            }
        }
        for (webhook_id, owner_id, url, count) in self.store.dead_deliveries_per_webhook().await? {
            found.push(Condition {
                kind: Kind::WebhookDead,
                subject: webhook_id.clone(),
                owner_id: Some(owner_id),
                session_id: None,
                text: format!(
                    "webhook {webhook_id} ({url}) gave up on {count} deliveries; replay them once it answers"
                ),
            });
        }
        Ok(found)
    }
}

fn notice(event: &'static str, condition: &Condition) -> Notice {
    let text = if event == "alert.opened" {
        condition.text.clone()
    } else {
        format!("resolved: {}", condition.text)
    };
    Notice {
        event,
        condition: condition.kind.as_str(),
        subject: condition.subject.clone(),
        session_id: condition.session_id.clone(),
        text,
    }
}
