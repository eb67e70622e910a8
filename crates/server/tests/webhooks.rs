//! Signed webhooks: delivery, signatures, retries through an outage, dead letters, replay.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_service::webhooks::Webhooks;

#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Status codes to answer, in turn; 200 once used up.
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(script: Vec<u16>) -> (Receiver, String) {
        Self::start_on(script, "127.0.0.1:0").await
    }

    async fn start_on(script: Vec<u16>, address: &str) -> (Receiver, String) {
        let receiver = Receiver { received: Default::default(), script: Arc::new(Mutex::new(script)) };
        let app = axum::Router::new().route("/hook", post(hook)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind(address).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.received.lock().unwrap().iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect()
    }

    async fn wait_for(&self, count: usize) -> Vec<(HeaderMap, String)> {
        for _ in 0..300 {
            if self.received.lock().unwrap().len() >= count {
                return self.received.lock().unwrap().clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("only {} of {count} webhook calls arrived", self.received.lock().unwrap().len());
    }
}

async fn hook(State(receiver): State<Receiver>, headers: HeaderMap, body: String) -> AxumStatus {
    let code = {
        let mut script = receiver.script.lock().unwrap();
        if script.is_empty() { 200 } else { script.remove(0) }
    };
    if code == 200 {
        receiver.received.lock().unwrap().push((headers, body));
    }
    AxumStatus::from_u16(code).unwrap()
}

fn verify(headers: &HeaderMap, body: &str, secret: &str) {
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    let signature = headers["webhook-signature"].to_str().unwrap();
    assert!(signature.starts_with("v1,"));
    assert_eq!(signature, Webhooks::sign(secret, id, timestamp, body), "the signature verifies");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
}

#[tokio::test]
async fn events_arrive_signed_and_in_order() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (receiver, url) = Receiver::start(vec![]).await;
    app.linked(&admin, "hooked", "+6281200000011").await;
    let (status, created) = app
        .post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.*"], "session": "hooked" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (_, listed) = app.get("/api/v1/webhooks", &admin).await;
    assert!(!listed.to_string().contains(&secret), "the secret is shown only on creation");
    let store = wagate_store::Store::connect(&app.database_url()).await.unwrap();
    let stored = store.webhooks(None).await.unwrap().remove(0).secret;
    assert!(
        stored.starts_with("wagate:sealed:") && !stored.contains(&secret[6..]),
        "stored encrypted: {stored}"
    );
    store.close().await;

    let (_, accepted) = app
        .post("/api/v1/sessions/hooked/messages", &admin, json!({ "to": "+6281234500050", "text": "hello" }))
        .await;
    let id = accepted["id"].as_str().unwrap();
    app.post(
        "/api/v1/sandbox/sessions/hooked/inbound",
        &admin,
        json!({ "from": "+6281234500051", "text": "hi there", "push_name": "Cust" }),
    )
    .await;

    let calls = receiver.wait_for(4).await;
    for (headers, body) in &calls {
        verify(headers, body, &secret);
    }
    let bodies = receiver.bodies();
    let statuses: Vec<&str> = bodies
        .iter()
        .filter(|b| b["type"] == "message.status")
        .map(|b| b["data"]["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["sent", "delivered", "read"], "per-endpoint order");
    assert!(bodies.iter().filter(|b| b["type"] == "message.status").all(|b| b["data"]["message_id"] == id));
    let received = bodies.iter().find(|b| b["type"] == "message.received").unwrap();
    assert_eq!(received["data"]["text"], "hi there");
    assert_eq!(received["data"]["from"], "+6281234500051");
    // The fields receivers of the multi-session gateway read.
    assert_eq!(received["session_id"], "hooked");
    assert_eq!(received["message"]["from"], "6281234500051@s.whatsapp.net");
    assert_eq!(received["message"]["to"], "6281200000011@s.whatsapp.net");
    assert_eq!(received["message"]["message"], "hi there");
    assert!(received["message"]["timestamp"].is_i64());
    assert!(bodies.iter().all(|b| b["type"] != "session.status"), "the event filter holds");

    let (_, chat) = app.get("/api/v1/sessions/hooked/chats/+6281234500051/messages", &admin).await;
    assert_eq!(chat["messages"][0]["text"], "hi there", "{chat}");
}

#[tokio::test]
async fn a_receiver_outage_loses_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // 500s, then a recovery: every event must still arrive, in order.
    let (receiver, url) = Receiver::start(vec![500, 500, 503, 500]).await;
    app.linked(&admin, "outage", "+6281200000012").await;
    let (_, created) =
        app.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.status"] })).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for n in 0..3 {
        let (_, accepted) = app
            .post(
                "/api/v1/sessions/outage/messages",
                &admin,
                json!({ "to": "+6281234500060", "text": format!("#{n}") }),
            )
            .await;
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let calls = receiver.wait_for(9).await;
    for (headers, body) in &calls {
        verify(headers, body, &secret);
    }
    let sequence: Vec<(String, String)> = receiver
        .bodies()
        .iter()
        .map(|b| {
            (
                b["data"]["message_id"].as_str().unwrap().to_owned(),
                b["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for id in &ids {
        let mine: Vec<&str> = sequence.iter().filter(|(m, _)| m == id).map(|(_, s)| s.as_str()).collect();
        assert_eq!(mine, ["sent", "delivered", "read"], "{id}: {sequence:?}");
    }
    // The last answer may reach the receiver a moment before its attempt is recorded.
    let hook = created["id"].as_str().unwrap();
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        let (_, log) = app.get(&format!("/api/v1/webhooks/{hook}/deliveries?limit=200"), &admin).await;
        deliveries = log["deliveries"].as_array().unwrap().clone();
        if deliveries.iter().all(|d| d["status"] == "delivered") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(deliveries.iter().all(|d| d["status"] == "delivered"), "{deliveries:?}");
    let retried =
        deliveries.iter().find(|d| d["attempts"].as_i64() > Some(1)).expect("the first one was retried");
    assert_eq!(retried["attempt_log"][0]["status_code"], 500);
}

#[tokio::test]
async fn client_errors_are_dead_letters_that_can_be_replayed() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (receiver, url) = Receiver::start(vec![400]).await;
    app.create_session(&admin, "dead").await;
    let (_, created) =
        app.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["session.status"] })).await;
    let hook = created["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/sessions/dead/connect", &admin, Value::Null).await;

    let mut dead = Value::Null;
    for _ in 0..200 {
        let (_, log) = app.get(&format!("/api/v1/webhooks/{hook}/deliveries?status=dead"), &admin).await;
        if let Some(first) = log["deliveries"].as_array().unwrap().first() {
            dead = first.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead["attempts"], 1, "a 400 is not retried: {dead}");
    assert_eq!(dead["last_status_code"], 400);

    let event = dead["event_id"].as_str().unwrap();
    let (status, replayed) =
        app.post(&format!("/api/v1/webhooks/{hook}/replay"), &admin, json!({ "event_id": event })).await;
    assert_eq!((status, replayed["queued"].as_u64()), (StatusCode::ACCEPTED, Some(1)));
    let calls = receiver.wait_for(1).await;
    assert!(calls.iter().any(|(_, body)| body.contains("session.status")));

    let (status, problem) =
        app.post(&format!("/api/v1/webhooks/{hook}/replay"), &admin, json!({ "event_id": "evt_nope" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("event_not_found")));
    let (status, replayed) = app
        .post(&format!("/api/v1/webhooks/{hook}/replay"), &admin, json!({ "since": "2020-01-01T00:00:00Z" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(replayed["queued"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn webhook_urls_are_checked() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_urls = false).await;
    let admin = app.admin().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.5/hook",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
        "ftp://example.com/x",
        "not a url",
        "http://user:pw@93.184.216.34/",
    ] {
        let (status, problem) = app.post("/api/v1/webhooks", &admin, json!({ "url": url })).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_webhook_url")),
            "{url}"
        );
    }
    let (status, problem) = app
        .post(
            "/api/v1/webhooks",
            &admin,
            json!({ "url": "http://93.184.216.34/x", "events": ["message.deleted"] }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_event_type"))
    );
    let (status, created) = app
        .post("/api/v1/webhooks", &admin, json!({ "url": "http://93.184.216.34/x", "enabled": false }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["enabled"], false);
    let (status, problem) = app
        .post("/api/v1/sessions", &admin, json!({ "id": "s", "webhook_url": "http://192.168.1.10/h" }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_webhook_url"))
    );
    let (status, _) = app.get("/api/v1/sessions/s", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing half-created");

    let alice = app.create_user(&admin, "alice").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/webhooks/{id}"), &alice).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), &alice, Value::Null).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_sessions_webhook_url_receives_its_messages() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (receiver, url) = Receiver::start(vec![]).await;
    app.linked(&admin, "seeded", "+6281200000013").await;
    let (status, _) =
        app.call(Method::PUT, "/api/sessions/seeded/webhook", &admin, json!({ "webhook_url": url })).await;
    assert_eq!(status, StatusCode::OK);
    app.post(
        "/api/v1/sandbox/sessions/seeded/inbound",
        &admin,
        json!({ "from": "+6281234500070", "text": "order #12" }),
    )
    .await;
    receiver.wait_for(1).await;
    let body = receiver.bodies().into_iter().find(|b| b["type"] == "message.received").unwrap();
    assert_eq!(body["message"]["message"], "order #12");
    // Replacing the URL replaces the endpoint; clearing it removes it.
    app.call(Method::PATCH, "/api/v1/sessions/seeded", &admin, json!({ "webhook_url": null })).await;
    let (_, hooks) = app.get("/api/v1/webhooks", &admin).await;
    assert!(hooks["webhooks"].as_array().unwrap().is_empty(), "{hooks}");
}

#[tokio::test]
async fn a_receiver_that_refuses_connections_gets_everything_once_it_is_back() {
    let app =
        TestApp::spawn_with(|c| c.webhooks.retry_schedule_ms = vec![100, 200, 400, 800, 1600, 3200]).await;
    let admin = app.admin().await;
    // A port bound but not listening (yet): connections are refused, and no other test can
    // take the port meanwhile.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = reserved.local_addr().unwrap().to_string();
    let (_, created) = app
        .post(
            "/api/v1/webhooks",
            &admin,
            json!({ "url": format!("http://{address}/hook"), "events": ["session.status"] }),
        )
        .await;
    let hook = created["id"].as_str().unwrap().to_owned();
    app.create_session(&admin, "refused").await;
    app.post("/api/v1/sessions/refused/connect", &admin, Value::Null).await;
    app.post("/api/v1/sessions/refused/disconnect", &admin, Value::Null).await;

    let mut failed_attempt = Value::Null;
    for _ in 0..100 {
        let (_, log) = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), &admin).await;
        if let Some(d) =
            log["deliveries"].as_array().unwrap().iter().find(|d| d["attempts"].as_i64() >= Some(1))
        {
            failed_attempt = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(failed_attempt["attempt_log"][0]["error"], "connection failed", "{failed_attempt}");
    assert_eq!(failed_attempt["status"], "pending");

    drop(reserved);
    let (receiver, _) = Receiver::start_on(vec![], &address).await;
    let calls = receiver.wait_for(3).await;
    let statuses: Vec<String> = calls
        .iter()
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).unwrap()["data"]["status"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(statuses, ["connecting", "qr", "disconnected"], "in order, after the outage");
}
