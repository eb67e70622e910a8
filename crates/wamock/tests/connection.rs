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

/// Two copies of one linked device logged in at once are counted; one client logging in again
/// after it stopped is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_logged_in_twice_at_once_is_counted() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("bob.db");
    let bob = account("15550002222");
    let client = paired_client(&mock, &db, &bob).await;
    client.stop().await;
    let mut again = TestClient::start(&mock, &db).await;
    again.connected().await;
    assert!(mock.overlapping_logins().is_empty(), "one connection at a time");

    // A copy of the device's store, as a second process with the same keys would have.
    let copy = dir.path().join("bob-copy.db");
    std::fs::copy(&db, &copy).expect("copy the store");
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("bob.db{suffix}"));
        if side.exists() {
            std::fs::copy(&side, dir.path().join(format!("bob-copy.db{suffix}"))).expect("copy");
        }
    }
    let mut twin = TestClient::start(&mock, &copy).await;
    twin.connected().await;
    assert_eq!(mock.overlapping_logins(), vec![bob.phone.clone()]);
    twin.stop().await;
    again.stop().await;
}
