//! The database's disk filling up under a burst, the database locked by someone else for ten
//! seconds, and a database server cut off from the network: sends are refused with 503 and a
//! stable code (never a 500), every message that was accepted is sent once the fault is gone,
//! and the server takes new sends again by itself.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestApp;
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use wagate_testkit::proxy::{Proxy, target_of, url_through};
use wagate_testkit::{DatabaseKind, TestDatabase};

/// A tmpfs of `size_mib` mounted on a fresh directory, unmounted on drop. Mounting needs root
/// (`scripts/test.sh` runs as root or through `sudo`); without it the test fails and says so.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_owned();
        let options = format!("size={size_mib}m,mode=0700");
        let mount_args = ["-t", "tmpfs", "-o", &options, "tmpfs", &path];
        let mounted = Command::new("mount").args(mount_args).status().is_ok_and(|s| s.success())
            || Command::new("sudo")
                .arg("-n")
                .arg("mount")
                .args(mount_args)
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            mounted,
            "this test mounts a small tmpfs to fill it: run it as root or with passwordless sudo"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.dir.path();
        if !Command::new("umount").arg("-l").arg(path).status().is_ok_and(|s| s.success()) {
            let _ = Command::new("sudo").args(["-n", "umount", "-l"]).arg(path).status();
        }
    }
}

/// Writes `path` until the file system has no space left.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 512] {
        let bytes = vec![0x5a; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
}

/// One send; its message id when accepted, or the refusal's status and code.
async fn send(app: &TestApp, token: &str, session: &str, n: usize) -> Result<String, (StatusCode, String)> {
    let response = app
        .request(reqwest::Method::POST, &format!("/api/v1/sessions/{session}/messages"), Some(token))
        // Ending in 1: none of the sandbox's numbers that fail on purpose.
        .json(&json!({ "to": format!("+62812{n:06}1"), "text": format!("burst message {n}") }))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").is_some();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == StatusCode::ACCEPTED {
        return Ok(body["id"].as_str().expect("an accepted message has an id").to_owned());
    }
    assert!(retry_after || status != StatusCode::SERVICE_UNAVAILABLE, "a 503 says when to retry: {body}");
    Err((status, body["code"].as_str().unwrap_or_default().to_owned()))
}

/// Waits until every message of `ids` has left the queue (sent, delivered or read).
async fn all_sent(app: &TestApp, token: &str, ids: &BTreeSet<String>) {
    for id in ids {
        let message = app
            .wait_for_message(token, id, |m| {
                matches!(m["status"].as_str(), Some("sent" | "delivered" | "read"))
            })
            .await;
        assert_eq!(message["id"], id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_sends_with_503_loses_nothing_and_recovers() {
    let disk = Tmpfs::mount(48);
    let data_dir: PathBuf = disk.path().join("data");
    let app = TestApp::start_on_sqlite(data_dir.clone(), |_| {}).await;
    let admin = app.admin().await;
    app.linked(&admin, "full", "+6281200000077").await;

    let filler = disk.path().join("filler");
    fill(&filler);

    // A burst against the full disk: every answer is 202 or 503 storage_full, until the
    // database cannot take more.
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    let mut n = 0;
    while refused == 0 && n < 20_000 {
        let answers = join_all((n..n + 32).map(|i| send(&app, &admin, "full", i))).await;
        n += 32;
        for answer in answers {
            match answer {
                Ok(id) => {
                    accepted.insert(id);
                }
                Err((status, code)) => {
                    assert_eq!((status, code.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "storage_full"));
                    refused += 1;
                }
            }
        }
    }
    assert!(refused > 0, "{n} sends and the full disk never refused one");
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server stays up on a full disk");

    // Space comes back: the server takes sends again without a restart, and sends everything
    // it accepted before.
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    loop {
        match send(&app, &admin, "full", n).await {
            Ok(id) => {
                accepted.insert(id);
                break;
            }
            Err(refusal) if started.elapsed() < Duration::from_secs(30) => {
                assert_eq!(refusal.0, StatusCode::SERVICE_UNAVAILABLE, "{refusal:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(refusal) => panic!("still refused 30 s after space came back: {refusal:?}"),
        }
    }
    for i in 1..=10 {
        accepted.insert(send(&app, &admin, "full", n + i).await.expect("accepted once there is space"));
    }
    all_sent(&app, &admin, &accepted).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_for_ten_seconds_refuses_with_503_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_on_sqlite(dir.path().to_path_buf(), |_| {}).await;
    let admin = app.admin().await;
    app.linked(&admin, "locked", "+6281200000078").await;

    // Someone else takes the database's write lock and keeps it for ten seconds.
    let url = format!("sqlite://{}", app.data_dir.join("wagate.db").display());
    let mut intruder = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut intruder).await.unwrap();
    let locked_at = Instant::now();

    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    let mut n = 0;
    while locked_at.elapsed() < Duration::from_secs(10) {
        let answers = join_all((n..n + 8).map(|i| send(&app, &admin, "locked", i))).await;
        n += 8;
        for answer in answers {
            match answer {
                Ok(id) => {
                    accepted.insert(id);
                }
                Err((status, code)) => {
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
                    );
                    refused += 1;
                }
            }
        }
        // Reads go on while the writer waits.
        let (status, _) = app.get("/api/v1/sessions/locked", &admin).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert!(refused > 0, "sends were refused while the database was locked");
    sqlx::query("ROLLBACK").execute(&mut intruder).await.unwrap();
    intruder.close().await.unwrap();

    for i in 0..10 {
        accepted.insert(send(&app, &admin, "locked", n + i).await.expect("accepted once the lock is gone"));
    }
    all_sent(&app, &admin, &accepted).await;
}

/// Sends in waves of eight until `until`; every answer is 202 or 503 `database_unavailable`.
/// Returns the accepted ids and how many were refused.
async fn sends_until(
    app: &TestApp,
    token: &str,
    session: &str,
    first: usize,
    until: Instant,
) -> (BTreeSet<String>, usize, usize) {
    let (mut accepted, mut refused, mut n) = (BTreeSet::new(), 0, first);
    while Instant::now() < until {
        let answers = join_all((n..n + 8).map(|i| send(app, token, session, i))).await;
        n += 8;
        for answer in answers {
            match answer {
                Ok(id) => {
                    accepted.insert(id);
                }
                Err((status, code)) => {
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
                    );
                    refused += 1;
                }
            }
        }
    }
    (accepted, refused, n)
}

/// The database server drops off the network for twelve seconds (every connection closed, new
/// ones refused) in the middle of a stream of sends. On the database server this run selected
/// (PostgreSQL when the run is on SQLite, which has no server to lose).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_server_cut_off_refuses_with_503_loses_nothing_and_recovers() {
    let kind = match DatabaseKind::selected() {
        DatabaseKind::Sqlite => DatabaseKind::Postgres,
        server => server,
    };
    let database = TestDatabase::create(kind).await.unwrap();
    let proxy = Proxy::start(target_of(database.url())).await;
    let url = url_through(database.url(), proxy.address());
    let app = TestApp::spawn_with(|config| config.database_url = Some(url)).await;
    let admin = app.admin().await;
    app.linked(&admin, "cut", "+6281200000079").await;

    let (mut accepted, _, n) =
        sends_until(&app, &admin, "cut", 0, Instant::now() + Duration::from_secs(1)).await;
    proxy.cut();
    let (during, refused, n) =
        sends_until(&app, &admin, "cut", n, Instant::now() + Duration::from_secs(12)).await;
    accepted.extend(during);
    assert!(refused > 0, "sends were refused while the database was away");
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the server stays up without its database");
    proxy.restore();

    // Back: new sends are taken again without a restart, and everything accepted is sent.
    let started = Instant::now();
    loop {
        match send(&app, &admin, "cut", n).await {
            Ok(id) => {
                accepted.insert(id);
                break;
            }
            Err(refusal) if started.elapsed() < Duration::from_secs(30) => {
                assert_eq!(refusal.0, StatusCode::SERVICE_UNAVAILABLE, "{refusal:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(refusal) => panic!("still refused 30 s after the database came back: {refusal:?}"),
        }
    }
    all_sent(&app, &admin, &accepted).await;
}
