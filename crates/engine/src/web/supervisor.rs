//! The task that owns a session's client: builds it, turns its events into ours, and builds a
//! new one when it stops for a reason that is not final.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;
use whatsapp_rust::async_channel;
use whatsapp_rust::bot::Bot;
use whatsapp_rust::transport::{TokioWebSocketTransportFactory, Transport, TransportEvent, TransportFactory};
use whatsapp_rust::types::events::{Event, EventHandler};

use super::attempts::{FailedAttempt, retry_delay};
use super::backend::StateBackend;
use super::durable::StoreBeforeAck;
use super::events::{Ending, Translator};
use super::session::{Shared, remove_credentials};
use crate::EngineEvent;

pub(super) async fn supervise(shared: Arc<Shared>) {
    let mut restarts = 0u32;
    loop {
        if shared.is_stopping() {
            return;
        }
        let ending = run_client(&shared).await;
        shared.set_client(None);
        match ending {
            Ending::Stopped => return,
            Ending::LoggedOut { reason } => {
                if let Err(err) = remove_credentials(&shared).await {
                    tracing::warn!(session = %shared.spec.id, error = %err, "cannot remove credentials");
                }
                shared.events.emit(EngineEvent::LoggedOut { reason });
                return;
            }
            Ending::QrExhausted => {
                shared.events.emit(EngineEvent::QrExhausted);
                return;
            }
            Ending::Final { reason } => {
                shared.events.emit(EngineEvent::Disconnected { reason, reconnecting: false });
                return;
            }
            Ending::Unexpected { reason } => {
                if shared.is_stopping() {
                    return;
                }
                let retry_in = retry_delay(restarts);
                restarts += 1;
                tracing::warn!(session = %shared.spec.id, %reason, "the WhatsApp client stopped; starting a new one");
                shared.events.emit(EngineEvent::Reconnecting { attempt: restarts, retry_in, reason });
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = shared.stop.notified() => return,
                }
            }
        }
    }
}

/// Runs one client until it stops, and says why it stopped.
async fn run_client(shared: &Arc<Shared>) -> Ending {
    let store = StateBackend::new(shared.spec.state.clone());
    if let Err(err) = super::import::import_local_store(&shared.spec.store_dir, &store).await {
        return Ending::Final { reason: format!("cannot import the session's local store: {err}") };
    }
    let (forwarder, mut events) = EventForwarder::new();
    let transport = AttemptCounter { inner: transport_factory(shared), shared: shared.clone() };
    let mut builder = Bot::builder()
        .with_backend(store)
        .with_transport_factory(transport)
        .with_event_handler(forwarder)
        .with_inbound_durability_hook(StoreBeforeAck(shared.clone()))
        .skip_history_sync();
    if let Some(version) = shared.config.version {
        builder = builder.with_version(version);
    }
    let bot = match builder.build().await {
        Ok(bot) => bot,
        // What fails here is the session's storage, which building reads and writes (and tries
        // out): a database away for a moment must not end the session for good.
        Err(err) => return Ending::Unexpected { reason: format!("cannot start the WhatsApp client: {err}") },
    };
    let mut handle = bot.spawn();
    let client = handle.client();
    shared.set_client(Some(client.clone()));
    if shared.is_stopping() {
        client.disconnect().await;
    }

    let mut translator = Translator::new(shared.clone());
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => {
                    if translator.on_event(&event).await {
                        // The client will not recover from this one by itself.
                        client.disconnect().await;
                    }
                }
                None => break,
            },
            _ = &mut handle => break,
        }
    }
    while let Ok(event) = events.try_recv() {
        translator.on_event(&event).await;
    }
    translator.ending(shared.is_stopping())
}

fn transport_factory(shared: &Shared) -> TokioWebSocketTransportFactory {
    let factory = TokioWebSocketTransportFactory::new();
    match shared.config.server_url() {
        Some(url) => factory.with_url(url),
        None => factory,
    }
}

/// Hands the client's events, in order, to the supervisor.
struct EventForwarder(mpsc::UnboundedSender<Arc<Event>>);

impl EventForwarder {
    fn new() -> (Self, mpsc::UnboundedReceiver<Arc<Event>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), rx)
    }
}

impl EventHandler for EventForwarder {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(event);
    }
}

/// Counts connection attempts, which the client does not report, so the session says
/// `connecting` with the attempt number instead of nothing while nothing works.
struct AttemptCounter {
    inner: TokioWebSocketTransportFactory,
    shared: Arc<Shared>,
}

impl AttemptCounter {
    fn report(&self, failed: FailedAttempt, reason: String) {
        let FailedAttempt { attempt, retry_in } = failed;
        self.shared.events.emit(EngineEvent::Reconnecting { attempt, retry_in, reason });
    }
}

#[async_trait]
impl TransportFactory for AttemptCounter {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), whatsapp_rust::anyhow::Error>
    {
        if let Some(failed) = self.shared.attempts.start() {
            self.report(failed, "the connection closed before WhatsApp answered".into());
        }
        match self.inner.create_transport().await {
            Ok(transport) => Ok(transport),
            Err(err) => {
                self.report(self.shared.attempts.failed_now(), format!("cannot connect: {err:#}"));
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;

    use super::super::WebConfig;
    use super::super::session::WebSession;
    use crate::state::{MemoryState, SessionState, StateChange, StateEntry, StateError};
    use crate::{Connection, EngineEvent, EventSink, SessionSpec};

    /// A session's state whose database refuses every write, as one that is away does.
    #[derive(Default)]
    struct Unwritable(MemoryState);

    fn away() -> StateError {
        StateError::Failed("the database cannot be reached".into())
    }

    #[async_trait]
    impl SessionState for Unwritable {
        async fn get(&self, space: &str, scope: &str, names: &[&str]) -> Result<Vec<StateEntry>, StateError> {
            self.0.get(space, scope, names).await
        }
        async fn list(&self, space: &str, scope: Option<&str>) -> Result<Vec<StateEntry>, StateError> {
            self.0.list(space, scope).await
        }
        async fn max_name(&self, space: &str) -> Result<Option<String>, StateError> {
            self.0.max_name(space).await
        }
        async fn any_prefixed(&self, spaces: &[&str], prefixes: &[&str]) -> Result<bool, StateError> {
            self.0.any_prefixed(spaces, prefixes).await
        }
        async fn change(&self, _changes: Vec<StateChange>) -> Result<Vec<u64>, StateError> {
            Err(away())
        }
        async fn take(
            &self,
            _space: &str,
            _scope: &str,
            _name: &str,
        ) -> Result<Option<StateEntry>, StateError> {
            Err(away())
        }
        async fn exists(&self) -> Result<bool, StateError> {
            self.0.exists().await
        }
        async fn forget(&self) -> Result<(), StateError> {
            Err(away())
        }
    }

    #[tokio::test]
    async fn a_client_that_cannot_be_built_for_want_of_its_database_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SessionSpec {
            id: wagate_core::SessionId::parse("away").unwrap(),
            state: std::sync::Arc::new(Unwritable::default()),
            store_dir: dir.path().join("away"),
        };
        let (sink, mut events) = EventSink::channel();
        let session = WebSession::open(spec, sink, std::sync::Arc::new(WebConfig::default()));

        let first = tokio::time::timeout(Duration::from_secs(30), events.recv()).await.unwrap().unwrap();
        match first {
            EngineEvent::Reconnecting { attempt, reason, .. } => {
                assert_eq!(attempt, 1);
                assert!(reason.contains("cannot start the WhatsApp client"), "{reason}");
            }
            other => panic!("expected a new attempt to be announced, not {other:?}"),
        }
        session.close().await;
    }
}
