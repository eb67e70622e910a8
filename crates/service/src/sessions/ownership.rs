//! Which node runs which session. A session's connection lives on one node at a time: the
//! holder of the lease `session:<id>`. With every heartbeat a node renews the leases it holds
//! and claims sessions that should be online and that nobody holds, up to its fair share of
//! them. A node that cannot renew a lease in time closes the session a heartbeat before the
//! lease runs out, and other nodes claim a session a heartbeat after its lease ended or was
//! let go, so two nodes never hold connections of one session at once: the closing node has
//! two heartbeats for its close to reach WhatsApp.
//!
//! A linked session is claimed by a node that has what it needs: its state in the database
//! (both engines keep it there), or, for an engine that keeps it on disk or a session not yet
//! imported from an earlier version, its directory (`<data_dir>/sessions/<id>`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wagate_core::{SessionId, SessionStatus};
use wagate_store::{Fence, Held, SessionRecord};

use super::balance;
use super::runtime::{Runtime, View};
use super::{SessionError, SessionManager};
use crate::time::now_ms;

const LEASE_PREFIX: &str = "session:";

/// A session that could not be connected is not tried again by this node for this long.
const RETRY_CONNECT_MS: i64 = 30_000;

/// Where a session comes in a node's claiming order: fixed per node and session.
fn claim_order(node: &str, id: &SessionId) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    (node, id.as_str()).hash(&mut hasher);
    hasher.finish()
}

fn lease_name(id: &SessionId) -> String {
    format!("{LEASE_PREFIX}{id}")
}

/// A session's lease as this node holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Holding {
    pub epoch: i64,
    /// A heartbeat before the lease ends: the node stops acting on the session after this.
    pub until: i64,
}

impl SessionManager {
    /// Makes this node the session's owner (or keeps it so), or says which node is.
    pub(super) async fn claim(&self, id: &SessionId) -> Result<(), SessionError> {
        let cluster = &self.inner.cluster;
        if !self.held().contains_key(id) {
            self.wait_out_the_last_holders_close(id).await?;
        }
        let now = now_ms();
        let lease = self
            .store()
            .take_lease(&lease_name(id), cluster.node_id(), now, now + cluster.lease_ms())
            .await?;
        match lease {
            Some(held) => {
                let holding = Holding { epoch: held.epoch, until: held.expires_at - cluster.heartbeat_ms() };
                let taken_over = self.held().insert(id.clone(), holding).is_none();
                if taken_over {
                    // Whoever ran the session before (another node, or this one before it lost
                    // the lease or restarted) stopped sending before its lease ended.
                    let released = self.outbox().release_leases_of_session(id).await?;
                    if released > 0 {
                        tracing::info!(session = %id, released, "messages left sending are queued again");
                    }
                }
                Ok(())
            }
            None => {
                let node = self.node_of(id).await?.unwrap_or_else(|| "another node".into());
                Err(SessionError::OnOtherNode(node))
            }
        }
    }

    /// Waits a heartbeat when another node let the session go (or its lease ended) less than a
    /// heartbeat ago, as the claims of [`claim_share`](Self::claim_share) do: the client it
    /// closed may be logged in for a moment yet, and WhatsApp must never see one device logged
    /// in twice at once. A lease still held is left to the claim, which names its node.
    async fn wait_out_the_last_holders_close(&self, id: &SessionId) -> Result<(), SessionError> {
        let cluster = &self.inner.cluster;
        let now = now_ms();
        let lease = lease_name(id);
        let Some(holder) = self.store().lease_holder(&lease, now - cluster.heartbeat_ms()).await? else {
            return Ok(());
        };
        if holder == cluster.node_id() || self.store().lease_holder(&lease, now).await?.is_some() {
            return Ok(());
        }
        tracing::debug!(session = %id, node = %holder, "waiting a heartbeat for the node that let the session go");
        tokio::time::sleep(Duration::from_millis(cluster.heartbeat_ms().unsigned_abs())).await;
        Ok(())
    }

    /// Refuses what needs the session's live connection when another node runs it.
    pub async fn here(&self, id: &SessionId) -> Result<(), SessionError> {
        match self.elsewhere(id).await? {
            Some(node) => Err(SessionError::OnOtherNode(node)),
            None => Ok(()),
        }
    }

    /// What this node writes on the session's behalf (claims of its messages, what it
    /// receives) carries this: the database refuses it once the lease is lost. `None` when this
    /// node does not hold the session.
    pub(super) fn fence(&self, id: &SessionId) -> Option<Fence> {
        let holding = *self.held().get(id)?;
        Some(Fence {
            lease: lease_name(id),
            holder: self.inner.cluster.node_id().to_owned(),
            epoch: holding.epoch,
        })
    }

    /// After the database refused a write on the session's behalf: another node runs it now,
    /// or the lease ran out. The session is closed here at once.
    pub(super) async fn fenced_off(&self, id: &SessionId) {
        let runtime = self.live_runtime(id);
        self.abandon(id, runtime, "the database refused a write under its lost lease").await;
    }

    /// The other node that runs the session, if one does.
    async fn elsewhere(&self, id: &SessionId) -> Result<Option<String>, SessionError> {
        if self.held().contains_key(id) {
            return Ok(None);
        }
        let holder = self.store().lease_holder(&lease_name(id), now_ms()).await?;
        Ok(holder.filter(|node| node != self.inner.cluster.node_id()))
    }

    /// The node that runs the session right now, if any.
    pub async fn node_of(&self, id: &SessionId) -> Result<Option<String>, SessionError> {
        Ok(self.store().lease_holder(&lease_name(id), now_ms()).await?)
    }

    /// The node that runs each session that runs somewhere.
    pub async fn nodes_of_sessions(&self) -> Result<HashMap<String, String>, SessionError> {
        self.nodes_of_sessions_leased_after(now_ms()).await
    }

    /// The node of each session whose lease ends after `at`.
    async fn nodes_of_sessions_leased_after(&self, at: i64) -> Result<HashMap<String, String>, SessionError> {
        let leases = self.store().held_leases(LEASE_PREFIX, at).await?;
        Ok(leases
            .into_iter()
            .filter_map(|(name, node)| Some((name.strip_prefix(LEASE_PREFIX)?.to_owned(), node)))
            .collect())
    }

    /// Gives the session's lease up (after its connection was closed here).
    pub(super) async fn release(&self, id: &SessionId) {
        self.held().remove(id);
        if let Err(err) =
            self.store().release_lease(&lease_name(id), self.inner.cluster.node_id(), now_ms()).await
        {
            tracing::warn!(session = %id, error = %err, "cannot hand the session over");
        }
    }

    /// Renews, lets go, claims: once at start-up, then with every heartbeat until shutdown.
    /// Renewals have a task of their own, so that connecting many sessions at once (which
    /// waits on the database and on the engines) never holds up the leases of those already
    /// running.
    pub(super) async fn keep_share(self) {
        tokio::spawn(self.clone().keep_leases());
        let mut shutdown = self.inner.shutdown.clone();
        let mut every = self.every_heartbeat();
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(err) = self.claim_share().await {
                        tracing::warn!(error = %err, "cannot look for sessions to run");
                    }
                    if let Err(err) = self.end_streams_run_elsewhere().await {
                        tracing::warn!(error = %err, "cannot tell where watched sessions run");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    fn every_heartbeat(&self) -> tokio::time::Interval {
        let mut every =
            tokio::time::interval(Duration::from_millis(self.inner.cluster.heartbeat_ms().max(10) as u64));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every
    }

    /// Renews the leases held here with every heartbeat. After shutdown began, while sessions
    /// close (and their engines write their last state), renewals go on but no lapsed lease is
    /// taken again; the task ends once every lease was handed over.
    async fn keep_leases(self) {
        let shutdown = self.inner.shutdown.clone();
        let mut every = self.every_heartbeat();
        every.tick().await;
        loop {
            every.tick().await;
            let stopping = *shutdown.borrow();
            if stopping && self.held().is_empty() {
                return;
            }
            self.renew(!stopping).await;
        }
    }

    /// Renews every lease this node holds. A session whose lease another node took, or that
    /// could not be renewed before its end, is closed here at once without a word (its status
    /// is the new owner's to tell); one that is no longer connected here is let go.
    ///
    /// A renewal that has not come back a heartbeat before the first of the leases ends (a
    /// busy database, a pool with no connection to spare) is not waited for: those sessions
    /// are closed while the lease still keeps every other node away from them.
    async fn renew(&self, retake: bool) {
        let cluster = &self.inner.cluster;
        let held: Vec<(SessionId, i64)> =
            self.held().iter().map(|(id, holding)| (id.clone(), holding.until)).collect();
        let mut to_renew = Vec::with_capacity(held.len());
        for (id, until) in held {
            let runtime = self.live_runtime(&id);
            // Released under the connection's lock: a connect waits, then claims the lease again
            // (released after its claim, the lease would be gone under its new connection).
            if let Some(runtime) = &runtime
                && let Ok(live) = runtime.live.try_lock()
                && live.connection.is_none()
            {
                self.release(&id).await;
                drop(live);
                continue;
            }
            if now_ms() >= until {
                self.abandon_soon(id, runtime, "its lease could not be renewed in time");
                continue;
            }
            to_renew.push((id, until, runtime));
        }
        let Some(first_end) = to_renew.iter().map(|(_, until, _)| *until).min() else { return };
        // All at once: a node running hundreds of sessions renews them in two statements, so
        // that its renewals never fall behind its leases when the database is busy.
        let now = now_ms();
        let names: Vec<String> = to_renew.iter().map(|(id, _, _)| lease_name(id)).collect();
        let renewing = self.store().renew_leases(&names, cluster.node_id(), now, now + cluster.lease_ms());
        let wait = Duration::from_millis((first_end - now).max(0) as u64);
        let renewed: Option<HashMap<String, Held>> = match tokio::time::timeout(wait, renewing).await {
            Ok(Ok(renewed)) => Some(renewed.into_iter().collect()),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot renew the session leases; again with the next heartbeat");
                None
            }
            Err(_) => {
                tracing::warn!(sessions = names.len(), "the session leases were not renewed in time");
                None
            }
        };
        for (id, until, runtime) in to_renew {
            if let Some(lease) = renewed.as_ref().and_then(|renewed| renewed.get(&lease_name(&id))) {
                // Let go in the meantime (closed, released): not held here again.
                if let Some(holding) = self.held().get_mut(&id) {
                    *holding =
                        Holding { epoch: lease.epoch, until: lease.expires_at - cluster.heartbeat_ms() };
                }
                continue;
            }
            if !self.held().contains_key(&id) {
                continue;
            }
            if now_ms() >= until {
                self.abandon_soon(id, runtime, "its lease could not be renewed in time");
                continue;
            }
            if !retake || renewed.is_none() {
                continue; // tried again with the next heartbeat, within the lease
            }
            // The renewal worked but not for this one: it ran out, or another node took it.
            let now = now_ms();
            match self
                .store()
                .take_lease(&lease_name(&id), cluster.node_id(), now, now + cluster.lease_ms())
                .await
            {
                Ok(Some(lease)) => {
                    let holding =
                        Holding { epoch: lease.epoch, until: lease.expires_at - cluster.heartbeat_ms() };
                    self.held().insert(id, holding);
                }
                Ok(None) => self.abandon_soon(id, runtime, "another node runs the session now"),
                Err(err) => {
                    tracing::warn!(session = %id, error = %err, "cannot take the session's lease again")
                }
            }
        }
    }

    /// [`abandon`](Self::abandon) in a task of its own: closing a client takes a while, and
    /// the renewals of the other sessions must not wait for it.
    fn abandon_soon(&self, id: SessionId, runtime: Option<Arc<Runtime>>, why: &'static str) {
        self.held().remove(&id);
        let manager = self.clone();
        tokio::spawn(async move { manager.abandon(&id, runtime, why).await });
    }

    /// Ends the event streams opened here of sessions that another node runs now (they were
    /// opened while no node ran them, or before this node let them go): their clients
    /// reconnect and are carried to that node.
    async fn end_streams_run_elsewhere(&self) -> Result<(), SessionError> {
        let watched: Vec<Arc<Runtime>> = {
            let runtimes = self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner());
            let held = self.held();
            runtimes
                .values()
                .filter(|runtime| runtime.events.receiver_count() > 0 && !held.contains_key(&runtime.id))
                .cloned()
                .collect()
        };
        if watched.is_empty() {
            return Ok(());
        }
        let running = self.nodes_of_sessions().await?;
        for runtime in watched {
            if running.get(runtime.id.as_str()).is_some_and(|node| node != self.inner.cluster.node_id()) {
                runtime.end_streams();
            }
        }
        Ok(())
    }

    /// Closes a session whose lease is gone, writing nothing: another node may run it now.
    async fn abandon(&self, id: &SessionId, runtime: Option<Arc<Runtime>>, why: &str) {
        self.held().remove(id);
        tracing::warn!(session = %id, node = self.inner.cluster.node_id(), why, "session closed on this node");
        let Some(runtime) = runtime else { return };
        runtime.end_streams();
        let mut live = runtime.live.lock().await;
        runtime.generation.fetch_add(1, Ordering::SeqCst);
        runtime.online.send_replace(false);
        if let Some(connection) = live.connection.take() {
            connection.close().await;
        }
        *runtime.view() = View::default();
    }

    /// Connects sessions that should be online and that no node runs, up to this node's share
    /// of them (beyond it, those no node took for a while), then hands over what it runs beyond
    /// its share while other nodes have room and no session waits to be claimed (see
    /// [`balance`](super::balance)). Returns how many it connected.
    pub(super) async fn claim_share(&self) -> Result<usize, SessionError> {
        let _claiming = self.inner.claiming.lock().await;
        if self.stopping() {
            return Ok(0);
        }
        let cluster = &self.inner.cluster;
        let live_nodes = cluster.live_node_ids().await?;
        let wanted: Vec<SessionRecord> =
            self.store().sessions(None).await?.into_iter().filter(|record| record.auto_connect).collect();
        let now = now_ms();
        // A session whose lease ended or was let go less than a heartbeat ago counts as run by
        // that node still: the client it closed may be logged in for a moment yet (its close
        // not yet seen by WhatsApp, or slower than the heartbeat between a missed renewal and
        // the lease's end), and WhatsApp must never see one device logged in twice at once.
        // Leases under this node's id that it does not hold in memory are a previous run's
        // (a restart after a crash): taken back at once rather than after they expire.
        let mut running = self.nodes_of_sessions_leased_after(now - cluster.heartbeat_ms()).await?;
        running.retain(|_, node| node != cluster.node_id());
        let share = wanted.len().div_ceil(live_nodes.len().max(1));
        let stranded_after = balance::stranded_after(cluster.lease_ms(), cluster.heartbeat_ms());
        {
            let held = self.held();
            let unowned = wanted
                .iter()
                .filter(|record| !running.contains_key(record.id.as_str()) && !held.contains_key(&record.id));
            self.balance().observe(unowned.map(|record| &record.id), now);
        }
        // Each node goes through them in an order of its own, so that nodes claiming at the
        // same moment (after one went away) mostly reach for different sessions.
        let mut wanted = wanted;
        wanted.sort_by_cached_key(|record| claim_order(cluster.node_id(), &record.id));
        let mut mine = self.held().len();
        let mut connected = 0;
        for record in wanted {
            if self.stopping() {
                return Ok(connected);
            }
            if running.contains_key(record.id.as_str()) || self.held().contains_key(&record.id) {
                continue;
            }
            if mine >= share && !self.balance().stranded(&record.id, now, stranded_after) {
                continue;
            }
            if self.inner.engines.get(record.engine).is_err() || self.retry_later(&record.id) {
                continue;
            }
            if !self.runnable_here(&record).await {
                // Read again: the list may be older than a logout or a connect that happened
                // meanwhile (the session then needs nothing, or runs), whose status must stand.
                let fresh = self.store().session(&record.id).await.ok().flatten();
                let still = match &fresh {
                    Some(fresh) => !self.held().contains_key(&fresh.id) && !self.runnable_here(fresh).await,
                    None => false,
                };
                if let Some(fresh) = fresh.filter(|fresh| still && fresh.status.is_active()) {
                    let reason = "no node runs it: its WhatsApp state is neither in the database nor on this node's disk";
                    self.set_status(&self.runtime(&fresh), SessionStatus::Disconnected, Some(reason)).await;
                }
                continue;
            }
            match self.connect(&record.id).await {
                Ok(_) => {
                    self.balance().taken(&record.id);
                    mine += 1;
                    connected += 1;
                }
                Err(SessionError::OnOtherNode(_)) => {} // another node was quicker
                Err(err) => {
                    tracing::warn!(session = %record.id, error = %err, "cannot connect session");
                    if matches!(err, SessionError::Engine(_)) {
                        let mut failed = self.inner.failed_connects.lock().unwrap_or_else(|p| p.into_inner());
                        failed.insert(record.id.clone(), now_ms());
                    }
                }
            }
        }
        let others: Vec<usize> = live_nodes
            .iter()
            .filter(|node| *node != cluster.node_id())
            .map(|node| running.values().filter(|runs| *runs == node).count())
            .collect();
        let surplus = balance::to_hand_over(self.held().len(), share, &others);
        if surplus > 0 && !self.balance().claims_pending(now_ms(), stranded_after) {
            self.hand_over(surplus).await;
        }
        Ok(connected)
    }

    /// Closes `count` of the sessions this node runs and gives their leases up, for nodes with
    /// room to claim: those last in this node's claiming order, not one that came back to it.
    async fn hand_over(&self, count: usize) {
        let node = self.inner.cluster.node_id();
        let now = now_ms();
        let mut held: Vec<SessionId> = self.held().keys().cloned().collect();
        held.sort_by_cached_key(|id| std::cmp::Reverse(claim_order(node, id)));
        let chosen: Vec<SessionId> =
            held.into_iter().filter(|id| self.balance().may_hand_over(id, now)).take(count).collect();
        for id in chosen {
            tracing::info!(session = %id, node, "handing the session over to even out the load");
            if let Some(runtime) = self.live_runtime(&id) {
                self.close(&runtime, "moved to another node to even out the load").await;
            }
            self.release(&id).await;
            self.balance().handed_over(&id, now);
        }
    }

    /// Whether this node began to shut down: it claims nothing more.
    fn stopping(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    fn balance(&self) -> std::sync::MutexGuard<'_, balance::Balance> {
        self.inner.balance.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node has what the session needs: nothing, before it is linked; after, its
    /// state in the database (for an engine that keeps it there), or its directory (which holds
    /// it for other engines, and, until imported, what an earlier version kept).
    async fn runnable_here(&self, record: &SessionRecord) -> bool {
        if record.account.is_none() || self.spec(&record.id).store_dir.exists() {
            return true;
        }
        let shared = self.inner.engines.get(record.engine).is_ok_and(|engine| engine.state_is_shared());
        shared && self.store().state_exists(&record.id).await.unwrap_or(false)
    }

    /// Whether connecting the session failed here within the last [`RETRY_CONNECT_MS`].
    fn retry_later(&self, id: &SessionId) -> bool {
        let mut failed = self.inner.failed_connects.lock().unwrap_or_else(|p| p.into_inner());
        failed.retain(|_, at| now_ms() - *at < RETRY_CONNECT_MS);
        failed.contains_key(id)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Holding>> {
        self.inner.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}
