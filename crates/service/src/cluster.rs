//! This node among the others sharing the database: its id, its heartbeat, and the lease that
//! makes it the node running the periodic jobs that must run once per cluster (retention, the
//! OTP sweeper, webhook deliveries, alert checks). On one node alone it is always that node.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use wagate_store::{NodeRecord, Store, StoreError};

use crate::time::now_ms;

/// The lease of the node that runs the once-per-cluster jobs.
const JOBS_LEASE: &str = "cluster-jobs";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// How often a node signs of life and renews its leases.
    pub heartbeat_ms: u64,
    /// How long a lease (and a node's sign of life) lasts without renewal: a node that stops
    /// without saying so loses its duties after at most this long.
    pub lease_ms: u64,
    /// While other nodes are alive, how often an idle session looks for messages they queued
    /// for it, where the database cannot wake it (MariaDB/MySQL) or while its wake-ups are
    /// lost. On PostgreSQL, whose wake-ups reach it at once, it looks every 5 s (or this, if
    /// longer).
    pub idle_poll_ms: u64,
    /// The base URL at which the other nodes reach this one (e.g. `http://10.0.0.5:8080`).
    /// Default: the listening address, or the host name when listening on all addresses.
    pub advertise_url: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { heartbeat_ms: 2_000, lease_ms: 10_000, idle_poll_ms: 250, advertise_url: None }
    }
}

/// This machine's name, as far as it is known.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "wagate".into())
}

/// A node id: the host name and a random suffix, so that two processes on one host differ.
/// The suffix is kept in `<data_dir>/node-<host>` while the process holds a lock on that file,
/// so a node restarted after a crash comes back under its old id and takes its own leases back
/// at once; a second process on the same host and data directory gets a fresh suffix. The
/// returned file holds the lock (dropping it releases it).
pub fn default_node_id(data_dir: &Path) -> (String, Option<File>) {
    let host: String = host_name()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(60)
        .collect();
    let fresh = || format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff);
    let path = data_dir.join(format!("node-{host}"));
    let Ok(mut file) = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)
    else {
        return (fresh(), None);
    };
    if file.try_lock().is_err() {
        return (fresh(), None); // another process on this host uses it
    }
    let mut kept = String::new();
    let _ = file.read_to_string(&mut kept);
    let kept = kept.trim();
    let id =
        if kept.starts_with(&format!("{host}-")) && kept.len() <= 100 { kept.to_owned() } else { fresh() };
    if id != kept {
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(id.as_bytes()));
        if let Err(err) = written {
            tracing::warn!(error = %err, path = %path.display(), "cannot keep this node's id");
        }
    }
    (id, Some(file))
}

pub struct Cluster {
    store: Store,
    node_id: String,
    /// Where the other nodes reach this one (its base URL), if they can.
    address: Option<String>,
    started_at: i64,
    config: ClusterConfig,
    /// Whether this node holds the jobs lease, and until when.
    runs_jobs: AtomicBool,
    jobs_until: AtomicI64,
    /// The last heartbeat did not reach the database.
    database_lost: AtomicBool,
    /// Another node was heard from within a lease, as of the last heartbeat.
    others_alive: AtomicBool,
    /// The lock on the file that keeps a default node id (see [`default_node_id`]).
    _id_lock: Option<File>,
}

/// A node as the cluster sees it.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub node: NodeRecord,
    pub runs_jobs: bool,
}

impl Cluster {
    /// Joins the cluster: the first heartbeat, and the jobs lease when nobody holds it.
    /// `address`: this node's base URL for the others. `id_lock`: the file that keeps a default
    /// id, held while the node runs.
    pub async fn join(
        store: Store,
        node_id: String,
        address: Option<String>,
        id_lock: Option<File>,
        config: ClusterConfig,
    ) -> Result<Arc<Cluster>, StoreError> {
        let cluster = Arc::new(Cluster {
            store,
            node_id,
            address,
            started_at: now_ms(),
            config,
            runs_jobs: AtomicBool::new(false),
            jobs_until: AtomicI64::new(0),
            database_lost: AtomicBool::new(false),
            others_alive: AtomicBool::new(false),
            _id_lock: id_lock,
        });
        cluster.beat().await?;
        Ok(cluster)
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// This node's base URL for the others.
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Where a live node is reached, if it is alive and reachable.
    pub async fn address_of(&self, node_id: &str) -> Result<Option<String>, StoreError> {
        let since = now_ms() - self.config.lease_ms as i64;
        Ok(self
            .store
            .live_nodes(since)
            .await?
            .into_iter()
            .find(|node| node.id == node_id)
            .and_then(|node| node.address))
    }

    /// Whether this node runs the once-per-cluster jobs right now. A node that could not renew
    /// its lease in time says no before the lease runs out, so two nodes never both say yes.
    pub fn runs_jobs(&self) -> bool {
        self.runs_jobs.load(Ordering::SeqCst) && now_ms() < self.jobs_until.load(Ordering::SeqCst)
    }

    /// Whether this node's last heartbeat could not reach the database.
    pub fn database_lost(&self) -> bool {
        self.database_lost.load(Ordering::SeqCst)
    }

    /// How long a lease lasts without renewal, in milliseconds.
    pub fn lease_ms(&self) -> i64 {
        self.config.lease_ms as i64
    }

    /// See [`ClusterConfig::idle_poll_ms`].
    pub fn idle_poll_ms(&self) -> u64 {
        self.config.idle_poll_ms.max(10)
    }

    /// How often this node renews its leases, in milliseconds.
    pub fn heartbeat_ms(&self) -> i64 {
        self.config.heartbeat_ms as i64
    }

    /// The nodes heard from within a lease (this one included, once it has beaten).
    pub async fn live_node_ids(&self) -> Result<Vec<String>, StoreError> {
        let since = now_ms() - self.config.lease_ms as i64;
        Ok(self.store.live_nodes(since).await?.into_iter().map(|node| node.id).collect())
    }

    /// Whether other nodes were alive at the last heartbeat: work another node queues for this
    /// one is then looked for more often, since their wake-ups do not reach this process.
    pub fn has_company(&self) -> bool {
        self.others_alive.load(Ordering::SeqCst)
    }

    /// Whether another node was heard from within a lease.
    pub async fn others_alive(&self) -> Result<bool, StoreError> {
        let since = now_ms() - self.config.lease_ms as i64;
        Ok(self.store.live_nodes(since).await?.iter().any(|node| node.id != self.node_id))
    }

    /// The live nodes, and which one runs the jobs.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        let since = now_ms() - self.config.lease_ms as i64;
        let holder = self.store.lease_holder(JOBS_LEASE, now_ms()).await?;
        Ok(self
            .store
            .live_nodes(since)
            .await?
            .into_iter()
            .map(|node| NodeView { runs_jobs: holder.as_deref() == Some(node.id.as_str()), node })
            .collect())
    }

    /// Heartbeats until shutdown, then leaves: the jobs lease goes to another node at once.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.config.heartbeat_ms.max(10)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    let beat = self.beat().await;
                    self.database_lost.store(beat.is_err(), Ordering::SeqCst);
                    if let Err(err) = beat {
                        tracing::warn!(error = %err, node = %self.node_id, "cannot renew this node's heartbeat");
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
        self.leave().await;
    }

    async fn beat(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let this = NodeRecord {
            id: self.node_id.clone(),
            started_at: self.started_at,
            heartbeat_at: now,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: self.address.clone(),
        };
        self.store.node_heartbeat(&this, now).await?;
        // Renewed with a margin: this node stops running jobs a heartbeat before its lease ends.
        let expires_at = now + self.config.lease_ms as i64;
        let held = self.store.take_lease(JOBS_LEASE, &self.node_id, now, expires_at).await?;
        let others = self.store.live_nodes(now - self.config.lease_ms as i64).await?;
        self.others_alive.store(others.iter().any(|node| node.id != self.node_id), Ordering::SeqCst);
        let margin = self.config.heartbeat_ms as i64;
        let was = self.runs_jobs.swap(held.is_some(), Ordering::SeqCst);
        self.jobs_until.store(held.map_or(0, |held| held.expires_at - margin), Ordering::SeqCst);
        if was != held.is_some() {
            tracing::info!(node = %self.node_id, runs_jobs = held.is_some(), "this node's cluster duties changed");
        }
        Ok(())
    }

    async fn leave(&self) {
        self.runs_jobs.store(false, Ordering::SeqCst);
        if let Err(err) = self.store.release_lease(JOBS_LEASE, &self.node_id, now_ms()).await {
            tracing::warn!(error = %err, "cannot hand the cluster jobs over");
        }
        if let Err(err) = self.store.remove_node(&self.node_id).await {
            tracing::warn!(error = %err, "cannot leave the cluster's node list");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_id_is_kept_for_the_next_run_and_never_shared_by_two_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (first, lock) = default_node_id(dir.path());
        assert!(lock.is_some());
        let (second, none) = default_node_id(dir.path());
        assert!(none.is_none());
        assert_ne!(first, second, "a second process at the same time gets an id of its own");
        drop(lock);
        let (again, _lock) = default_node_id(dir.path());
        assert_eq!(first, again, "the next run after the first stopped (or crashed) is the same node");
    }
}
