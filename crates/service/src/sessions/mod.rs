//! Sessions: one WhatsApp account each, its connection, its live state and its dispatcher.
//!
//! Each session has a [`Runtime`](runtime::Runtime). Operations on one session are serialised
//! by its `live` lock; the engine's events are handled by a pump task per connection (see
//! [`events`]). Every connection gets a new generation number, so late events of a closed
//! connection are ignored. Status changes pass the runtime's `status_gate`, where a pump
//! re-checks its generation: a closed connection's late QR code can never land after the
//! "disconnected" that closed it. An event that ends the connection is handled under the
//! `live` lock as well (taken first, in the order operations take them), so the connection is
//! let go before anyone can act on the status that announces its end.

mod announce;
mod balance;
mod dispatcher;
mod engine_state;
mod error;
mod events;
mod inbound;
mod inbound_json;
mod lifecycle;
mod observer;
mod ownership;
mod pools;
mod runtime;
mod stream;
mod wakeups;

pub use error::SessionError;
pub use observer::MessageObserver;
pub use pools::PoolStrategy;
pub use runtime::LiveCode;
pub use stream::{AccountView, StreamEvent, Subscription};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use wagate_core::{EngineKind, OtpCode, Pacing, Phone, SessionId};
use wagate_engine::{Capabilities, Connection, EngineError, SessionSpec};
use wagate_store::{SessionRecord, Store};

use self::announce::Announcer;
use self::ownership::Holding;
use self::runtime::Runtime;
use super::audit::{Actor, AuditLog, Entry, Level};
use super::cluster::Cluster;
use super::engines::Engines;
use super::media::MediaStore;
use super::metrics::Metrics;
use super::outbox::Outbox;
use super::round_robin::Turns;
use super::seal::Sealer;
use super::webhooks::Webhooks;

#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    engines: Engines,
    sessions_dir: PathBuf,
    runtimes: Mutex<HashMap<SessionId, Arc<Runtime>>>,
    /// This node among the others: which sessions it runs is decided through leases.
    cluster: Arc<Cluster>,
    /// The sessions whose lease this node holds: under which epoch, and until when it may act
    /// on them.
    held: Mutex<HashMap<SessionId, Holding>>,
    /// Sessions this node failed to connect, and when (not tried again at once).
    failed_connects: Mutex<HashMap<SessionId, i64>>,
    /// What evening out the sessions over the nodes remembers.
    balance: Mutex<balance::Balance>,
    /// Round-robin position per pool.
    pool_turns: Turns,
    pipeline: Pipeline,
    pacing: SessionPacing,
    shutdown: watch::Receiver<bool>,
    /// Held while this node claims sessions: shutdown waits for it, so that no session is
    /// claimed while (or after) the connections are closed and the leases handed over.
    claiming: tokio::sync::Mutex<()>,
    /// Sessions with new work, for the other nodes (see [`wakeups`]).
    wakeups: mpsc::UnboundedSender<SessionId>,
    announced: Mutex<Option<mpsc::UnboundedReceiver<SessionId>>>,
    /// Whether the database's wake-ups reach this node.
    listening: AtomicBool,
}

/// The services a session's messages flow through.
#[derive(Clone)]
pub struct Pipeline {
    pub outbox: Arc<Outbox>,
    pub webhooks: Arc<Webhooks>,
    pub media: Arc<MediaStore>,
    /// Opens the sealed text of one-time-password messages right before sending.
    pub sealer: Arc<Sealer>,
    /// Hears about message statuses and inbound texts (the OTP service's feed).
    pub observer: Arc<dyn MessageObserver>,
    pub metrics: Arc<Metrics>,
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
    /// Also installs the announcement of the outbox's status changes.
    pub fn new(
        store: Store,
        engines: Engines,
        data_dir: PathBuf,
        pipeline: Pipeline,
        pacing: SessionPacing,
        cluster: Arc<Cluster>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (wakeups, announced) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            engines,
            sessions_dir: data_dir.join("sessions"),
            runtimes: Mutex::new(HashMap::new()),
            cluster,
            held: Mutex::new(HashMap::new()),
            failed_connects: Mutex::new(HashMap::new()),
            balance: Mutex::default(),
            pool_turns: Turns::default(),
            pipeline,
            pacing,
            shutdown,
            claiming: tokio::sync::Mutex::new(()),
            wakeups,
            announced: Mutex::new(Some(announced)),
            listening: AtomicBool::new(false),
        });
        inner.pipeline.outbox.set_listener(Arc::new(Announcer(Arc::downgrade(&inner))));
        SessionManager { inner }
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.inner.pipeline.outbox
    }

    pub fn media(&self) -> &Arc<MediaStore> {
        &self.inner.pipeline.media
    }

    pub fn webhooks(&self) -> &Arc<Webhooks> {
        &self.inner.pipeline.webhooks
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.pipeline.metrics
    }

    pub fn sealer(&self) -> &Sealer {
        &self.inner.pipeline.sealer
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

    /// Refuses with [`SessionError::NotSupported`] when the session's engine cannot do `what`.
    /// (An engine that is not available refuses later, when the session needs it.)
    fn require(
        &self,
        record: &SessionRecord,
        what: &'static str,
        can: fn(&Capabilities) -> bool,
    ) -> Result<(), SessionError> {
        match self.inner.engines.get(record.engine) {
            Ok(engine) if !can(&engine.capabilities()) => Err(SessionError::NotSupported(what)),
            _ => Ok(()),
        }
    }

    /// The open connection of a connected session.
    pub async fn connection(&self, record: &SessionRecord) -> Result<Arc<dyn Connection>, SessionError> {
        let runtime = self.runtime(record);
        if !*runtime.online.borrow() {
            self.here(&record.id).await?;
            return Err(SessionError::Engine(EngineError::NotConnected));
        }
        runtime.connection().await.ok_or(SessionError::Engine(EngineError::NotConnected))
    }

    /// Wakes the session's dispatcher after a message was queued for it.
    pub fn notify_work(&self, record: &SessionRecord) {
        self.runtime(record).work.notify_one();
        self.announce_work(&record.id);
    }

    /// Wakes the session's dispatcher after a one-time password was queued for it.
    pub fn notify_urgent_work(&self, record: &SessionRecord) {
        let runtime = self.runtime(record);
        runtime.urgent.store(true, Ordering::SeqCst);
        runtime.work.notify_one();
        self.announce_work(&record.id);
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

    /// Whether other nodes share the database (see [`Cluster::has_company`]).
    fn has_company(&self) -> bool {
        self.inner.cluster.has_company()
    }

    /// The pacing of one-time passwords, whichever session sends them.
    fn otp_pacing(&self) -> Pacing {
        self.inner.pacing.otp
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    fn spec(&self, id: &SessionId) -> SessionSpec {
        SessionSpec {
            id: id.clone(),
            state: engine_state::DatabaseState::new(self, id),
            store_dir: self.inner.sessions_dir.join(id.as_str()),
        }
    }

    /// The session's runtime; a new one starts its dispatcher.
    fn runtime(&self, record: &SessionRecord) -> Arc<Runtime> {
        let mut runtimes = self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(runtime) = runtimes.get(&record.id) {
            return runtime.clone();
        }
        let runtime = Arc::new(Runtime::new(record));
        runtimes.insert(record.id.clone(), runtime.clone());
        tokio::spawn(dispatcher::run(self.clone(), runtime.clone(), self.inner.shutdown.clone()));
        runtime
    }

    /// The session's runtime, if it has one (it is not created here).
    fn live_runtime(&self, id: &SessionId) -> Option<Arc<Runtime>> {
        self.inner.runtimes.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    async fn log(&self, id: &SessionId, kind: &str, detail: serde_json::Value) {
        if let Err(err) = self.store().insert_session_event(id, kind, Some(&detail)).await {
            tracing::error!(session = %id, error = %err, kind, "cannot record session event");
        }
    }

    /// An event of the session's own (the network's doing) that belongs in the activity log
    /// too, as `session.<kind>`.
    async fn note(&self, runtime: &Runtime, kind: &str, level: Level, detail: serde_json::Value) {
        self.log(&runtime.id, kind, detail.clone()).await;
        let entry = Entry::new(format!("session.{kind}"), level, Actor::system())
            .owner(Some(&runtime.owner_id))
            .session(runtime.id.as_str())
            .detail(detail);
        AuditLog::new(self.store().clone()).record(entry).await;
    }
}
