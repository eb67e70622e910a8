//! Three `wagate` processes on one PostgreSQL or MariaDB database: the node that runs the
//! sessions stops in the middle of a burst sent through the other two, once with `kill -9` and
//! once gracefully (SIGTERM). The survivors share its sessions evenly, connect every one within
//! 30 s and send every accepted message, in order.
//!
//! The sessions' WhatsApp state is on the nodes' disks (it is not in the database yet): the
//! survivors get a copy of the stopped node's session directories, as a shared data directory
//! would give them.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, call, link_sandbox_session, login};
use reqwest::Method;
use serde_json::{Value, json};
use wagate_testkit::{DatabaseKind, TestDatabase};

const PASSWORD: &str = "cluster-test-password";
const SECRET: &str = "one-secret-for-both-nodes-of-this-test";
const SESSIONS: usize = 4;
const PER_SESSION: usize = 60;

async fn start_node(data_dir: &Path, database_url: &str, node: &str) -> Server {
    let config = data_dir.join("wagate.toml");
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(&config, "[cluster]\nheartbeat_ms = 300\nlease_ms = 3000\n").unwrap();
    let env = [
        ("WAGATE_ADMIN_PASSWORD", PASSWORD),
        ("WAGATE_SECRET", SECRET),
        ("WAGATE_DATABASE_URL", database_url),
        ("WAGATE_NODE_ID", node),
        ("WAGATE_CONFIG", config.to_str().unwrap()),
    ];
    Server::start(data_dir, &env).await
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Posts messages for one session through `base` in order; returns the ids that got a 202.
async fn submit(
    base: String,
    token: String,
    session: usize,
    accepted_total: Arc<AtomicUsize>,
) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut accepted = Vec::new();
    for n in 0..PER_SESSION {
        let body = json!({ "to": format!("+62812345088{session:02}"), "text": format!("s{session} #{n}") });
        let (status, answer) =
            call(&client, Method::POST, format!("{base}/api/v1/sessions/s{session}/messages"), &token, body)
                .await;
        assert_eq!(status, 202, "the surviving node takes every message: {answer}");
        accepted.push(answer["id"].as_str().unwrap().to_owned());
        accepted_total.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    accepted
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Graceful,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_minus_nine_of_a_node_moves_its_sessions_and_loses_no_message() {
    stop_in_a_burst(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_of_a_node_moves_its_sessions_and_loses_no_message() {
    stop_in_a_burst(Stop::Graceful).await;
}

async fn stop_in_a_burst(stop: Stop) {
    let kind = match DatabaseKind::selected() {
        DatabaseKind::Sqlite => DatabaseKind::Postgres,
        server => server,
    };
    let database = TestDatabase::create(kind).await.unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_node(dirs[0].path(), database.url(), "node-a").await;
    let client = reqwest::Client::new();
    let token = login(&client, &a.base, "admin", PASSWORD).await;
    // Linked while node-a is alone, so that it runs them all.
    for n in 0..SESSIONS {
        link_sandbox_session(&client, &a.base, &token, &format!("s{n}"), &format!("+62812000008{n:02}"))
            .await;
    }
    let b = start_node(dirs[1].path(), database.url(), "node-b").await;
    let c = start_node(dirs[2].path(), database.url(), "node-c").await;
    let (_, sessions) =
        call(&client, Method::GET, format!("{}/api/v1/sessions", b.base), &token, Value::Null).await;
    assert!(sessions["sessions"].as_array().unwrap().iter().all(|s| s["node"] == "node-a"), "{sessions}");
    for survivor in &dirs[1..] {
        copy_dir(&dirs[0].path().join("sessions"), &survivor.path().join("sessions"));
    }

    // A burst through node-b and node-c, sent by node-a, which stops in the middle of it.
    let accepted_total = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..SESSIONS)
        .map(|n| {
            let base = if n % 2 == 0 { &b.base } else { &c.base };
            tokio::spawn(submit(base.clone(), token.clone(), n, accepted_total.clone()))
        })
        .collect();
    while accepted_total.load(Ordering::SeqCst) < SESSIONS * PER_SESSION / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped_at = Instant::now();
    match stop {
        Stop::Kill => a.kill().await,
        Stop::Graceful => {
            a.terminate().await;
        }
    }

    // Every session is connected on node-b or node-c within 30 s, half on each.
    let sessions = loop {
        let (_, sessions) =
            call(&client, Method::GET, format!("{}/api/v1/sessions", c.base), &token, Value::Null).await;
        let sessions = sessions["sessions"].as_array().unwrap().clone();
        if sessions
            .iter()
            .all(|s| s["node"] != "node-a" && !s["node"].is_null() && s["status"] == "connected")
        {
            break sessions;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(30),
            "not all sessions moved in 30 s ({stop:?}): {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "failover ({stop:?}): every session connected on a survivor {:?} after the stop",
        stopped_at.elapsed()
    );
    for node in ["node-b", "node-c"] {
        let runs = sessions.iter().filter(|s| s["node"] == node).count();
        assert_eq!(runs, SESSIONS / 2, "{node} runs its share ({stop:?}): {sessions:?}");
    }

    // Every accepted message goes out, in order per session.
    let mut accepted = Vec::new();
    for submitter in submitters {
        accepted.push(submitter.await.unwrap());
    }
    for ids in &accepted {
        let mut sent_at = Vec::new();
        for id in ids {
            let mut message = Value::Null;
            for _ in 0..300 {
                let (_, found) = call(
                    &client,
                    Method::GET,
                    format!("{}/api/v1/messages/{id}", b.base),
                    &token,
                    Value::Null,
                )
                .await;
                message = found;
                if matches!(message["status"].as_str(), Some("sent" | "delivered" | "read")) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(matches!(message["status"].as_str(), Some("sent" | "delivered" | "read")), "{message}");
            sent_at.push(message["sent_at"].as_str().unwrap().to_owned());
        }
        assert!(sent_at.windows(2).all(|w| w[0] <= w[1]), "sent in the order accepted: {sent_at:?}");
    }
    b.terminate().await;
    c.terminate().await;
}
