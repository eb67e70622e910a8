//! A session's lifecycle: create, configure, connect, disconnect, restart, log out, delete,
//! link (pairing code, QR code), subscribe, restore at start-up, shut down — and the status
//! each step records and announces.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use wagate_core::{EngineKind, Pacing, Phone, SessionId, SessionStatus};
use wagate_engine::{EngineError, EventSink, GroupInfo, NumberCheck};
use wagate_store::{NewSession, SessionRecord, StoreError};

use super::runtime::{LiveCode, Runtime, View};
use super::stream::{AccountView, StreamEvent, Subscription, webhook_data};
use super::{CreateSession, SessionError, SessionManager};
use crate::time::{now_ms, rfc3339};

impl SessionManager {
    pub async fn create(
        &self,
        owner_id: &str,
        request: CreateSession,
    ) -> Result<SessionRecord, SessionError> {
        self.inner.engines.get(request.engine)?;
        if let Some(url) = &request.webhook_url {
            self.webhooks().check_url(url).await.map_err(SessionError::Webhook)?;
        }
        let id = request.id.unwrap_or_else(SessionId::generate);
        let name = request.name.unwrap_or_else(|| id.to_string());
        let record = self
            .store()
            .insert_session(NewSession {
                id: &id,
                owner_id,
                name: &name,
                engine: request.engine,
                webhook_url: request.webhook_url.as_deref(),
            })
            .await
            .map_err(|err| match err {
                StoreError::Conflict { .. } => SessionError::Exists(id.clone()),
                other => other.into(),
            })?;
        self.log(&id, "created", serde_json::json!({ "engine": request.engine })).await;
        if let Some(url) = &request.webhook_url {
            self.webhooks().set_session_url(owner_id, &id, Some(url)).await.map_err(SessionError::Webhook)?;
        }
        Ok(record)
    }

    pub async fn get(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        self.store().session(id).await?.ok_or(SessionError::NotFound)
    }

    /// The session as last read: exact for this node's own changes, another node's within a
    /// moment (`Store::session_as_last_read`). For sending, where a read per message counts.
    pub async fn get_for_sending(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        self.store().session_as_last_read(id).await?.ok_or(SessionError::NotFound)
    }

    pub async fn list(&self, owner_id: Option<&str>) -> Result<Vec<SessionRecord>, SessionError> {
        Ok(self.store().sessions(owner_id).await?)
    }

    pub async fn rename(&self, id: &SessionId, name: &str) -> Result<SessionRecord, SessionError> {
        if !self.store().rename_session(id, name).await? {
            return Err(SessionError::NotFound);
        }
        self.get(id).await
    }

    /// Own pacing for the session (`None`: its engine's default).
    pub async fn set_pacing(
        &self,
        id: &SessionId,
        pacing: Option<&Pacing>,
    ) -> Result<SessionRecord, SessionError> {
        if !self.store().set_session_pacing(id, pacing).await? {
            return Err(SessionError::NotFound);
        }
        self.get(id).await
    }

    /// Puts the session into a pool (or takes it out with `None`).
    pub async fn set_pool(&self, id: &SessionId, pool: Option<&str>) -> Result<SessionRecord, SessionError> {
        if !self.store().set_session_pool(id, pool).await? {
            return Err(SessionError::NotFound);
        }
        let record = self.get(id).await?;
        self.after_health_change(&record).await;
        Ok(record)
    }

    /// The pacing that applies to the session's ordinary messages.
    pub fn effective_pacing(&self, record: &SessionRecord) -> Pacing {
        record.pacing.unwrap_or(match record.engine {
            EngineKind::Web => self.inner.pacing.web,
            EngineKind::Sandbox => self.inner.pacing.sandbox,
        })
    }

    /// The session's own webhook URL: an endpoint for its messages and status changes.
    pub async fn set_webhook(
        &self,
        id: &SessionId,
        url: Option<&str>,
    ) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        self.webhooks().set_session_url(&record.owner_id, id, url).await.map_err(SessionError::Webhook)?;
        self.store().set_session_webhook(id, url).await?;
        self.get(id).await
    }

    /// Opens the session's connection (QR codes, or a login with stored credentials). Does
    /// nothing when it is already open.
    pub async fn connect(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        let engine = self.inner.engines.get(record.engine)?;
        let runtime = self.runtime(&record);
        let mut live = runtime.live.lock().await;
        if live.connection.is_some() {
            return Ok(record);
        }
        // Under the lock: the lease's renewal lets go of sessions it finds unlocked and idle.
        self.claim(id).await?;
        self.store().set_session_auto_connect(id, true).await?;
        self.set_status(&runtime, SessionStatus::Connecting, None).await;
        // A new connection shows no code yet. Cleared after the status: taking the status gate
        // waited for an event of the previous connection still being handled (a QR code handled
        // while the session was logged out would otherwise stay, and this connection's first QR
        // code would not be recorded as `qr`).
        *runtime.view() = View::default();
        let generation = runtime.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let (sink, events) = EventSink::channel();
        tokio::spawn(self.clone().pump(runtime.clone(), generation, events));
        match engine.open(self.spec(id), sink).await {
            Ok(connection) => live.connection = Some(connection),
            Err(err) => {
                runtime.generation.fetch_add(1, Ordering::SeqCst);
                self.set_status(&runtime, SessionStatus::Disconnected, Some(&err.to_string())).await;
                return Err(err.into());
            }
        }
        drop(live);
        self.get(id).await
    }

    /// Goes offline and stays offline (also across restarts) until the next connect.
    pub async fn disconnect(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        self.here(id).await?;
        self.store().set_session_auto_connect(id, false).await?;
        let runtime = self.runtime(&record);
        self.close(&runtime, "disconnected by request").await;
        self.release(id).await;
        self.get(id).await
    }

    pub async fn restart(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        self.inner.engines.get(record.engine)?;
        self.here(id).await?;
        let runtime = self.runtime(&record);
        self.close(&runtime, "restarting").await;
        self.connect(id).await
    }

    /// Unlinks the device: its credentials are removed and the next connect shows a QR code.
    pub async fn logout(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        self.require(&record, "logging out", |can| can.logout)?;
        self.here(id).await?;
        let runtime = self.runtime(&record);
        let mut live = runtime.live.lock().await;
        runtime.generation.fetch_add(1, Ordering::SeqCst);
        match live.connection.take() {
            Some(connection) => connection.logout().await?,
            None => self.forget_credentials(&record).await?,
        }
        *runtime.view() = View::default();
        self.store().set_session_auto_connect(id, false).await?;
        self.store().set_session_account(id, None).await?;
        self.set_status(&runtime, SessionStatus::LoggedOut, Some("logged out by request")).await;
        self.log(id, "logged_out", serde_json::json!({ "reason": "logged out by request" })).await;
        drop(live);
        self.release(id).await;
        self.get(id).await
    }

    /// Stops the connection and removes the session with its credentials and activity log.
    pub async fn delete(&self, id: &SessionId) -> Result<(), SessionError> {
        let record = self.get(id).await?;
        self.here(id).await?;
        let runtime = self.runtime(&record);
        let mut live = runtime.live.lock().await;
        runtime.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(connection) = live.connection.take() {
            connection.close().await;
        }
        self.forget_credentials(&record).await?;
        self.store().delete_session_webhooks(id, false).await?;
        self.webhooks().invalidate();
        self.store().delete_session(id).await?;
        self.settle_queue_of_deleted(&record, &runtime.sender()).await?;
        runtime.publish(StreamEvent::Deleted { session_id: id.to_string() });
        runtime.is_deleted.store(true, Ordering::SeqCst);
        runtime.deleted.notify_waiters();
        self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        drop(live);
        self.release(id).await;
        Ok(())
    }

    /// Asks for a pairing code for `phone` (opening the connection if needed).
    pub async fn pair_code(&self, id: &SessionId, phone: &Phone) -> Result<LiveCode, SessionError> {
        let record = self.get(id).await?;
        self.require(&record, "pairing codes", |can| can.pairing_code)?;
        if record.status == SessionStatus::Connected {
            return Err(SessionError::AlreadyLinked);
        }
        self.connect(id).await?;
        let runtime = self.runtime(&record);
        let connection =
            runtime.live.lock().await.connection.clone().ok_or(SessionError::Engine(EngineError::Closed))?;
        let pairing = connection.pair_with_code(phone).await?;
        self.log(id, "pair_code_requested", serde_json::json!({ "phone": phone.e164() })).await;
        Ok(LiveCode { code: pairing.code, expires_at: now_ms() + pairing.valid_for.as_millis() as i64 })
    }

    /// The QR code to scan right now.
    pub async fn qr(&self, id: &SessionId) -> Result<LiveCode, SessionError> {
        let record = self.get(id).await?;
        self.require(&record, "QR codes", |can| can.qr_code)?;
        self.here(id).await?;
        if record.status == SessionStatus::Connected {
            return Err(SessionError::AlreadyConnected);
        }
        let runtime = self.runtime(&record);
        let qr = runtime.view().qr.clone();
        qr.filter(|qr| qr.expires_at > now_ms()).ok_or(SessionError::NoQr(record.status))
    }

    /// The session's current state as events, then everything that happens next. Opened on
    /// the node that runs the session, which alone sees its events.
    pub async fn subscribe(&self, id: &SessionId) -> Result<Subscription, SessionError> {
        let record = self.get(id).await?;
        self.here(id).await?;
        let runtime = self.runtime(&record);
        let events = runtime.events.subscribe();
        let ended = runtime.streams_end.subscribe();
        // Read again once subscribed: a change made between the first read and the
        // subscription is then in the snapshot, and every later one arrives as an event.
        let record = self.get(id).await?;
        let mut snapshot = vec![StreamEvent::Status {
            session_id: id.to_string(),
            status: record.status,
            reason: record.status_reason.clone(),
            account: record.account.as_ref().map(AccountView::from),
        }];
        let view = runtime.view();
        if let Some(qr) = view.qr.clone().filter(|_| record.status == SessionStatus::Qr) {
            snapshot.push(StreamEvent::Qr {
                session_id: id.to_string(),
                qr: qr.code,
                expires_at: rfc3339(qr.expires_at),
            });
        }
        if let Some(code) = view.pair_code.clone().filter(|_| record.status == SessionStatus::PairingCode) {
            snapshot.push(StreamEvent::PairCode {
                session_id: id.to_string(),
                code: code.code,
                expires_at: rfc3339(code.expires_at),
            });
        }
        Ok(Subscription { snapshot, events, ended })
    }

    /// At start-up: sessions that were online and that no other node runs come back (this
    /// node's share of them, see [`ownership`](super::ownership)); the others that no node
    /// runs are marked offline. From then on, the node keeps its share with every heartbeat.
    pub async fn restore(&self) -> Result<usize, SessionError> {
        let mut running = self.nodes_of_sessions().await?;
        running.retain(|_, node| node != self.inner.cluster.node_id()); // a previous run's
        for record in self.store().sessions(None).await? {
            if !record.auto_connect && record.status.is_active() && !running.contains_key(record.id.as_str())
            {
                self.store()
                    .set_session_status(&record.id, SessionStatus::Disconnected, Some("server restarted"))
                    .await?;
            }
        }
        let restored = self.claim_share().await?;
        tokio::spawn(self.clone().keep_share());
        let announced = self.inner.announced.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(announced) = announced {
            tokio::spawn(self.clone().carry_wakeups(announced));
        }
        Ok(restored)
    }

    /// Closes every connection, keeping credentials and `auto_connect`, so a restart restores them.
    pub async fn shutdown(&self) {
        // Claims under way end at the next session (they see the shutdown); none starts after.
        let _claiming = self.inner.claiming.lock().await;
        let runtimes: Vec<Arc<Runtime>> =
            self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let closing = runtimes.iter().map(|runtime| self.close(runtime, "server stopped"));
        futures::future::join_all(closing).await;
        // Handed over at once: the other nodes claim them with their next heartbeat.
        let held: Vec<SessionId> =
            self.inner.held.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for id in held {
            self.release(&id).await;
        }
    }

    pub(super) async fn close(&self, runtime: &Runtime, reason: &str) {
        let mut live = runtime.live.lock().await;
        runtime.generation.fetch_add(1, Ordering::SeqCst);
        let Some(connection) = live.connection.take() else { return };
        connection.close().await;
        *runtime.view() = View::default();
        self.set_status(runtime, SessionStatus::Disconnected, Some(reason)).await;
        self.log(&runtime.id, "disconnected", serde_json::json!({ "reason": reason })).await;
    }

    async fn forget_credentials(&self, record: &SessionRecord) -> Result<(), SessionError> {
        let spec = self.spec(&record.id);
        // Without its engine here, its state is forgotten all the same (in the database too).
        match self.inner.engines.get(record.engine) {
            Ok(engine) => engine.forget(&spec).await?,
            Err(_) => wagate_engine::forget_session(&spec).await?,
        }
        Ok(())
    }

    pub(super) async fn set_status(&self, runtime: &Runtime, status: SessionStatus, reason: Option<&str>) {
        let _gate = runtime.status_gate.lock().await;
        self.write_status(runtime, status, reason).await;
    }

    /// Records and announces a status; the caller holds `status_gate`.
    pub(super) async fn write_status(&self, runtime: &Runtime, status: SessionStatus, reason: Option<&str>) {
        runtime.online.send_replace(status == SessionStatus::Connected);
        if let Err(err) = self.store().set_session_status(&runtime.id, status, reason).await {
            tracing::error!(session = %runtime.id, error = %err, "cannot record session status");
        }
        let record = self.store().session(&runtime.id).await.ok().flatten();
        let account = record.as_ref().and_then(|r| r.account.as_ref()).map(AccountView::from);
        if let Some(record) = &record {
            self.after_health_change(record).await;
        }
        let event = StreamEvent::Status {
            session_id: runtime.id.to_string(),
            status,
            reason: reason.map(str::to_owned),
            account,
        };
        self.webhooks()
            .emit(&runtime.owner_id, Some(&runtime.id), "session.status", webhook_data(&event))
            .await;
        runtime.publish(event);
    }

    /// The groups the session's account is in.
    pub async fn groups(&self, record: &SessionRecord) -> Result<Vec<GroupInfo>, SessionError> {
        self.require(record, "listing groups", |can| can.groups)?;
        Ok(self.connection(record).await?.groups().await?)
    }

    /// Whether these numbers are on WhatsApp.
    pub async fn check_numbers(
        &self,
        record: &SessionRecord,
        phones: &[Phone],
    ) -> Result<Vec<NumberCheck>, SessionError> {
        self.require(record, "number checks", |can| can.number_checks)?;
        Ok(self.connection(record).await?.check_numbers(phones).await?)
    }
}
