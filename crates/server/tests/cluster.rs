//! Several nodes on one database: they see each other, the once-per-cluster jobs run on exactly
//! one of them and move at once when it stops, and a node with another server secret is
//! refused at start.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use common::TestApp;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wagate_server::app::StartError;
use wagate_server::{App, Config};
use wagate_testkit::DatabaseKind;

fn node(id: &'static str) -> impl FnOnce(&mut Config) {
    move |config| {
        config.node_id = Some(id.into());
        // Short, but long enough that a node slowed down by a busy machine keeps its leases (a
        // node closes its sessions when a renewal has not come back a heartbeat before the end).
        config.cluster.heartbeat_ms = 100;
        config.cluster.lease_ms = 3_000;
        // QR codes that last the whole test: sessions waiting for a scan move between nodes.
        config.sandbox_timings.qr_first_timeout_ms = 60_000;
        config.sandbox_timings.qr_timeout_ms = 60_000;
    }
}

/// The cluster as `app` sees it, once `done` says so (5 s at most).
async fn cluster_until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..250 {
        let (status, view) = app.get("/api/v1/cluster", token).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        if done(&view) {
            return view;
        }
        last = view;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the cluster never reached the expected state: {last}");
}

fn runs_jobs(view: &Value) -> Vec<&str> {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|node| node["runs_jobs"] == true)
        .map(|node| node["id"].as_str().unwrap())
        .collect()
}

/// A webhook receiver that answers slowly, so that deliveries stay due for a while: a second
/// node delivering them too would be seen as the same event twice.
#[derive(Clone, Default)]
struct SlowReceiver {
    calls: Arc<Mutex<HashMap<String, usize>>>,
}

async fn slow_hook(State(receiver): State<SlowReceiver>, headers: HeaderMap) -> AxumStatus {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = headers["webhook-id"].to_str().unwrap().to_owned();
    *receiver.calls.lock().unwrap().entry(id).or_default() += 1;
    AxumStatus::OK
}

impl SlowReceiver {
    async fn start() -> (SlowReceiver, String) {
        let receiver = SlowReceiver::default();
        let app = axum::Router::new().route("/hook", post(slow_hook)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    async fn until(&self, count: usize) -> HashMap<String, usize> {
        for _ in 0..1_000 {
            if self.calls.lock().unwrap().len() >= count {
                return self.calls.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("only {} of {count} webhook events arrived", self.calls.lock().unwrap().len());
    }
}

async fn send(app: &TestApp, token: &str, session: &str, n: usize) {
    let (status, body) = app
        .post(
            &format!("/api/v1/sessions/{session}/messages"),
            token,
            json!({ "to": format!("+62812{n:06}1"), "text": format!("message {n}") }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_on_one_node_and_move_at_once_when_it_stops() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let b = a.spawn_beside(node("node-b")).await;
    let admin = a.admin().await;

    // Both nodes see both; the first one runs the jobs.
    let view = cluster_until(&b, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;
    assert_eq!(view["node"], "node-b");
    assert_eq!(runs_jobs(&view), ["node-a"], "{view}");
    let (status, problem) = b.get("/api/v1/cluster", &b.create_user(&admin, "tenant").await).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_scope")));

    // Webhook deliveries: every event exactly once, though both nodes see the same queue.
    let (receiver, url) = SlowReceiver::start().await;
    let (status, hook) =
        b.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.status"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    a.linked(&admin, "on-a", "+6281200000201").await;
    for n in 0..10 {
        send(&a, &admin, "on-a", n).await;
    }
    // sent, delivered and read of ten messages
    receiver.until(30).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls = receiver.calls.lock().unwrap().clone();
    let twice: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "events delivered more than once: {twice:?}");

    // A graceful stop hands the jobs over at once (well within a lease).
    a.stop().await;
    let view = cluster_until(&b, &admin, |view| runs_jobs(view) == ["node-b"]).await;
    assert_eq!(view["nodes"].as_array().unwrap().len(), 1, "a stopped node leaves the list: {view}");
    b.linked(&admin, "on-b", "+6281200000202").await;
    send(&b, &admin, "on-b", 100).await;
    receiver.until(33).await;
}

#[tokio::test]
async fn a_node_with_another_server_secret_is_refused_at_start() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path().to_path_buf());
    config.database_url = Some(a.database_url());
    config.secret = Some("another-secret-of-at-least-32-characters".into());
    let refused = App::build(config).await.err().expect("a node with another secret does not start");
    assert!(matches!(refused, StartError::SecretMismatch), "{refused}");
    assert!(refused.to_string().contains("WAGATE_SECRET"), "{refused}");

    // The same secret joins.
    let b = a.spawn_beside(node("node-b")).await;
    let admin = b.admin().await;
    cluster_until(&b, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;
}

/// Polls a session through `app` until `done` says so (10 s at most).
async fn session_until(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..500 {
        let session = app.session_status(id, token).await;
        if done(&session) {
            return session;
        }
        last = session;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} never reached the expected state: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_one_node_and_moves_when_that_node_stops() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let b = a.spawn_beside(node("node-b")).await;
    let admin = a.admin().await;
    // Two on node-a, one on node-b: each node runs its share (3 over 2 nodes: 2 at most).
    a.linked(&admin, "moves", "+6281200000301").await;
    b.linked(&admin, "also", "+6281200000302").await;
    a.create_session(&admin, "waits").await;
    let (status, body) = a.post("/api/v1/sessions/waits/connect", &admin, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["node"], "node-a", "{body}");

    // Every node tells which node runs a session; what needs its connection is carried there.
    for app in [&a, &b] {
        assert_eq!(app.session_status("moves", &admin).await["node"], "node-a");
        assert_eq!(app.session_status("also", &admin).await["node"], "node-b");
    }
    let (status, list) = b.get("/api/v1/sessions", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let nodes: HashMap<&str, &str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["node"].as_str().unwrap_or("none")))
        .collect();
    assert_eq!(
        nodes,
        HashMap::from([("moves", "node-a"), ("waits", "node-a"), ("also", "node-b")]),
        "{list}"
    );
    session_until(&a, &admin, "waits", |s| s["status"] == "qr").await;
    let (status, qr) = a.get("/api/v1/sessions/waits/qr", &admin).await;
    assert_eq!(status, StatusCode::OK, "the node that runs it shows the QR code: {qr}");
    let (status, via_b) = b.get("/api/v1/sessions/waits/qr", &admin).await;
    assert_eq!((status, &via_b["qr"]), (StatusCode::OK, &qr["qr"]), "node-b carries the request to node-a");

    // A message accepted by one node goes out through the node that runs the session.
    let (status, accepted) = b
        .post("/api/v1/sessions/moves/messages", &admin, json!({ "to": "+6281234560011", "text": "via b" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    b.wait_for_message(&admin, id, |m| m["status"] == "delivered" || m["status"] == "read").await;

    // The linked account is in the database, nothing on node-a's disk is needed: a graceful
    // stop of node-a hands its sessions over at once.
    let stopped = a.stop().await;
    let moved =
        session_until(&b, &admin, "moves", |s| s["node"] == "node-b" && s["status"] == "connected").await;
    assert_eq!(moved["account"]["phone"], "+6281200000301", "the same linked account: {moved}");
    session_until(&b, &admin, "waits", |s| s["node"] == "node-b" && s["status"] == "qr").await;
    let (status, accepted) = b
        .post("/api/v1/sessions/moves/messages", &admin, json!({ "to": "+6281234560011", "text": "after" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    b.wait_for_message(&admin, accepted["id"].as_str().unwrap(), |m| {
        m["status"] == "delivered" || m["status"] == "read"
    })
    .await;

    // node-a comes back and node-b, running all three, hands one over to it.
    let a = stopped.restart(node("node-a")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = a.get("/api/v1/sessions", &admin).await;
        let sessions = list["sessions"].as_array().unwrap();
        let on = |node: &str| sessions.iter().filter(|s| s["node"] == node).count();
        let linked_connected =
            sessions.iter().filter(|s| s["id"] != "waits").all(|s| s["status"] == "connected");
        if on("node-a") == 1 && on("node-b") == 2 && linked_connected {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not evened out after node-a came back: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures_and_api_quotas_count_across_nodes_on_a_shared_database_server() {
    let limits = |id: &'static str| {
        move |config: &mut Config| {
            node(id)(config);
            config.login_limits.failures_per_user = 4;
            config.api_limits.per_key_per_minute = 3;
        }
    };
    let a = TestApp::spawn_with(limits("node-a")).await;
    let b = a.spawn_beside(limits("node-b")).await;
    let admin = a.admin().await;
    a.create_user(&admin, "tenant").await;
    let login = |app: &TestApp, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({ "username": "tenant", "password": password }))
            .send()
    };
    for app in [&a, &b, &a, &b] {
        assert_eq!(login(app, "wrong").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let answer = login(&b, "tenant-password").await.unwrap();
    match DatabaseKind::selected() {
        // PostgreSQL and MariaDB count in the database: four failures in all lock the user out.
        DatabaseKind::Postgres | DatabaseKind::Mysql => {
            assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(answer.headers().contains_key("retry-after"));
            assert_eq!(login(&a, "tenant-password").await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
        }
        // On SQLite (one machine) each process counts its own, as documented.
        DatabaseKind::Sqlite => assert_eq!(answer.status(), StatusCode::OK),
    }

    // An API key's requests per minute, through both nodes.
    let (status, key) =
        a.post("/api/v1/api-keys", &admin, json!({ "name": "both", "scopes": ["read"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    for app in [&a, &b, &a] {
        assert_eq!(app.get("/api/v1/sessions", &key).await.0, StatusCode::OK);
    }
    let fourth = b.request(reqwest::Method::GET, "/api/v1/sessions", Some(&key)).send().await.unwrap();
    match DatabaseKind::selected() {
        DatabaseKind::Postgres | DatabaseKind::Mysql => {
            assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(fourth.headers().contains_key("retry-after"));
        }
        DatabaseKind::Sqlite => assert_eq!(fourth.status(), StatusCode::OK),
    }
}

/// A request carried from one node to another: `wagate-forwarded`, signed with the cluster's key.
fn node_mark(node: &str, method: &str, target: &str) -> String {
    use hmac::{Hmac, Mac};
    let key = wagate_service::auth::Secrets::derive(common::SECRET).node_key;
    let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let caller = "203.0.113.7:5000";
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    for part in [node, &at.to_string(), caller, method, target] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    format!("{node};{at};{caller};{}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_answers_what_needs_the_node_that_runs_the_session() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let b = a.spawn_beside(node("node-b")).await;
    let admin = a.admin().await;
    cluster_until(&b, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;

    // A session no node runs yet: its stream opens where it is asked for.
    b.create_session(&admin, "linking").await;
    let mut early = b.events("linking", &admin).await;
    assert_eq!(early.until("status").await["status"], "created");

    // Connected through node-a, it runs there; node-b's stream ends within a heartbeat so its
    // client reconnects, and is carried to node-a.
    let (status, body) = a.post("/api/v1/sessions/linking/connect", &admin, Value::Null).await;
    assert_eq!((status, body["node"].as_str()), (StatusCode::OK, Some("node-a")), "{body}");
    let ended =
        tokio::time::timeout(Duration::from_secs(5), async { while early.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the stream on node-b did not end when node-a started running the session");
    let mut events = b.events("linking", &admin).await;
    let qr = events.until("qr").await;

    // QR codes, WebSockets and the sandbox's phone, through node-b.
    let (status, shown) = b.get("/api/v1/sessions/linking/qr", &admin).await;
    assert_eq!((status, &shown["qr"]), (StatusCode::OK, &qr["qr"]), "{shown}");
    let token = b.post("/api/v1/sessions/linking/stream-token", &admin, Value::Null).await.1["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut socket, _) =
        tokio_tungstenite::connect_async(b.ws_url(&format!("/api/v1/sessions/linking/ws?token={token}")))
            .await
            .expect("the WebSocket is carried to node-a");
    let (status, scanned) = b
        .post(
            "/api/v1/sandbox/sessions/linking/scan",
            &admin,
            json!({ "phone": "+6281200000401", "qr": qr["qr"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{scanned}");
    events.until_status("connected").await;
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        use futures::StreamExt;
        while let Some(frame) = socket.next().await {
            let text = frame.unwrap().into_text().unwrap();
            let event: Value = serde_json::from_str(&text).unwrap();
            if event["event"] == "status" && event["status"] == "connected" {
                return event;
            }
        }
        panic!("the WebSocket ended before the session was connected");
    })
    .await
    .expect("the WebSocket through node-b shows the session connected");
    assert_eq!(connected["account"]["phone"], "+6281200000401");

    // Lifecycle actions and number checks, through node-b, done by node-a.
    let (status, restarted) = b.post("/api/v1/sessions/linking/restart", &admin, Value::Null).await;
    assert_eq!((status, restarted["node"].as_str()), (StatusCode::OK, Some("node-a")), "{restarted}");
    session_until(&b, &admin, "linking", |s| s["status"] == "connected").await;
    let (status, checked) = b
        .post("/api/v1/sessions/linking/numbers/check", &admin, json!({ "numbers": ["+6281200000402"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{checked}");

    // A request marked as carried is answered where it arrives, never carried again; a forged
    // mark is ignored (and the request carried as any other).
    let target = "/api/v1/sessions/linking/qr";
    let asked = |mark: String| {
        b.request(reqwest::Method::GET, target, Some(&admin)).header("wagate-forwarded", mark).send()
    };
    let answer = asked(node_mark("node-a", "GET", target)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "session_on_other_node", "{problem}");
    let forged = node_mark("node-a", "GET", "/api/v1/sessions/other/qr");
    let answer = asked(forged).await.unwrap();
    let problem: Value = answer.json().await.unwrap();
    assert_eq!(problem["code"], "already_connected", "carried to node-a, which runs it: {problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_lease_renewal_stalls_closes_the_session_before_the_lease_ends() {
    let a = TestApp::spawn_with(|config| {
        node("node-a")(config);
        config.cluster.lease_ms = 3_000; // renewed every 100 ms
    })
    .await;
    let admin = a.admin().await;
    a.linked(&admin, "stalled", "+6281200000701").await;
    let mut events = a.events("stalled", &admin).await;
    assert_eq!(events.until("status").await["status"], "connected");

    // The database stops answering node-a's renewals (another connection holds the lease's
    // row). Another node may take the session once the lease has ended, so node-a must have
    // closed it by then, not when the database answers again.
    let lock = LeaseLock::take(&a, "stalled").await;
    let ended =
        tokio::time::timeout(Duration::from_millis(4_000), async { while events.next().await.is_some() {} })
            .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.release().await;
    assert!(ended.is_ok(), "the session stayed open on node-a while its lease could not be renewed");

    // Once the database answers again, node-a takes the session back and sends through it.
    let (status, accepted) = a
        .post("/api/v1/sessions/stalled/messages", &admin, json!({ "to": "+6281234560071", "text": "back" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    a.wait_for_message(&admin, accepted["id"].as_str().unwrap(), |m| {
        matches!(m["status"].as_str(), Some("sent" | "delivered" | "read"))
    })
    .await;
}

/// A transaction of the test's own that holds a session's lease row (the whole database on
/// SQLite), so that the node's renewals wait.
struct LeaseLock(sqlx::AnyConnection);

impl LeaseLock {
    async fn take(app: &TestApp, session: &str) -> LeaseLock {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&app.database_url()).await.unwrap();
        match DatabaseKind::selected() {
            DatabaseKind::Sqlite => {
                sqlx::query("BEGIN IMMEDIATE").execute(&mut db).await.unwrap();
            }
            kind => {
                sqlx::query("BEGIN").execute(&mut db).await.unwrap();
                let mark = if kind == DatabaseKind::Postgres { "$1" } else { "?" };
                let sql = format!("SELECT name FROM leases WHERE name = {mark} FOR UPDATE");
                let locked = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(format!("session:{session}"));
                assert_eq!(locked.fetch_all(&mut db).await.unwrap().len(), 1);
            }
        }
        LeaseLock(db)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
    }
}

/// Takes a session's lease from under its node, as another node would after a partition that
/// outlasted the lease.
async fn take_lease_away(app: &TestApp, session: &str) {
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url()).await.unwrap();
    let mark = if DatabaseKind::selected() == DatabaseKind::Postgres { "$1" } else { "?" };
    let sql = format!("UPDATE leases SET holder = 'node-z', epoch = epoch + 1 WHERE name = {mark}");
    let taken = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(format!("session:{session}"));
    assert_eq!(taken.execute(&mut db).await.unwrap().rows_affected(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_node_does_for_a_session_after_losing_its_lease_is_refused() {
    // Heartbeats far apart: node-a would notice the loss only at its next renewal, a minute
    // away. Until then, the database refuses what it tries under the old epoch.
    let a = TestApp::spawn_with(|config| {
        node("node-a")(config);
        config.cluster.heartbeat_ms = 60_000;
        config.cluster.lease_ms = 180_000;
    })
    .await;
    let admin = a.admin().await;
    a.linked(&admin, "sends", "+6281200000501").await;
    a.linked(&admin, "receives", "+6281200000502").await;

    // Sending: the claim of the queued message is refused, and node-a lets the session go.
    take_lease_away(&a, "sends").await;
    let (status, accepted) = a
        .post("/api/v1/sessions/sends/messages", &admin, json!({ "to": "+6281234560021", "text": "late" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let gone = session_until(&a, &admin, "sends", |s| s["node"] == "node-z").await;
    assert_eq!(gone["node"], "node-z");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, message) = a.get(&format!("/api/v1/messages/{}", accepted["id"].as_str().unwrap()), &admin).await;
    assert_eq!(message["status"], "queued", "left to the node that holds the lease: {message}");
    let (status, problem) = a.get("/api/v1/sessions/sends/qr", &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("session_on_other_node")));

    // Receiving: what arrives is not stored by node-a (the node that holds the lease receives it).
    take_lease_away(&a, "receives").await;
    let (status, problem) = a
        .post(
            "/api/v1/sandbox/sessions/receives/inbound",
            &admin,
            json!({ "from": "+6281234560022", "text": "hello" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("inbound_not_stored"))
    );
    let (status, chat) = a.get("/api/v1/sessions/receives/chats/+6281234560022/messages", &admin).await;
    assert_eq!(status, StatusCode::OK, "{chat}");
    assert_eq!(chat["messages"].as_array().map(Vec::len), Some(0), "nothing stored: {chat}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_queued_on_one_node_wakes_the_node_that_runs_the_session() {
    // On PostgreSQL the nodes look for each other's work only once a minute here: the database's
    // wake-up must carry it. Elsewhere they look four times a second, as by default.
    let slow_poll = |id: &'static str| {
        move |config: &mut Config| {
            node(id)(config);
            if DatabaseKind::selected() == DatabaseKind::Postgres {
                config.cluster.idle_poll_ms = 60_000;
            }
        }
    };
    let a = TestApp::spawn_with(slow_poll("node-a")).await;
    let b = a.spawn_beside(slow_poll("node-b")).await;
    let admin = a.admin().await;
    cluster_until(&b, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;
    a.linked(&admin, "woken", "+6281200000601").await;
    for n in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await; // node-a's dispatcher is idle
        let (status, accepted) = b
            .post(
                "/api/v1/sessions/woken/messages",
                &admin,
                json!({ "to": "+6281234560031", "text": format!("wake {n}") }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        b.wait_for_message(&admin, accepted["id"].as_str().unwrap(), |m| {
            matches!(m["status"].as_str(), Some("sent" | "delivered" | "read"))
        })
        .await;
    }
}

/// What one node changes, the copies the others keep follow within a poll, long before those
/// copies would have expired: a user disabled or an API key revoked through one node is refused
/// by the other, and an endpoint added through one node gets the events of a session the other
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copies_a_node_keeps_follow_what_another_node_changes() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let b = a.spawn_beside(node("node-b")).await;
    let admin = a.admin().await;
    cluster_until(&a, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;
    // Past the first look of each node at the others' changes (which drops everything once).
    tokio::time::sleep(Duration::from_millis(800)).await;
    // node-a keeps the tenant (signed in) and its list of endpoints (none) in memory.
    let tenant = a.create_user(&admin, "tenant").await;
    assert_eq!(a.get("/api/v1/sessions", &tenant).await.0, StatusCode::OK);
    a.linked(&admin, "on-a", "+6281200000301").await;
    let (status, first) = a
        .post("/api/v1/sessions/on-a/messages", &admin, json!({ "to": "+6281200000302", "text": "first" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    a.wait_for_message(&admin, first["id"].as_str().unwrap(), |m| m["status"] == "read").await;

    let (receiver, url) = SlowReceiver::start().await;
    let (status, hook) =
        b.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.status"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    let (_, users) = b.get("/api/v1/users", &admin).await;
    let users = users.get("users").unwrap_or(&users).as_array().unwrap().clone();
    let id =
        users.iter().find(|user| user["username"] == "tenant").unwrap()["id"].as_str().unwrap().to_owned();
    let (status, body) = b
        .call(reqwest::Method::PATCH, &format!("/api/v1/users/{id}"), &admin, json!({ "disabled": true }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed_at = std::time::Instant::now();
    // node-a's copy of the user would last 5 s.
    loop {
        let status = a.get("/api/v1/sessions", &tenant).await.0;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            break;
        }
        assert!(changed_at.elapsed() < Duration::from_secs(2), "node-a still lets the disabled user in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An API key node-a has just taken (and so keeps), revoked through node-b.
    let (status, created) =
        a.post("/api/v1/api-keys", &admin, json!({ "name": "short-lived", "scopes": ["read"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(a.get("/api/v1/sessions", key).await.0, StatusCode::OK);
    let path = format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap());
    let (status, body) = b.call(reqwest::Method::DELETE, &path, &admin, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let revoked_at = std::time::Instant::now();
    while a.get("/api/v1/sessions", key).await.0 != StatusCode::UNAUTHORIZED {
        assert!(revoked_at.elapsed() < Duration::from_secs(2), "node-a still takes the revoked key");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // node-a saw the users change, made after the endpoint: its events now go there too.
    send(&a, &admin, "on-a", 2).await;
    receiver.until(1).await;

    // node-a keeps the admin's OTP settings (no code in answers) and sessions (none in a pool),
    // with no expiry worth waiting for (settings: none; session lists: 30 s).
    let (status, sent) = a.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281200000310" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert!(sent["code"].is_null(), "{sent}");
    let to_pool = json!({ "pool": "blue", "to": "+6281200000311", "text": "pooled" });
    let (status, refused) = a.post("/api/v1/messages", &admin, to_pool.clone()).await;
    assert_eq!((status, refused["code"].as_str()), (StatusCode::NOT_FOUND, Some("pool_not_found")));
    let (status, body) = b
        .call(
            reqwest::Method::PATCH,
            "/api/v1/otp/settings",
            &admin,
            json!({ "return_code_in_response": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        b.call(reqwest::Method::PATCH, "/api/v1/sessions/on-a", &admin, json!({ "pool": "blue" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changed_at = std::time::Instant::now();
    for n in 12.. {
        let phone = format!("+62812000003{n:02}");
        let (status, sent) = a.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
        if sent["code"].is_string() {
            break;
        }
        assert!(changed_at.elapsed() < Duration::from_secs(2), "node-a still uses the old OTP settings");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The two changes may reach node-a in different polls.
    loop {
        let (status, accepted) = a.post("/api/v1/messages", &admin, to_pool.clone()).await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{accepted}");
        assert!(
            changed_at.elapsed() < Duration::from_secs(2),
            "node-a still routes with the old list: {accepted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sandbox's network on a shared database: sessions on different nodes message each other,
/// in groups too, and every node shows every inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_sessions_on_different_nodes_share_one_simulated_network() {
    let a = TestApp::spawn_on_shared_database(node("node-a")).await;
    let b = a.spawn_beside(node("node-b")).await;
    let admin = a.admin().await;
    cluster_until(&a, &admin, |view| view["nodes"].as_array().unwrap().len() == 2).await;
    a.linked(&admin, "alice", "+6281200000501").await;
    b.linked(&admin, "bob", "+6281200000502").await;
    let node_of = async |id: &str| a.get(&format!("/api/v1/sessions/{id}"), &admin).await.1["node"].clone();
    assert_eq!((node_of("alice").await, node_of("bob").await), (json!("node-a"), json!("node-b")));

    // alice, on node-a, writes to bob, on node-b: bob receives it, and node-b's inbox shows it.
    let mut bob_events = b.events("bob", &admin).await;
    let (status, sent) = a
        .post("/api/v1/sessions/alice/messages", &admin, json!({ "to": "+6281200000502", "text": "hi bob" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let received = bob_events.until("message_received").await;
    assert_eq!(
        (received["message_id"].as_str(), received["from"].as_str()),
        (sent["id"].as_str(), Some("+6281200000501"))
    );
    let (status, inbox) = b.get("/api/v1/sandbox/inbox/+6281200000502?wait_ms=5000", &admin).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let messages = inbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{inbox}");
    assert_eq!(
        (messages[0]["session_id"].as_str(), messages[0]["content"]["body"].as_str()),
        (Some("alice"), Some("hi bob"))
    );

    // A group alice makes on node-a is bob's on node-b; what alice says in it reaches bob.
    let (status, group) = a
        .post(
            "/api/v1/sandbox/sessions/alice/groups",
            &admin,
            json!({ "subject": "Across", "participants": ["+6281200000502"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let jid = group["jid"].as_str().unwrap();
    let (status, groups) = b.get("/api/v1/sessions/bob/groups", &admin).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert_eq!(groups["groups"][0]["jid"].as_str(), Some(jid), "{groups}");
    let (status, sent) =
        a.post("/api/v1/sessions/alice/messages", &admin, json!({ "to": jid, "text": "hi all" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let received = bob_events.until("message_received").await;
    assert_eq!(received["message_id"], sent["id"]);

    // Replies go the other way, and node-a's inbox of alice shows them.
    let (status, reply) = b
        .post("/api/v1/sessions/bob/messages", &admin, json!({ "to": "+6281200000501", "text": "hi alice" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let (status, inbox) = a.get("/api/v1/sandbox/inbox/+6281200000501?wait_ms=5000", &admin).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    assert_eq!(inbox["messages"][0]["id"], reply["id"], "{inbox}");
}

/// Counts of the sessions each node runs connected, as `app` lists them.
async fn connected_per_node(app: &TestApp, token: &str) -> HashMap<String, usize> {
    let (status, list) = app.get("/api/v1/sessions", token).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut counts = HashMap::new();
    for session in list["sessions"].as_array().unwrap() {
        if session["status"] == "connected" {
            *counts.entry(session["node"].as_str().unwrap_or("none").to_owned()).or_default() += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_takes_its_share_of_the_running_sessions() {
    let a = TestApp::spawn_with(node("node-a")).await;
    let admin = a.admin().await;
    for n in 1..=4 {
        a.linked(&admin, &format!("even-{n}"), &format!("+62812000006{n:02}")).await;
    }
    assert_eq!(connected_per_node(&a, &admin).await, HashMap::from([("node-a".to_owned(), 4)]));

    let b = a.spawn_beside(node("node-b")).await;
    let even = HashMap::from([("node-a".to_owned(), 2), ("node-b".to_owned(), 2)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = connected_per_node(&b, &admin).await;
        if counts == even {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not evened out: {counts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It stays so (nothing moves back and forth), and every session still sends, as itself.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(connected_per_node(&a, &admin).await, even);
    for n in 1..=4 {
        let id = format!("even-{n}");
        let session = a.session_status(&id, &admin).await;
        assert_eq!(session["account"]["phone"], format!("+62812000006{n:02}"), "{session}");
        let (status, accepted) = b
            .post(
                &format!("/api/v1/sessions/{id}/messages"),
                &admin,
                json!({ "to": "+6281234560099", "text": "hi" }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        a.wait_for_message(&admin, accepted["id"].as_str().unwrap(), |m| {
            m["status"] == "delivered" || m["status"] == "read"
        })
        .await;
    }
}
