//! Dropped connections reconnect; a server-side logout logs the client out.

mod common;

use std::time::Duration;

use common::{TestClient, account, paired_client};
use wamock::{MockConfig, WaMock};
use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_reconnect_and_logout_is_final() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("alice.db");
    let alice = account("15550001111");
    let mut client = paired_client(&mock, &db, &alice).await;
    assert_eq!(mock.connection_count(), 1);

    mock.drop_connections(Some(&alice.phone));
    client.wait_for("Disconnected", |event| matches!(event, Event::Disconnected(_)).then_some(())).await;
    client.connected().await;
    assert_eq!(mock.online_accounts(), vec![alice.phone.clone()]);

    mock.drop_connections(None);
    client.connected().await;

    mock.logout(&alice.phone).await;
    client.wait_for("LoggedOut", |event| matches!(event, Event::LoggedOut(_)).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(mock.online_accounts().is_empty());
    client.stop().await;

    // The old credentials are refused at login.
    let mut again = TestClient::start(&mock, &db).await;
    let on_connect = again
        .wait_for("LoggedOut at login", |event| match event {
            Event::LoggedOut(logged_out) => Some(logged_out.on_connect),
            Event::Connected(_) => panic!("a logged-out device must not connect"),
            _ => None,
        })
        .await;
    assert!(on_connect);
    again.stop().await;
}
