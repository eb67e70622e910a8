//! Session lifecycle: create, connect, link, disconnect, log out, delete — and the live state
//! (QR code, pairing code, status) that streams to clients.
//!
//! Each session has a [`Runtime`]. Operations on one session are serialised by its `live`
//! lock; the engine's events are handled by a pump task per connection. Every connection gets
//! a new generation number, so late events of a closed connection are ignored. Status
//! changes pass the runtime's `status_gate`, where a pump re-checks its generation: a closed
//! connection's late QR code can never land after the "disconnected" that closed it.

mod dispatcher;
mod pools;
mod receipts;

pub use pools::PoolStrategy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use wagate_core::{EngineKind, MessageStatus, OtpCode, Pacing, Phone, SessionId, SessionStatus};
use wagate_engine::{
    Account, Capabilities, Connection, EngineError, EngineEvent, EventReceiver, EventSink, InboundMessage,
    SessionSpec,
};
use wagate_store::{LinkedAccount, NewSession, SessionRecord, Store, StoreError};

use super::delivery::{Delivery, Outcome};
use super::engines::Engines;
use super::media::MediaStore;
use super::otp::OtpFeed;
use super::otp::seal::Sealer;
use super::webhooks::Webhooks;
use crate::time::{now_ms, rfc3339};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("a session with id `{0}` already exists")]
    Exists(SessionId),
    #[error("the {0} engine is not available in this build or configuration")]
    EngineUnavailable(EngineKind),
    #[error("the session is already connected")]
    AlreadyConnected,
    #[error("the session is already linked to a phone; log out first")]
    AlreadyLinked,
    #[error("no QR code right now (session status: {0})")]
    NoQr(SessionStatus),
    #[error(transparent)]
    Engine(EngineError),
    #[error("no session of yours is in pool `{0}`")]
    UnknownPool(String),
    #[error("webhook: {0}")]
    Webhook(super::webhooks::WebhookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<EngineError> for SessionError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::NotAvailable(kind) => SessionError::EngineUnavailable(kind),
            EngineError::AlreadyLinked => SessionError::AlreadyLinked,
            other => SessionError::Engine(other),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// E.164.
    pub phone: String,
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

impl From<&LinkedAccount> for AccountView {
    fn from(a: &LinkedAccount) -> Self {
        AccountView { phone: a.phone.clone(), lid: a.lid.clone(), push_name: a.push_name.clone() }
    }
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView { phone: a.phone.e164().to_owned(), lid: a.lid.clone(), push_name: a.push_name.clone() }
    }
}

/// What a session's event stream (SSE or WebSocket) carries.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEvent {
    Status { session_id: String, status: SessionStatus, reason: Option<String>, account: Option<AccountView> },
    Qr { session_id: String, qr: String, expires_at: String },
    PairCode { session_id: String, code: String, expires_at: String },
    Paired { session_id: String, account: AccountView },
    Error { session_id: String, code: String, message: String },
    MessageReceived { session_id: String, message_id: String, from: String, chat: String, timestamp: String },
    MessageStatus { session_id: String, message_id: String, status: String, reason: Option<String> },
    Deleted { session_id: String },
}

impl StreamEvent {
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Status { .. } => "status",
            StreamEvent::Qr { .. } => "qr",
            StreamEvent::PairCode { .. } => "pair_code",
            StreamEvent::Paired { .. } => "paired",
            StreamEvent::Error { .. } => "error",
            StreamEvent::MessageReceived { .. } => "message_received",
            StreamEvent::MessageStatus { .. } => "message_status",
            StreamEvent::Deleted { .. } => "deleted",
        }
    }
}

/// The store's view of an engine's inbound message.
struct StoredInbound<'a>(&'a InboundMessage);

impl wagate_store::InboundFields for StoredInbound<'_> {
    fn wa_id(&self) -> &str {
        &self.0.id
    }
    fn chat(&self) -> &str {
        &self.0.chat
    }
    fn sender_phone(&self) -> Option<String> {
        Some(self.0.from.e164().to_owned())
    }
    fn sender_lid(&self) -> Option<&str> {
        self.0.from_lid.as_deref()
    }
    fn push_name(&self) -> Option<&str> {
        self.0.push_name.as_deref()
    }
    fn content(&self) -> &wagate_core::MessageContent {
        &self.0.content
    }
    fn quoted_id(&self) -> Option<&str> {
        self.0.quoted_id.as_deref()
    }
    fn sent_at(&self) -> i64 {
        self.0.timestamp
    }
}

/// What the pump does after an event.
#[derive(Debug, PartialEq, Eq)]
enum AfterEvent {
    Continue,
    /// The connection ended.
    Ended,
    /// The event could not be handled (a received message not stored): the engine is told so.
    NotHandled,
}

/// Whether handling `event` changes the session's status or live codes.
fn changes_status(event: &EngineEvent) -> bool {
    !matches!(
        event,
        EngineEvent::Sent { .. }
            | EngineEvent::SendFailed { .. }
            | EngineEvent::Receipt { .. }
            | EngineEvent::Inbound(_)
    )
}

/// A stream event as webhook data: the same fields, without the `event` tag.
fn webhook_data(event: &StreamEvent) -> serde_json::Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.remove("event");
    }
    value
}

#[derive(Debug, Clone)]
pub struct LiveCode {
    pub code: String,
    pub expires_at: i64,
}

#[derive(Default)]
struct View {
    qr: Option<LiveCode>,
    pair_code: Option<LiveCode>,
}

struct Live {
    connection: Option<Arc<dyn Connection>>,
}

struct Runtime {
    id: SessionId,
    owner_id: String,
    events: broadcast::Sender<StreamEvent>,
    live: tokio::sync::Mutex<Live>,
    view: Mutex<View>,
    generation: AtomicU64,
    /// Serialises status changes (see the module docs).
    status_gate: tokio::sync::Mutex<()>,
    /// Wakes the dispatcher: a message was queued.
    work: Notify,
    /// A one-time password was queued: the dispatcher ends its batch of ordinary messages early
    /// so the password jumps the queue.
    urgent: AtomicBool,
    /// Whether the session is connected (the dispatcher sends only then).
    online: watch::Sender<bool>,
    deleted: Notify,
    is_deleted: AtomicBool,
    /// Until when WhatsApp refuses this account's messages to new contacts (error 463).
    restricted_until: AtomicI64,
}

impl Runtime {
    fn is_deleted(&self) -> bool {
        self.is_deleted.load(Ordering::SeqCst)
    }

    async fn connection(&self) -> Option<Arc<dyn Connection>> {
        self.live.lock().await.connection.clone()
    }

    fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, event: StreamEvent) {
        let _ = self.events.send(event); // no subscribers is fine
    }
}

#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engines: Engines,
    sessions_dir: PathBuf,
    runtimes: Mutex<HashMap<SessionId, Arc<Runtime>>>,
    /// Round-robin position per pool.
    pool_turns: Mutex<HashMap<String, usize>>,
    pipeline: Pipeline,
    pacing: SessionPacing,
    shutdown: watch::Receiver<bool>,
    receipts: mpsc::UnboundedSender<receipts::Receipt>,
}

/// The services a session's messages flow through.
#[derive(Clone)]
pub struct Pipeline {
    pub delivery: Arc<Delivery>,
    pub webhooks: Arc<Webhooks>,
    pub media: Arc<MediaStore>,
    /// Opens the sealed text of one-time-password messages right before sending.
    pub sealer: Arc<Sealer>,
    /// Tells the OTP service about its messages and about inbound texts.
    pub otp_feed: Arc<OtpFeed>,
}

/// Pacing defaults: per engine, and for one-time passwords.
#[derive(Debug, Clone)]
pub struct SessionPacing {
    pub web: Pacing,
    pub sandbox: Pacing,
    pub otp: Pacing,
}

pub struct CreateSession {
    pub id: Option<SessionId>,
    pub name: Option<String>,
    pub engine: EngineKind,
    pub webhook_url: Option<String>,
}

impl SessionManager {
    pub fn new(
        store: Store,
        engines: Engines,
        data_dir: PathBuf,
        pipeline: Pipeline,
        pacing: SessionPacing,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (receipts, pending_receipts) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            engines,
            sessions_dir: data_dir.join("sessions"),
            runtimes: Mutex::new(HashMap::new()),
            pool_turns: Mutex::new(HashMap::new()),
            pipeline,
            pacing,
            shutdown,
            receipts,
        });
        tokio::spawn(receipts::run(Arc::downgrade(&inner), pending_receipts));
        SessionManager { inner }
    }

    pub fn delivery(&self) -> &Delivery {
        &self.inner.pipeline.delivery
    }

    pub fn media(&self) -> &Arc<MediaStore> {
        &self.inner.pipeline.media
    }

    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.inner.pipeline.webhooks
    }

    pub fn sealer(&self) -> &Sealer {
        &self.inner.pipeline.sealer
    }

    /// The open connection of a connected session.
    pub async fn connection(&self, record: &SessionRecord) -> Result<Arc<dyn Connection>, SessionError> {
        let runtime = self.runtime(record);
        if !*runtime.online.borrow() {
            return Err(SessionError::Engine(EngineError::NotConnected));
        }
        runtime.connection().await.ok_or(SessionError::Engine(EngineError::NotConnected))
    }

    /// Wakes the session's dispatcher after a message was queued for it.
    pub fn notify_work(&self, record: &SessionRecord) {
        self.runtime(record).work.notify_one();
    }

    /// Wakes the session's dispatcher after a one-time password was queued for it.
    pub fn notify_urgent_work(&self, record: &SessionRecord) {
        let runtime = self.runtime(record);
        runtime.urgent.store(true, Ordering::SeqCst);
        runtime.work.notify_one();
    }

    /// The pacing of the session's ordinary messages: its own policy, or its engine's default.
    async fn session_pacing(&self, runtime: &Runtime) -> Pacing {
        match self.routing_record(runtime).await {
            Some(record) => self.effective_pacing(&record),
            None => self.inner.pacing.web,
        }
    }

    /// The session's record as routing sees it (from memory, see [`Store::owner_sessions`]),
    /// for work done per message.
    async fn routing_record(&self, runtime: &Runtime) -> Option<SessionRecord> {
        let sessions = self.store().owner_sessions(&runtime.owner_id).await.ok()?;
        sessions.into_iter().find(|record| record.id == runtime.id)
    }

    /// The pacing of one-time passwords, whichever session sends them.
    fn otp_pacing(&self) -> Pacing {
        self.inner.pacing.otp
    }

    /// WhatsApp refused a message with a reach-out restriction (463): the account may not
    /// start new conversations for a while.
    async fn on_send_restricted(&self, runtime: &Runtime) {
        let until = now_ms() + self.inner.pipeline.delivery.config.restriction_cooldown_ms as i64;
        runtime.restricted_until.store(until, Ordering::SeqCst);
        self.log(&runtime.id, "send_restricted", serde_json::json!({ "code": 463, "until": rfc3339(until) }))
            .await;
        if let Ok(record) = self.get(&runtime.id).await {
            self.after_health_change(&record).await;
        }
        runtime.publish(StreamEvent::Error {
            session_id: runtime.id.to_string(),
            code: "reach_out_restricted".into(),
            message:
                "WhatsApp refused a message to a new contact (463); the account is restricted for a while"
                    .into(),
        });
    }

    pub fn engines(&self) -> &Engines {
        &self.inner.engines
    }

    /// What the session's engine can do (nothing, when the engine is not available).
    pub fn capabilities(&self, record: &SessionRecord) -> Capabilities {
        self.inner.engines.capabilities(record.engine)
    }

    /// The code the session's engine always delivers to `phone`, for test numbers.
    pub fn fixed_test_code(&self, record: &SessionRecord, phone: &Phone, length: usize) -> Option<OtpCode> {
        let engine = self.inner.engines.get(record.engine).ok()?;
        engine.fixed_test_code(phone, length).and_then(|code| OtpCode::parse(&code).ok())
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn spec(&self, id: &SessionId) -> SessionSpec {
        SessionSpec { id: id.clone(), store_dir: self.inner.sessions_dir.join(id.as_str()) }
    }

    fn runtime(&self, record: &SessionRecord) -> Arc<Runtime> {
        let mut runtimes = self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = runtimes.get(&record.id) {
            return runtime.clone();
        }
        let runtime = Arc::new(Runtime {
            id: record.id.clone(),
            owner_id: record.owner_id.clone(),
            events: broadcast::channel(256).0,
            live: tokio::sync::Mutex::new(Live { connection: None }),
            view: Mutex::new(View::default()),
            generation: AtomicU64::new(0),
            status_gate: tokio::sync::Mutex::new(()),
            work: Notify::new(),
            urgent: AtomicBool::new(false),
            online: watch::Sender::new(false),
            deleted: Notify::new(),
            is_deleted: AtomicBool::new(false),
            restricted_until: AtomicI64::new(0),
        });
        runtimes.insert(record.id.clone(), runtime.clone());
        tokio::spawn(dispatcher::run(self.clone(), runtime.clone(), self.inner.shutdown.clone()));
        runtime
    }

    pub async fn create(
        &self,
        owner_id: &str,
        request: CreateSession,
    ) -> Result<SessionRecord, SessionError> {
        self.inner.engines.get(request.engine)?;
        if let Some(url) = &request.webhook_url {
            self.inner.pipeline.webhooks.check_url(url).await.map_err(SessionError::Webhook)?;
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
            self.inner
                .pipeline
                .webhooks
                .set_session_url(owner_id, &id, Some(url))
                .await
                .map_err(SessionError::Webhook)?;
        }
        Ok(record)
    }

    pub async fn get(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        self.store().session(id).await?.ok_or(SessionError::NotFound)
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
        self.inner
            .pipeline
            .webhooks
            .set_session_url(&record.owner_id, id, url)
            .await
            .map_err(SessionError::Webhook)?;
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
        self.store().set_session_auto_connect(id, true).await?;
        self.set_status(&runtime, SessionStatus::Connecting, None).await;
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
        self.store().set_session_auto_connect(id, false).await?;
        let runtime = self.runtime(&record);
        self.close(&runtime, "disconnected by request").await;
        self.get(id).await
    }

    pub async fn restart(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
        self.inner.engines.get(record.engine)?;
        let runtime = self.runtime(&record);
        self.close(&runtime, "restarting").await;
        self.connect(id).await
    }

    /// Unlinks the device: its credentials are removed and the next connect shows a QR code.
    pub async fn logout(&self, id: &SessionId) -> Result<SessionRecord, SessionError> {
        let record = self.get(id).await?;
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
        self.get(id).await
    }

    /// Stops the connection and removes the session with its credentials and activity log.
    pub async fn delete(&self, id: &SessionId) -> Result<(), SessionError> {
        let record = self.get(id).await?;
        let runtime = self.runtime(&record);
        let mut live = runtime.live.lock().await;
        runtime.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(connection) = live.connection.take() {
            connection.close().await;
        }
        self.forget_credentials(&record).await?;
        self.store().delete_session_webhooks(id, false).await?;
        self.inner.pipeline.webhooks.invalidate();
        self.store().delete_session(id).await?;
        runtime.publish(StreamEvent::Deleted { session_id: id.to_string() });
        runtime.is_deleted.store(true, Ordering::SeqCst);
        runtime.deleted.notify_waiters();
        self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    /// Asks for a pairing code for `phone` (opening the connection if needed).
    pub async fn pair_code(&self, id: &SessionId, phone: &Phone) -> Result<LiveCode, SessionError> {
        let record = self.get(id).await?;
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
        if record.status == SessionStatus::Connected {
            return Err(SessionError::AlreadyConnected);
        }
        let runtime = self.runtime(&record);
        let qr = runtime.view().qr.clone();
        qr.filter(|qr| qr.expires_at > now_ms()).ok_or(SessionError::NoQr(record.status))
    }

    /// The session's current state as events, then everything that happens next.
    pub async fn subscribe(
        &self,
        id: &SessionId,
    ) -> Result<(Vec<StreamEvent>, broadcast::Receiver<StreamEvent>), SessionError> {
        let record = self.get(id).await?;
        let runtime = self.runtime(&record);
        let receiver = runtime.events.subscribe();
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
        Ok((snapshot, receiver))
    }

    /// At start-up: sessions that were online come back; the others are marked offline.
    pub async fn restore(&self) -> Result<usize, SessionError> {
        let mut restored = 0;
        for record in self.store().sessions(None).await? {
            if record.auto_connect {
                match self.connect(&record.id).await {
                    Ok(_) => restored += 1,
                    Err(err) => tracing::warn!(session = %record.id, error = %err, "cannot restore session"),
                }
            } else if record.status.is_active() {
                self.store()
                    .set_session_status(&record.id, SessionStatus::Disconnected, Some("server restarted"))
                    .await?;
            }
        }
        Ok(restored)
    }

    /// Closes every connection, keeping credentials and `auto_connect`, so a restart restores them.
    pub async fn shutdown(&self) {
        let runtimes: Vec<Arc<Runtime>> =
            self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let closing = runtimes.iter().map(|runtime| self.close(runtime, "server stopped"));
        futures::future::join_all(closing).await;
    }

    async fn close(&self, runtime: &Runtime, reason: &str) {
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
        match self.inner.engines.get(record.engine) {
            Ok(engine) => engine.forget(&spec).await?,
            Err(_) => match tokio::fs::remove_dir_all(&spec.store_dir).await {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(SessionError::Engine(EngineError::Other(err.to_string()))),
            },
        }
        Ok(())
    }

    async fn set_status(&self, runtime: &Runtime, status: SessionStatus, reason: Option<&str>) {
        let _gate = runtime.status_gate.lock().await;
        self.write_status(runtime, status, reason).await;
    }

    /// Records and announces a status; the caller holds `status_gate`.
    async fn write_status(&self, runtime: &Runtime, status: SessionStatus, reason: Option<&str>) {
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
        self.inner
            .pipeline
            .webhooks
            .emit(&runtime.owner_id, Some(&runtime.id), "session.status", webhook_data(&event))
            .await;
        runtime.publish(event);
    }

    async fn log(&self, id: &SessionId, kind: &str, detail: serde_json::Value) {
        if let Err(err) = self.store().insert_session_event(id, kind, Some(&detail)).await {
            tracing::error!(session = %id, error = %err, kind, "cannot record session event");
        }
    }

    /// Handles one connection's events until it ends or a newer connection replaces it.
    async fn pump(self, runtime: Arc<Runtime>, generation: u64, mut events: EventReceiver) {
        while let Some(event) = events.recv().await {
            let gate = if changes_status(&event) { Some(runtime.status_gate.lock().await) } else { None };
            if runtime.generation.load(Ordering::SeqCst) != generation {
                break;
            }
            let after = self.on_event(&runtime, event).await;
            drop(gate);
            if after == AfterEvent::NotHandled {
                events.reject();
            }
            if after == AfterEvent::Ended {
                let mut live = runtime.live.lock().await;
                if runtime.generation.load(Ordering::SeqCst) == generation {
                    live.connection = None;
                    runtime.generation.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
        }
    }

    /// Status-changing events arrive with `status_gate` held (see [`changes_status`]).
    async fn on_event(&self, runtime: &Arc<Runtime>, event: EngineEvent) -> AfterEvent {
        let id = &runtime.id;
        let session_id = id.to_string();
        match event {
            EngineEvent::Qr { code, valid_for } => {
                let expires_at = now_ms() + valid_for.as_millis() as i64;
                let first = {
                    let mut view = runtime.view();
                    let first = view.qr.is_none();
                    view.qr = Some(LiveCode { code: code.clone(), expires_at });
                    view.pair_code = None;
                    first
                };
                if first {
                    self.write_status(runtime, SessionStatus::Qr, None).await;
                    self.log(id, "qr", serde_json::json!({ "valid_for_ms": valid_for.as_millis() as u64 }))
                        .await;
                }
                let event = StreamEvent::Qr { session_id, qr: code, expires_at: rfc3339(expires_at) };
                self.inner
                    .pipeline
                    .webhooks
                    .emit(&runtime.owner_id, Some(&runtime.id), "session.qr", webhook_data(&event))
                    .await;
                runtime.publish(event);
                AfterEvent::Continue
            }
            EngineEvent::QrExhausted => {
                *runtime.view() = View::default();
                let _ = self.store().set_session_auto_connect(id, false).await;
                self.write_status(runtime, SessionStatus::Disconnected, Some("qr_codes_exhausted")).await;
                self.log(id, "qr_codes_exhausted", serde_json::json!({})).await;
                runtime.publish(StreamEvent::Error {
                    session_id,
                    code: "qr_codes_exhausted".into(),
                    message: "no QR code was scanned in time; connect again for new codes".into(),
                });
                AfterEvent::Ended
            }
            EngineEvent::PairCode { code, valid_for } => {
                let expires_at = now_ms() + valid_for.as_millis() as i64;
                {
                    let mut view = runtime.view();
                    view.qr = None;
                    view.pair_code = Some(LiveCode { code: code.clone(), expires_at });
                }
                self.write_status(runtime, SessionStatus::PairingCode, None).await;
                runtime.publish(StreamEvent::PairCode { session_id, code, expires_at: rfc3339(expires_at) });
                AfterEvent::Continue
            }
            EngineEvent::Paired { account } => {
                self.record_account(id, &account).await;
                self.log(id, "paired", serde_json::json!({ "phone": account.phone.e164() })).await;
                runtime.publish(StreamEvent::Paired { session_id, account: AccountView::from(&account) });
                AfterEvent::Continue
            }
            EngineEvent::Connected { account } => {
                *runtime.view() = View::default();
                self.record_account(id, &account).await;
                self.write_status(runtime, SessionStatus::Connected, None).await;
                self.log(id, "connected", serde_json::json!({ "phone": account.phone.e164() })).await;
                AfterEvent::Continue
            }
            EngineEvent::Disconnected { reason, reconnecting } => {
                *runtime.view() = View::default();
                let status =
                    if reconnecting { SessionStatus::Connecting } else { SessionStatus::Disconnected };
                self.write_status(runtime, status, Some(&reason)).await;
                self.log(
                    id,
                    "disconnected",
                    serde_json::json!({ "reason": reason, "reconnecting": reconnecting }),
                )
                .await;
                if reconnecting { AfterEvent::Continue } else { AfterEvent::Ended }
            }
            EngineEvent::Reconnecting { attempt, retry_in, reason } => {
                *runtime.view() = View::default();
                let secs = retry_in.as_secs();
                let reason = if attempt == 0 {
                    format!("reconnecting in {secs} s: {reason}")
                } else {
                    format!("reconnecting: attempt {attempt} failed, next in {secs} s: {reason}")
                };
                self.write_status(runtime, SessionStatus::Connecting, Some(&reason)).await;
                self.log(
                    id,
                    "reconnecting",
                    serde_json::json!({ "attempt": attempt, "retry_in_ms": retry_in.as_millis() as u64, "reason": reason }),
                )
                .await;
                AfterEvent::Continue
            }
            EngineEvent::LoggedOut { reason } => {
                *runtime.view() = View::default();
                let _ = self.store().set_session_auto_connect(id, false).await;
                let _ = self.store().set_session_account(id, None).await;
                self.write_status(runtime, SessionStatus::LoggedOut, Some(&reason)).await;
                self.log(id, "logged_out", serde_json::json!({ "reason": reason })).await;
                AfterEvent::Ended
            }
            EngineEvent::Sent { id: message_id } => {
                let status = self.delivery().on_outcome(&message_id, Outcome::Sent).await;
                self.publish_message_status(runtime, message_id, status, None, false).await;
                AfterEvent::Continue
            }
            EngineEvent::SendFailed { id: message_id, failure } => {
                self.delivery().on_outcome(&message_id, Outcome::Failed(failure)).await;
                AfterEvent::Continue
            }
            EngineEvent::Receipt { ids, kind } => {
                for message_id in ids {
                    let receipt = receipts::Receipt { runtime: runtime.clone(), message_id, kind };
                    let _ = self.inner.receipts.send(receipt);
                }
                AfterEvent::Continue
            }
            EngineEvent::Inbound(message) => {
                if self.on_inbound(runtime, message).await {
                    AfterEvent::Continue
                } else {
                    AfterEvent::NotHandled
                }
            }
        }
    }

    async fn publish_message_status(
        &self,
        runtime: &Runtime,
        message_id: String,
        status: Option<MessageStatus>,
        reason: Option<String>,
        restricted: bool,
    ) {
        if let Some(status) = status {
            self.inner.pipeline.otp_feed.message_status(&message_id, status, reason.as_deref(), restricted);
            let event = StreamEvent::MessageStatus {
                session_id: runtime.id.to_string(),
                message_id,
                status: status.to_string(),
                reason,
            };
            self.inner
                .pipeline
                .webhooks
                .emit(&runtime.owner_id, Some(&runtime.id), "message.status", webhook_data(&event))
                .await;
            runtime.publish(event);
        }
    }

    /// Stores and announces a received message; false when it could not be stored (then it is
    /// not announced, and the network delivers it again).
    async fn on_inbound(&self, runtime: &Runtime, message: InboundMessage) -> bool {
        let me = self.routing_record(runtime).await.and_then(|r| r.account.map(|a| a.phone));
        match self.store().insert_inbound_message(&runtime.id, &StoredInbound(&message)).await {
            Ok(false) => return true, // seen before (the network may deliver twice)
            Ok(true) => {}
            Err(err) => {
                tracing::error!(session = %runtime.id, error = %err, "cannot store inbound message");
                return false;
            }
        }
        self.log(
            &runtime.id,
            "message_received",
            serde_json::json!({ "id": message.id, "from": message.from.e164() }),
        )
        .await;
        let data = serde_json::json!({
            "session_id": runtime.id.as_str(),
            "id": message.id,
            "chat": message.chat,
            "from": message.from.e164(),
            "from_jid": message.from.jid(),
            "from_lid": message.from_lid,
            "push_name": message.push_name,
            "to": me,
            "to_jid": me.as_deref().map(wagate_core::address::jid_of_stored),
            "type": message.content.kind(),
            "text": message.content.text(),
            "content": message.content,
            "quoted_id": message.quoted_id,
            "timestamp": rfc3339(message.timestamp),
            "timestamp_unix": message.timestamp / 1000,
        });
        self.inner
            .pipeline
            .webhooks
            .emit(&runtime.owner_id, Some(&runtime.id), "message.received", data)
            .await;
        if let Some(text) = message.content.text() {
            self.inner.pipeline.otp_feed.inbound(&runtime.id, message.from.e164(), text);
        }
        runtime.publish(StreamEvent::MessageReceived {
            session_id: runtime.id.to_string(),
            message_id: message.id,
            from: message.from.e164().to_owned(),
            chat: message.chat,
            timestamp: rfc3339(message.timestamp),
        });
        true
    }

    async fn record_account(&self, id: &SessionId, account: &Account) {
        let linked = LinkedAccount {
            phone: account.phone.e164().to_owned(),
            lid: account.lid.clone(),
            push_name: account.push_name.clone(),
        };
        if let Err(err) = self.store().set_session_account(id, Some(&linked)).await {
            tracing::error!(session = %id, error = %err, "cannot record the linked account");
        }
    }
}
