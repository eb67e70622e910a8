//! QR pairing, the 515 restart, and logging in again from a kept store.

mod common;

use std::time::{Duration, Instant};

use common::{TestClient, account};
use wamock::{MockConfig, WaMock};
use whatsapp_rust::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qr_scan_pairs_connects_and_a_restart_logs_in_without_qr() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("client.db");
    let alice = account("15550001111");

    let mut client = TestClient::start(&mock, &db).await;
    let qr = client.qr().await;
    assert!(qr.split(',').count() >= 4, "QR payload: {qr}");
    assert!(mock.online_accounts().is_empty());

    let scanned = Instant::now();
    mock.scan(&qr, &alice).await.expect("scan");
    let paired = client
        .wait_for("PairSuccess", |event| match event {
            Event::PairSuccess(success) => Some(success.id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(paired.user, alice.phone);
    client.connected().await;
    assert!(
        scanned.elapsed() < Duration::from_secs(5),
        "the app-state key share should spare the 10 s wait: {:?}",
        scanned.elapsed()
    );
    assert_eq!(mock.online_accounts(), vec![alice.phone.clone()]);
    client.stop().await;

    // A new process on the same store: IK handshake, no QR.
    let mut restarted = TestClient::start(&mock, &db).await;
    let started = Instant::now();
    restarted
        .wait_for("Connected without QR", |event| match event {
            Event::PairingQrCode(_) => panic!("a paired client must not show a QR code"),
            Event::Connected(_) => Some(()),
            _ => None,
        })
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.online_accounts(), vec![alice.phone.clone()]);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_code_request_shows_the_code() {
    let mock = WaMock::start(MockConfig::default()).await.expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut client = TestClient::start(&mock, &dir.path().join("client.db")).await;
    client.qr().await;
    let code = client
        .client()
        .pair_with_code(whatsapp_rust::pair_code::PairCodeOptions {
            phone_number: "15550002222".into(),
            ..Default::default()
        })
        .await
        .expect("pairing code");
    let shown = client
        .wait_for("PairingCode", |event| match event {
            Event::PairingCode(shown) => Some(shown.code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(shown, code);
    client.stop().await;
}
