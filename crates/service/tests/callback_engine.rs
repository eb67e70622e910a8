//! The engine boundary accepts an engine that is not a linked device: an API account whose
//! inbound messages arrive as HTTP callbacks, connected as soon as it is opened, with no QR
//! code. The services drive it without knowing what it is. Also, with that engine, how a node
//! that begins to stop leaves its sessions to the others.
//!
//! `EngineKind` has no variant for such an engine: the test engine reports itself as `web`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use wagate_core::{EngineKind, MessageContent, MessageStatus, Pacing, Phone, Role, SessionStatus};
use wagate_engine::{
    Account, Capabilities, Chat, Connection, Engine, EngineError, EngineEvent, EventSink, GroupInfo,
    InboundMessage, NumberCheck, OutgoingMessage, PairingCode, PendingAck, PendingAcks, SessionSpec,
};
use wagate_service::cluster::{Cluster, ClusterConfig};
use wagate_service::engines::Engines;
use wagate_service::media::{MediaConfig, MediaStore};
use wagate_service::metrics::Metrics;
use wagate_service::outbox::{DeliveryConfig, NewOutgoing, Outbox};
use wagate_service::seal::Sealer;
use wagate_service::sessions::{
    CreateSession, MessageObserver, Pipeline, SessionError, SessionManager, SessionPacing, StreamEvent,
};
use wagate_service::url_guard::UrlGuard;
use wagate_service::webhooks::{WebhookConfig, Webhooks};
use wagate_store::{NewUser, Store};

const ACCOUNT: &str = "+6281234500077";

/// An API account: "connected" once opened, answers sends through the ack registry, and gets
/// inbound messages pushed into its event sink by whoever receives the provider's callbacks.
#[derive(Default)]
struct CallbackEngine {
    sinks: Mutex<Vec<EventSink>>,
    sent: Arc<Mutex<Vec<OutgoingMessage>>>,
}

impl CallbackEngine {
    /// What the provider's HTTP callback handler would do with a received message.
    fn callback(&self, message: InboundMessage) -> bool {
        let sink = self.sinks.lock().unwrap().last().cloned().expect("a session is open");
        sink.emit(EngineEvent::Inbound(message))
    }
}

fn account() -> Account {
    Account { phone: Phone::parse(ACCOUNT, None).unwrap(), lid: None, push_name: Some("API".into()) }
}

#[async_trait]
impl Engine for CallbackEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Web
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn open(&self, _spec: SessionSpec, events: EventSink) -> Result<Arc<dyn Connection>, EngineError> {
        events.emit(EngineEvent::Connected { account: account() });
        self.sinks.lock().unwrap().push(events);
        Ok(Arc::new(ApiConnection { acks: PendingAcks::default(), sent: self.sent.clone() }))
    }
}

struct ApiConnection {
    acks: PendingAcks,
    sent: Arc<Mutex<Vec<OutgoingMessage>>>,
}

#[async_trait]
impl Connection for ApiConnection {
    async fn send(&self, message: OutgoingMessage) -> Result<PendingAck, EngineError> {
        let ack = self.acks.expect(&message.id);
        let id = message.id.clone();
        self.sent.lock().unwrap().push(message);
        // The provider's API answers the request: accepted.
        self.acks.resolve(&id, Ok(()));
        Ok(ack)
    }

    async fn pair_with_code(&self, _phone: &Phone) -> Result<PairingCode, EngineError> {
        unreachable!("the services ask the capabilities first")
    }

    async fn check_numbers(&self, _phones: &[Phone]) -> Result<Vec<NumberCheck>, EngineError> {
        unreachable!("the services ask the capabilities first")
    }

    async fn set_typing(&self, _chat: &Chat) -> Result<(), EngineError> {
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, EngineError> {
        unreachable!("the services ask the capabilities first")
    }

    async fn logout(&self) -> Result<(), EngineError> {
        unreachable!("the services ask the capabilities first")
    }

    async fn close(&self) {}
}

struct NoObserver;

impl MessageObserver for NoObserver {
    fn message_status(&self, _: &str, _: MessageStatus, _: Option<&str>, _: bool) {}
    fn inbound(&self, _: &wagate_core::SessionId, _: &str, _: &str) {}
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A node on a fresh database, a `CallbackEngine` its only engine, with one session not
/// connected yet.
struct Node {
    dir: tempfile::TempDir,
    store: Store,
    owner_id: String,
    engine: Arc<CallbackEngine>,
    sessions: SessionManager,
    id: wagate_core::SessionId,
}

async fn node_with_a_session(shutdown: watch::Receiver<bool>) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    store.migrate().await.unwrap();
    let owner =
        store.insert_user(NewUser { username: "owner", password_hash: "x", role: Role::User }).await.unwrap();
    let engine = Arc::new(CallbackEngine::default());
    let sessions = manager(&store, dir.path(), engine.clone(), shutdown).await;
    let request =
        CreateSession { id: None, name: Some("api".into()), engine: EngineKind::Web, webhook_url: None };
    let id = sessions.create(&owner.id, request).await.unwrap().id;
    Node { dir, store, owner_id: owner.id, engine, sessions, id }
}

/// The session manager of node-a with `engine` as its only engine.
async fn manager(
    store: &Store,
    dir: &std::path::Path,
    engine: Arc<CallbackEngine>,
    shutdown: watch::Receiver<bool>,
) -> SessionManager {
    manager_of("node-a", store, dir, engine, shutdown).await
}

/// The session manager of the node `node` with `engine` as its only engine.
async fn manager_of(
    node: &str,
    store: &Store,
    dir: &std::path::Path,
    engine: Arc<CallbackEngine>,
    shutdown: watch::Receiver<bool>,
) -> SessionManager {
    let engines = Engines::new().with_engine(engine);
    let sealer = Arc::new(Sealer::new(&[7; 32]));
    let metrics = Arc::new(Metrics::default());
    let webhooks =
        Arc::new(Webhooks::new(store.clone(), WebhookConfig::default(), sealer.clone(), metrics.clone()));
    let media = Arc::new(MediaStore::new(dir, MediaConfig::default(), UrlGuard::new(false)));
    let outbox = Outbox::new(store.clone(), DeliveryConfig::default(), metrics.clone());
    let pacing = SessionPacing { web: Pacing::default(), sandbox: Pacing::default(), otp: Pacing::default() };
    let pipeline = Pipeline { outbox, webhooks, media, sealer, observer: Arc::new(NoObserver), metrics };
    let cluster =
        Cluster::join(store.clone(), node.into(), None, None, ClusterConfig::default()).await.unwrap();
    SessionManager::new(store.clone(), engines, dir.to_owned(), pipeline, pacing, cluster, shutdown)
}

#[tokio::test]
async fn an_api_account_engine_sends_and_receives_without_special_cases() {
    let (_stop, shutdown) = watch::channel(false);
    let Node { dir: _dir, store, owner_id, engine, sessions, id } = node_with_a_session(shutdown).await;
    let connected = sessions.connect(&id).await.unwrap();
    eventually("connected", || async { sessions.get(&id).await.unwrap().status == SessionStatus::Connected })
        .await;
    let linked = sessions.get(&id).await.unwrap();
    assert_eq!(linked.account.as_ref().map(|a| a.phone.as_str()), Some(ACCOUNT));
    assert_eq!(connected.id, id);

    // What a linked device offers and this engine does not is refused, clearly.
    assert!(matches!(sessions.qr(&id).await, Err(SessionError::NotSupported(_))));
    let phone = Phone::parse("+6281234500001", None).unwrap();
    assert!(matches!(sessions.pair_code(&id, &phone).await, Err(SessionError::NotSupported(_))));
    assert!(matches!(sessions.groups(&linked).await, Err(SessionError::NotSupported(_))));
    assert!(matches!(
        sessions.check_numbers(&linked, std::slice::from_ref(&phone)).await,
        Err(SessionError::NotSupported(_))
    ));
    assert!(matches!(sessions.logout(&id).await, Err(SessionError::NotSupported(_))));

    // A message is accepted, sent by the dispatcher, and acknowledged through the send outcome.
    let content = MessageContent::Text { body: "hello".into(), mentions: Vec::new(), reply_to: None };
    let accepted = sessions
        .outbox()
        .accept(NewOutgoing {
            owner_id: &owner_id,
            session_id: &id,
            pool: None,
            recipient: phone.e164(),
            content: &content,
            priority: 0,
            expires_at: None,
            idempotency_key: None,
            request_hash: None,
        })
        .await
        .unwrap();
    assert!(accepted.created);
    sessions.notify_work(&linked);
    let message_id = accepted.message.id.clone();
    eventually("sent", || async {
        sessions.outbox().message(&message_id).await.unwrap().status == MessageStatus::Sent
    })
    .await;
    assert_eq!(engine.sent.lock().unwrap()[0].id, message_id);

    // An inbound message arrives as a callback and is stored.
    let inbound = InboundMessage {
        id: "CALLBACK1".into(),
        from: Phone::parse("+6281234500002", None).unwrap(),
        from_lid: None,
        push_name: Some("Customer".into()),
        chat: "6281234500002@s.whatsapp.net".into(),
        content: MessageContent::Text { body: "hi there".into(), mentions: Vec::new(), reply_to: None },
        quoted_id: None,
        timestamp: wagate_store::now_ms(),
    };
    let chat = inbound.chat.clone();
    assert!(engine.callback(inbound));
    eventually("stored", || async {
        let stored = store.inbound_messages(&id, &chat, None, 10).await.unwrap();
        stored.iter().any(|m| m.wa_id == "CALLBACK1")
    })
    .await;
}

/// A node that began to stop claims no session: what it claimed then would be cut off when its
/// connections close and its database pool shuts, instead of going to a node that stays.
#[tokio::test]
async fn a_node_that_began_to_stop_claims_no_session() {
    let (stop, shutdown) = watch::channel(false);
    let Node { dir, store, engine, sessions, id, .. } = node_with_a_session(shutdown).await;
    store.set_session_auto_connect(&id, true).await.unwrap();

    stop.send_replace(true);
    assert_eq!(sessions.restore().await.unwrap(), 0);
    assert_eq!(sessions.node_of(&id).await.unwrap(), None, "no lease taken");
    assert!(engine.sinks.lock().unwrap().is_empty(), "no connection opened");

    // The same node, not stopping, claims it.
    let (_running, shutdown) = watch::channel(false);
    let sessions = manager(&store, dir.path(), engine.clone(), shutdown).await;
    assert_eq!(sessions.restore().await.unwrap(), 1);
    assert_eq!(sessions.node_of(&id).await.unwrap().as_deref(), Some("node-a"));
}

/// A session whose lease another node gave up a moment ago (a hand-over, a node that stopped)
/// is claimed only a heartbeat later: the client that node closed may still be logged in for a
/// moment, and WhatsApp must never see the device logged in on two nodes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_another_node_just_let_go_is_claimed_a_heartbeat_later() {
    let (stop_a, shutdown_a) = watch::channel(false);
    let Node { dir, store, engine, sessions: node_a, id, .. } = node_with_a_session(shutdown_a).await;
    store.set_session_auto_connect(&id, true).await.unwrap();
    assert_eq!(node_a.restore().await.unwrap(), 1);
    // What the session needs to run (this engine keeps it on disk) is on node-b too: here
    // both nodes share one data directory.
    std::fs::create_dir_all(dir.path().join("sessions").join(id.as_str())).unwrap();
    let (_stop_b, shutdown_b) = watch::channel(false);
    let node_b = manager_of("node-b", &store, dir.path(), engine.clone(), shutdown_b).await;
    assert_eq!(node_b.restore().await.unwrap(), 0, "node-a runs it");

    // node-a stops: it closes the session and gives its lease up.
    let let_go = std::time::Instant::now();
    stop_a.send_replace(true);
    node_a.shutdown().await;
    assert_eq!(node_b.restore().await.unwrap(), 0, "let go just now: not claimed yet");
    assert_eq!(node_b.node_of(&id).await.unwrap(), None);

    eventually("claimed by node-b", || async {
        node_b.node_of(&id).await.unwrap().as_deref() == Some("node-b")
    })
    .await;
    let heartbeat = Duration::from_millis(ClusterConfig::default().heartbeat_ms);
    assert!(let_go.elapsed() >= heartbeat, "claimed {:?} after it was let go", let_go.elapsed());
}

/// A connect asked on another node right after a node let the session go (a disconnect there)
/// also waits a heartbeat before it takes the session, for the same reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_on_another_node_right_after_a_disconnect_waits_a_heartbeat() {
    let (_stop_a, shutdown_a) = watch::channel(false);
    let Node { dir, store, engine, sessions: node_a, id, .. } = node_with_a_session(shutdown_a).await;
    std::fs::create_dir_all(dir.path().join("sessions").join(id.as_str())).unwrap();
    let (_stop_b, shutdown_b) = watch::channel(false);
    let node_b = manager_of("node-b", &store, dir.path(), engine.clone(), shutdown_b).await;

    node_a.connect(&id).await.unwrap();
    assert_eq!(node_b.node_of(&id).await.unwrap().as_deref(), Some("node-a"));
    node_a.disconnect(&id).await.unwrap();
    let let_go = std::time::Instant::now();
    node_b.connect(&id).await.unwrap();
    let heartbeat = Duration::from_millis(ClusterConfig::default().heartbeat_ms);
    assert!(let_go.elapsed() >= heartbeat, "taken {:?} after it was let go", let_go.elapsed());
    assert_eq!(node_b.node_of(&id).await.unwrap().as_deref(), Some("node-b"));
}

/// A connect asked for the moment the session shows that its connection ended (here: the
/// account logged out) opens a new connection; it used to find the ended one still in place,
/// answer as if connected, and open nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_right_after_the_connection_ended_opens_a_new_one() {
    let (_stop, shutdown) = watch::channel(false);
    let Node { dir: _dir, engine, sessions, id, .. } = node_with_a_session(shutdown).await;

    for round in 1..=5 {
        sessions.connect(&id).await.unwrap();
        eventually("connected", || async {
            sessions.get(&id).await.unwrap().status == SessionStatus::Connected
        })
        .await;
        let mut watching = sessions.subscribe(&id).await.unwrap();
        let sink = engine.sinks.lock().unwrap().last().cloned().unwrap();
        assert!(sink.emit(EngineEvent::LoggedOut { reason: "removed on the phone".into() }));
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), watching.events.recv()).await;
            if let StreamEvent::Status { status: SessionStatus::LoggedOut, .. } = event.unwrap().unwrap() {
                break;
            }
        }
        sessions.connect(&id).await.unwrap();
        assert_eq!(
            engine.sinks.lock().unwrap().len(),
            2 * round,
            "round {round}: a new connection was opened"
        );
        eventually("connected again", || async {
            sessions.get(&id).await.unwrap().status == SessionStatus::Connected
        })
        .await;
        // Ended again by a logout, for the next round to start from a fresh connection.
        let sink = engine.sinks.lock().unwrap().last().cloned().unwrap();
        assert!(sink.emit(EngineEvent::LoggedOut { reason: "removed on the phone".into() }));
        eventually("logged out", || async {
            sessions.get(&id).await.unwrap().status == SessionStatus::LoggedOut
        })
        .await;
    }
}
