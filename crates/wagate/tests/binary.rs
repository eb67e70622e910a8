//! The `wagate` binary as users run it: a real process, its logs, its signals and its CLI.

mod common;

use std::time::Duration;

use common::{BIN, Server, call, login};
use serde_json::{Value, json};

#[tokio::test]
async fn first_start_restart_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let mut server = Server::start(dir.path(), &[]).await;

    // First start: a random admin password, logged exactly once.
    let created = server.wait_for_log(|l| l["username"] == "admin" && l["password"].is_string()).await;
    let password = created["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 16);
    let token = login(&client, &server.base, "admin", &password).await;

    let base = server.base.clone();
    let (status, _) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/api/v1/sessions"),
        &token,
        json!({ "id": "shop", "engine": "sandbox", "connect": true }),
    )
    .await;
    assert_eq!(status, 201);
    let mut linked = false;
    for _ in 0..100 {
        let (status, _) = call(
            &client,
            reqwest::Method::POST,
            format!("{base}/api/v1/sandbox/sessions/shop/scan"),
            &token,
            json!({ "phone": "+6281234567890" }),
        )
        .await;
        if status == 200 {
            linked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(linked, "the session showed a QR code that could be scanned");
    // Every request is logged with its request id.
    server.wait_for_log(|l| l["span"]["request_id"].is_string() || l["request_id"].is_string()).await;

    let logs = server.terminate().await;
    assert!(logs.iter().any(|l| l["message"] == "stopped"), "shutdown completes");

    // Second start on the same data: no new admin, the session logs in again without a QR code.
    let mut server = Server::start(dir.path(), &[]).await;
    let (status, session) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/sessions/shop", server.base),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "tokens stay valid across restarts (the secret is kept): {session}");
    let mut status_now = session["status"].clone();
    for _ in 0..100 {
        if status_now == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        status_now = call(
            &client,
            reqwest::Method::GET,
            format!("{}/api/v1/sessions/shop", server.base),
            &token,
            Value::Null,
        )
        .await
        .1["status"]
            .clone();
    }
    assert_eq!(status_now, "connected");
    let (status, qr) = call(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/sessions/shop/qr", server.base),
        &token,
        Value::Null,
    )
    .await;
    assert_eq!((status, qr["code"].as_str()), (409, Some("already_connected")), "no new QR code");
    server.wait_for_log(|l| l["message"] == "sessions restored" && l["restored"] == 1).await;
    let logs = server.terminate().await;
    assert!(!logs.iter().any(|l| l["password"].is_string()), "the password was shown only on first start");
}

/// A stop asked while the server starts (here at its first log line, before it serves) is
/// carried out once it has started: a clean shutdown, not the end of the process by the
/// signal's default action.
#[tokio::test]
async fn a_stop_during_the_start_is_a_clean_shutdown() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let mut command = common::wagate(dir.path());
    command.arg("serve").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    let mut child = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = vec![lines.next_line().await.unwrap().expect("a first log line")];
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await {
        seen.push(line);
    }
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "a clean exit: {exit:?}; logs: {seen:#?}");
    assert!(seen.iter().any(|line| line.contains("\"shutting down\"")), "{seen:#?}");
}

/// The server keeps its memory in small pages (see `wagate_server::memory`): the kernel reports
/// transparent huge pages off for the process, whatever the system's setting.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let pid = server.child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let thp = status.lines().find_map(|line| line.strip_prefix("THP_enabled:")).map(str::trim);
    if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
        assert_eq!(thp, Some("0"), "huge pages are on for the server:\n{status}");
    } else {
        assert!(matches!(thp, None | Some("0")), "a kernel without huge pages: {thp:?}");
    }
    server.terminate().await;
}

#[tokio::test]
async fn cli_manages_users_and_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(BIN);
        command.env_clear().env("WAGATE_DATA_DIR", dir.path()).args(args);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let migrate = run(&["migrate"], &[]);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let added = run(&["user", "add", "ops", "--role", "user"], &[("WAGATE_NEW_PASSWORD", "ops-password-1")]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let duplicate = run(&["user", "add", "ops"], &[]);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("already exists"));
    let listed = String::from_utf8(run(&["user", "list"], &[]).stdout).unwrap();
    assert!(listed.contains("ops\tuser\tactive"), "{listed}");

    let created =
        run(&["apikey", "create", "--user", "ops", "--name", "backend", "--scopes", "sessions,read"], &[]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let out = String::from_utf8(created.stdout).unwrap();
    let key = out.lines().find_map(|l| l.strip_prefix("key: ")).unwrap().to_owned();
    let id = out.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_owned();
    let admin_scope = run(&["apikey", "create", "--user", "ops", "--name", "x", "--scopes", "admin"], &[]);
    assert!(!admin_scope.status.success(), "a user's key cannot get the admin scope");

    let passwd = run(&["user", "passwd", "ops"], &[("WAGATE_NEW_PASSWORD", "ops-password-2")]);
    assert!(passwd.status.success());

    let server = Server::start(dir.path(), &[("WAGATE_ADMIN_PASSWORD", "unused-admin-password")]).await;
    let client = reqwest::Client::new();
    let (status, me) =
        call(&client, reqwest::Method::GET, format!("{}/api/v1/auth/me", server.base), &key, Value::Null)
            .await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "ops");
    let response = client
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"username": "ops", "password": "ops-password-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the new password works");

    let revoked = run(&["apikey", "revoke", &id], &[]);
    assert!(revoked.status.success());
    let listing = String::from_utf8(run(&["apikey", "list"], &[]).stdout).unwrap();
    assert!(listing.contains("revoked") && !listing.contains(&key), "{listing}");
    // The server drops the keys it remembers when it sees the revocation (`idle_poll_ms`).
    let revoked_at = std::time::Instant::now();
    loop {
        let (status, _) =
            call(&client, reqwest::Method::GET, format!("{}/api/v1/auth/me", server.base), &key, Value::Null)
                .await;
        if status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(3),
            "a key revoked from the CLI stops working on the running server: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    server.terminate().await;
}

#[test]
fn version_names_the_features() {
    let output = std::process::Command::new(BIN).arg("version").output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with(&format!("wagate {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(text.contains("features: sandbox, web"), "{text}");
    // Tests run a test build (it may talk to the fake WhatsApp server); CI checks that the
    // release binary says otherwise.
    assert!(text.contains("test-server"), "{text}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        ("PORT", "eighty", "PORT"),
        ("WAGATE_LOG_FORMAT", "xml", "WAGATE_LOG_FORMAT"),
        ("WAGATE_SANDBOX", "perhaps", "true or false"),
    ];
    for (name, value, expected) in cases {
        let output = std::process::Command::new(BIN)
            .env_clear()
            .env("WAGATE_DATA_DIR", dir.path())
            .env(name, value)
            .arg("serve")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected) && stderr.contains(value), "{name}: {stderr}");
    }
    let file = dir.path().join("wagate.toml");
    std::fs::write(&file, "port = \"high\"\n").unwrap();
    let output = std::process::Command::new(BIN)
        .env_clear()
        .arg("--config")
        .arg(&file)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("wagate.toml"));
}
