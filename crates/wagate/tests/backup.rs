//! `wagate backup` while the server runs, then `wagate restore` on an empty machine: the
//! linked session logs in again without a QR code and the messages are there.

mod common;

use std::time::Duration;

use common::{Server, call, login, wagate};
use reqwest::Method;
use serde_json::{Value, json};

async fn run(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    wagate(data_dir).args(args).output().await.unwrap()
}

async fn status_of(client: &reqwest::Client, base: &str, token: &str) -> Value {
    call(client, Method::GET, format!("{base}/api/v1/sessions/shop"), token, Value::Null).await.1["status"]
        .clone()
}

#[tokio::test]
async fn a_backup_of_a_running_server_restores_linked_sessions_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("WAGATE_ADMIN_PASSWORD", "backup-admin-password")];
    let client = reqwest::Client::new();
    let server = Server::start(&data, &env).await;
    let base = server.base.clone();
    let token = login(&client, &base, "admin", "backup-admin-password").await;
    let created = json!({ "id": "shop", "engine": "sandbox", "connect": true });
    assert_eq!(call(&client, Method::POST, format!("{base}/api/v1/sessions"), &token, created).await.0, 201);
    let scan = || {
        call(
            &client,
            Method::POST,
            format!("{base}/api/v1/sandbox/sessions/shop/scan"),
            &token,
            json!({ "phone": "+6281234567891" }),
        )
    };
    let mut linked = false;
    for _ in 0..100 {
        if scan().await.0 == 200 {
            linked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(linked);
    let message = json!({ "to": "+6281234567001", "text": "kept across the restore" });
    let (status, sent) =
        call(&client, Method::POST, format!("{base}/api/v1/sessions/shop/messages"), &token, message).await;
    assert_eq!(status, 202, "{sent}");

    // Backed up while the server runs.
    let archive = dir.path().join("wagate-backup.tar");
    let backup = run(&data, &["backup", archive.to_str().unwrap()]).await;
    assert!(backup.status.success(), "{}", String::from_utf8_lossy(&backup.stderr));
    assert!(String::from_utf8_lossy(&backup.stdout).contains("databases"));
    server.terminate().await;

    // A new machine: nothing but the archive.
    std::fs::remove_dir_all(&data).unwrap();
    let restore = run(&data, &["restore", archive.to_str().unwrap()]).await;
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let again = run(&data, &["restore", archive.to_str().unwrap()]).await;
    assert!(!again.status.success(), "existing data is not overwritten without --replace");
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"));

    let server = Server::start(&data, &env).await;
    let base = server.base.clone();
    let token = login(&client, &base, "admin", "backup-admin-password").await;
    let mut status = Value::Null;
    for _ in 0..100 {
        status = status_of(&client, &base, &token).await;
        if status == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, "connected", "the restored device logs in without a QR code");
    let id = sent["id"].as_str().unwrap();
    let (status, restored) =
        call(&client, Method::GET, format!("{base}/api/v1/messages/{id}"), &token, Value::Null).await;
    assert_eq!((status, restored["id"].as_str()), (200, Some(id)), "{restored}");
    server.terminate().await;

    // Restoring over data keeps it aside.
    let replaced = run(&data, &["restore", "--replace", archive.to_str().unwrap()]).await;
    assert!(replaced.status.success(), "{}", String::from_utf8_lossy(&replaced.stderr));
    let kept = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("data.before-restore-"));
    assert!(kept, "the replaced data is kept beside the data directory");
}
