//! Three `wagate` processes on one PostgreSQL or MariaDB database: the node that runs the
//! sessions stops in the middle of a burst sent through the other two, once with `kill -9` and
//! once gracefully (SIGTERM). The survivors share its sessions evenly, connect every one within
//! 30 s and send every accepted message, in order.
//!
//! Sandbox sessions keep their simulated network on the nodes' disks: the survivors get a copy
//! of the stopped node's session directories. `web` sessions keep their WhatsApp keys in the
//! database: linked on one node through the fake WhatsApp server, they log in on the survivors
//! with nothing copied, without a QR code, and never twice at once.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, call, link_sandbox_session, login};
use reqwest::Method;
use serde_json::{Value, json};
use wagate_testkit::{DatabaseKind, TestDatabase};
use wamock::{MockAccount, MockConfig, WaMock};

const PASSWORD: &str = "cluster-test-password";
const SECRET: &str = "one-secret-for-both-nodes-of-this-test";
const SESSIONS: usize = 4;

/// One cluster at a time: each test runs three nodes (and the web tests 60 WhatsApp clients),
/// and its 30 s deadline is about failover, not about sharing two cores with another cluster.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const PER_SESSION: usize = 60;

async fn start_node(data_dir: &Path, database_url: &str, node: &str) -> Server {
    start_node_with(data_dir, database_url, node, &[]).await
}

async fn start_node_with(data_dir: &Path, database_url: &str, node: &str, extra: &[(&str, &str)]) -> Server {
    let config = data_dir.join("wagate.toml");
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::write(&config, "[cluster]\nheartbeat_ms = 300\nlease_ms = 3000\n").unwrap();
    let mut env = vec![
        ("WAGATE_ADMIN_PASSWORD", PASSWORD),
        ("WAGATE_SECRET", SECRET),
        ("WAGATE_DATABASE_URL", database_url),
        ("WAGATE_NODE_ID", node),
        ("WAGATE_CONFIG", config.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    Server::start(data_dir, &env).await
}

/// Posts messages for one session through `base` in order; returns the ids that got a 202.
async fn submit(
    base: String,
    token: String,
    session: usize,
    accepted_total: Arc<AtomicUsize>,
) -> Vec<String> {
    let to = format!("+62812345088{session:02}");
    submit_to(base, token, format!("s{session}"), to, PER_SESSION, accepted_total).await
}

/// Posts `count` texts (`"<session> #<n>"`) from `session` to `to` through `base`, in order;
/// returns their ids.
async fn submit_to(
    base: String,
    token: String,
    session: String,
    to: String,
    count: usize,
    accepted_total: Arc<AtomicUsize>,
) -> Vec<String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut accepted = Vec::new();
    for n in 0..count {
        let body = json!({ "to": to, "text": format!("{session} #{n}") });
        let (status, answer) =
            call(&client, Method::POST, format!("{base}/api/v1/sessions/{session}/messages"), &token, body)
                .await;
        assert_eq!(status, 202, "the surviving node takes every message: {answer}");
        accepted.push(answer["id"].as_str().unwrap().to_owned());
        accepted_total.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    accepted
}

/// A database the nodes share: the run's own, or PostgreSQL when the run is on SQLite.
async fn shared_database() -> TestDatabase {
    let kind = match DatabaseKind::selected() {
        DatabaseKind::Sqlite => DatabaseKind::Postgres,
        server => server,
    };
    TestDatabase::create(kind).await.unwrap()
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
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let database = shared_database().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_node(dirs[0].path(), database.url(), "node-a").await;
    let client = reqwest::Client::new();
    let token = login(&client, &a.base, "admin", PASSWORD).await;
    // Linked while node-a is alone, so that it runs them all.
    for n in 0..SESSIONS {
        link_sandbox_session(&client, &a.base, &token, &format!("s{n}"), &format!("+62812000008{n:02}"))
            .await;
    }
    // node-b and node-c, joining, take their share of them over (nothing of a session is on
    // node-a's disk): the burst runs while sessions move, and node-a stops with its share.
    let b = start_node(dirs[1].path(), database.url(), "node-b").await;
    let c = start_node(dirs[2].path(), database.url(), "node-c").await;

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
        Stop::Kill => {
            a.kill().await;
        }
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

/// Prints each node's warnings and its lines about the sessions `ids`, to tell what went wrong.
fn print_lines_about(ids: &[&str], nodes: &[(&str, &[Value])]) {
    let quoted: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
    for (name, lines) in nodes.iter() {
        for line in *lines {
            let text = line.to_string();
            if line["level"] != "INFO" || quoted.iter().any(|id| text.contains(id.as_str())) {
                println!("{name}: {text}");
            }
        }
    }
}

const WEB_SESSIONS: usize = 60;
/// 3,000 messages in all.
const WEB_PER_SESSION: usize = 50;
/// Any version works against the fake server; pinning it keeps the client off the network.
const WEB_VERSION: &str = "2.3000.1029384756";

/// Links a `web` session through `base`: its QR code, scanned by the fake phone of `account`.
async fn link_web_session(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    mock: &WaMock,
    account: &MockAccount,
) {
    let body = json!({ "id": id, "engine": "web", "connect": true });
    let (status, created) = call(client, Method::POST, format!("{base}/api/v1/sessions"), token, body).await;
    assert_eq!(status, 201, "{created}");
    // A QR code may be replaced by the next one while the phone scans it: scan the next one.
    let mut scanned = Err(wamock::MockError::UnknownQr);
    let linking = Instant::now();
    for _ in 0..20 {
        let qr = loop {
            let (status, qr) =
                call(client, Method::GET, format!("{base}/api/v1/sessions/{id}/qr"), token, Value::Null)
                    .await;
            if status == 200 {
                break qr["qr"].as_str().unwrap().to_owned();
            }
            assert!(linking.elapsed() < Duration::from_secs(90), "{id} never showed a QR code: {qr}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        scanned = mock.scan(&qr, account).await;
        if scanned.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    scanned.unwrap_or_else(|err| panic!("the fake phone cannot scan {id}'s QR code: {err}"));
    let started = Instant::now();
    loop {
        let (_, record) =
            call(client, Method::GET, format!("{base}/api/v1/sessions/{id}"), token, Value::Null).await;
        if record["status"] == "connected" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{id} never connected: {record}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let pacing = json!({ "pacing": { "min_delay_ms": 0, "max_delay_ms": 0, "typing": false } });
    let (status, answer) =
        call(client, Method::PATCH, format!("{base}/api/v1/sessions/{id}"), token, pacing).await;
    assert_eq!(status, 200, "{answer}");
}

/// `web` sessions linked on node-a move to node-b and node-c when node-a stops in the middle of
/// a burst: their keys come from the database (nothing is copied between the nodes' disks),
/// they log in without a QR code within 30 s, WhatsApp never sees one device logged in twice at
/// once, and every accepted message reaches WhatsApp under its own id, in order per chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_sessions_move_with_their_keys_from_the_database_when_a_node_is_killed() {
    web_sessions_move_when_a_node_stops(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn web_sessions_move_with_their_keys_from_the_database_when_a_node_stops_gracefully() {
    web_sessions_move_when_a_node_stops(Stop::Graceful).await;
}

async fn web_sessions_move_when_a_node_stops(stop: Stop) {
    let _alone = ONE_CLUSTER_AT_A_TIME.lock().await;
    let database = shared_database().await;
    let mock = WaMock::start(MockConfig::default()).await.unwrap();
    let url = mock.url();
    let web = [("WAGATE_WEB_SERVER_URL", url.as_str()), ("WAGATE_WEB_VERSION", WEB_VERSION)];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start_node_with(dirs[0].path(), database.url(), "node-a", &web).await;
    let client = reqwest::Client::new();
    let token = login(&client, &a.base, "admin", PASSWORD).await;
    let accounts: Vec<MockAccount> = (0..WEB_SESSIONS)
        .map(|n| MockAccount {
            phone: format!("628130001{n:02}"),
            lid: format!("7700000001{n:02}"),
            push_name: format!("Desk {n}"),
        })
        .collect();
    let contacts: Vec<String> =
        (0..WEB_SESSIONS).map(|n| mock.add_contact(&format!("628130002{n:02}")).phone).collect();
    // Linked at once (a fresh link takes the client ~10 s), while node-a is alone.
    let links: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(n, account)| {
            let (client, base, token, mock, account) =
                (client.clone(), a.base.clone(), token.clone(), mock.clone(), account.clone());
            tokio::spawn(async move {
                link_web_session(&client, &base, &token, &format!("w{n}"), &mock, &account).await
            })
        })
        .collect();
    for link in links {
        link.await.unwrap();
    }
    let mut b = start_node_with(dirs[1].path(), database.url(), "node-b", &web).await;
    let mut c = start_node_with(dirs[2].path(), database.url(), "node-c", &web).await;

    let accepted_total = Arc::new(AtomicUsize::new(0));
    let submitters: Vec<_> = (0..WEB_SESSIONS)
        .map(|n| {
            let base = if n % 2 == 0 { &b.base } else { &c.base };
            let to = format!("+{}", contacts[n]);
            tokio::spawn(submit_to(
                base.clone(),
                token.clone(),
                format!("w{n}"),
                to,
                WEB_PER_SESSION,
                accepted_total.clone(),
            ))
        })
        .collect();
    while accepted_total.load(Ordering::SeqCst) < WEB_SESSIONS * WEB_PER_SESSION / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped_at = Instant::now();
    let stopped_logs = match stop {
        Stop::Kill => a.kill().await,
        Stop::Graceful => a.terminate().await,
    };

    loop {
        let (_, sessions) =
            call(&client, Method::GET, format!("{}/api/v1/sessions", b.base), &token, Value::Null).await;
        let sessions = sessions["sessions"].as_array().unwrap().clone();
        let moved = |s: &Value| s["node"] != "node-a" && !s["node"].is_null() && s["status"] == "connected";
        if sessions.iter().all(moved) {
            break;
        }
        if stopped_at.elapsed() >= Duration::from_secs(30) {
            let stuck: Vec<&Value> = sessions.iter().filter(|s| !moved(s)).collect();
            let ids: Vec<&str> = stuck.iter().map(|s| s["id"].as_str().unwrap()).collect();
            print_lines_about(
                &ids,
                &[("node-a", &stopped_logs), ("node-b", b.logs_so_far()), ("node-c", c.logs_so_far())],
            );
            panic!(
                "not all web sessions moved in 30 s ({stop:?}): {stuck:?}; warnings of the survivors above"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "failover of web sessions ({stop:?}): every one logged in on a survivor {:?} after the stop",
        stopped_at.elapsed()
    );

    let mut accepted: Vec<Vec<String>> = Vec::new();
    for submitter in submitters {
        accepted.push(submitter.await.unwrap());
    }
    let expected: usize = accepted.iter().map(Vec::len).sum();
    // What WhatsApp received: each id once (a resend under the same id is what WhatsApp drops),
    // in order per chat.
    let mut first_seen: Vec<String> = Vec::new();
    let mut text_of: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    while text_of.len() < expected {
        let received = mock
            .next_message(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("only {} of {expected} messages reached WhatsApp", text_of.len()));
        let text = received.text.unwrap_or_default();
        match text_of.get(&received.id) {
            Some(earlier) => assert_eq!(earlier, &text, "one id, one message"),
            None => {
                text_of.insert(received.id.clone(), text);
                first_seen.push(received.id);
            }
        }
    }
    for (n, ids) in accepted.iter().enumerate() {
        let arrived: Vec<&String> = first_seen.iter().filter(|id| ids.contains(id)).collect();
        assert_eq!(arrived, ids.iter().collect::<Vec<_>>(), "w{n}: every message, in the order accepted");
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(text_of[id], format!("w{n} #{i}"), "under its own id");
        }
    }
    let overlapping = mock.overlapping_logins();
    if !overlapping.is_empty() {
        let sessions: Vec<String> = overlapping
            .iter()
            .filter_map(|phone| accounts.iter().position(|account| &account.phone == phone))
            .map(|n| format!("w{n}"))
            .collect();
        let ids: Vec<&str> = sessions.iter().map(String::as_str).collect();
        print_lines_about(
            &ids,
            &[("node-a", &stopped_logs), ("node-b", b.logs_so_far()), ("node-c", c.logs_so_far())],
        );
        panic!(
            "a device was logged in twice at once: {overlapping:?} ({sessions:?}); the nodes' lines above"
        );
    }
    b.terminate().await;
    c.terminate().await;
}
