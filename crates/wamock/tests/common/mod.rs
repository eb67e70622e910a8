//! Drives a real whatsapp-rust `Bot` against a `WaMock`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wamock::{MockAccount, WaMock};
use whatsapp_rust::prelude::*;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;

/// The WhatsApp Web version the clients claim (pinned: no version fetch).
pub const WA_VERSION: (u32, u32, u32) = (2, 3000, 1_027_868_167);

/// How long any single expected event may take.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A running client and the events it emitted.
pub struct TestClient {
    pub handle: BotHandle,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
}

impl TestClient {
    /// Starts a bot on the SQLite store at `db` against the mock.
    pub async fn start(mock: &WaMock, db: &Path) -> TestClient {
        init_logging();
        let store = SqliteStore::new(db.to_str().expect("utf-8 path")).await.expect("sqlite store");
        let (tx, events) = mpsc::unbounded_channel();
        let bot = Bot::builder()
            .with_backend(store)
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(mock.url()))
            .with_version(WA_VERSION)
            .skip_history_sync()
            .on_event(move |event, _client| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .build()
            .await
            .expect("bot builds");
        TestClient { handle: bot.spawn(), events }
    }

    /// The client.
    pub fn client(&self) -> Arc<Client> {
        self.handle.client()
    }

    /// Waits for the first event `pick` accepts, skipping the others.
    pub async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&Event) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap_or_else(|| panic!("event stream ended waiting for {what}"));
            if let Some(found) = pick(&event) {
                return found;
            }
        }
    }

    /// Waits for `Connected`.
    pub async fn connected(&mut self) {
        self.wait_for("Connected", |event| matches!(event, Event::Connected(_)).then_some(())).await;
    }

    /// Waits for the first QR code.
    pub async fn qr(&mut self) -> String {
        self.wait_for("a QR code", |event| match event {
            Event::PairingQrCode(qr) => Some(qr.code.clone()),
            _ => None,
        })
        .await
    }

    /// Stops the client.
    pub async fn stop(self) {
        self.handle.shutdown().await;
    }
}

/// A test account.
pub fn account(phone: &str) -> MockAccount {
    MockAccount { phone: phone.to_owned(), lid: format!("9{phone}"), push_name: format!("Account {phone}") }
}

/// Pairs a fresh client by QR and waits until it is `Connected`.
pub async fn paired_client(mock: &WaMock, db: &Path, account: &MockAccount) -> TestClient {
    let mut client = TestClient::start(mock, db).await;
    let qr = client.qr().await;
    mock.scan(&qr, account).await.expect("scan");
    client.connected().await;
    client
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
