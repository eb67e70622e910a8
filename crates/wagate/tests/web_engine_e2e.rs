//! The real WhatsApp client (`web` engine) inside the real `wagate` binary, against wamock, a
//! fake WhatsApp server that speaks the protocol: linking by QR code, sending with receipts,
//! inbound messages as webhooks, restarts, logout, send restrictions and dropped connections.
//! Everything is driven through the public HTTP API, as a user would.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, call, login};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wagate_testkit::Sse;
use wamock::{MockAccount, MockConfig, WaMock};

const PASSWORD: &str = "web-engine-test-password";
/// Any version works against wamock; pinning it keeps the client off the network.
const WEB_VERSION: &str = "2.3000.1029384756";

async fn start_wagate(dir: &std::path::Path, mock: &WaMock) -> Server {
    let url = mock.url();
    Server::start(
        dir,
        &[
            ("WAGATE_ADMIN_PASSWORD", PASSWORD),
            ("WAGATE_WEB_SERVER_URL", url.as_str()),
            ("WAGATE_WEB_VERSION", WEB_VERSION),
            ("WAGATE_ALLOW_PRIVATE_URLS", "true"),
        ],
    )
    .await
}

/// A wagate server (with its signed-in API) on a data directory, its `web` sessions pointed
/// at `mock`.
async fn started(dir: &std::path::Path, mock: &WaMock) -> (Server, Api) {
    let server = start_wagate(dir, mock).await;
    let api = Api::new(&server).await;
    (server, api)
}

/// A fresh fake WhatsApp, data directory and wagate server.
async fn fresh() -> (WaMock, tempfile::TempDir, Server, Api) {
    let mock = WaMock::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, api) = started(dir.path(), &mock).await;
    (mock, dir, server, api)
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(server: &Server) -> Api {
        let client = reqwest::Client::new();
        let token = login(&client, &server.base, "admin", PASSWORD).await;
        Api { client, base: server.base.clone(), token }
    }

    async fn call(&self, method: Method, path: &str, body: Value) -> (u16, Value) {
        call(&self.client, method, format!("{}{path}", self.base), &self.token, body).await
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, Value::Null).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn events(&self, session: &str) -> Sse {
        let response = self
            .client
            .get(format!("{}/api/v1/sessions/{session}/events", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        Sse::new(response)
    }

    /// Waits until the session has this status, and returns the session.
    async fn until_status(&self, session: &str, status: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let record = self.get(&format!("/api/v1/sessions/{session}")).await;
            if record["status"] == status {
                return record;
            }
            assert!(tokio::time::Instant::now() < deadline, "session never became {status}: {record}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn send_text(&self, session: &str, to: &str, text: &str) -> String {
        let body = json!({ "to": to, "text": text });
        let (status, message) =
            self.call(Method::POST, &format!("/api/v1/sessions/{session}/messages"), body).await;
        assert_eq!(status, 202, "{message}");
        message["id"].as_str().unwrap().to_owned()
    }

    async fn until_message_status(&self, id: &str, statuses: &[&str], within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = self.get(&format!("/api/v1/messages/{id}")).await;
            if statuses.iter().any(|status| message["status"] == *status) {
                return message;
            }
            assert!(tokio::time::Instant::now() < deadline, "message never became {statuses:?}: {message}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Receives webhooks on loopback and keeps their bodies.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let bodies = receiver.bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let Ok(n) = socket.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&request).to_string();
                        let Some(head_end) = text.find("\r\n\r\n") else { continue };
                        let length = text[..head_end]
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse().ok())?
                            })
                            .unwrap_or(0usize);
                        if request.len() < head_end + 4 + length {
                            continue;
                        }
                        let body = &request[head_end + 4..head_end + 4 + length];
                        if let Ok(json) = serde_json::from_slice(body) {
                            bodies.lock().unwrap().push(json);
                        }
                        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
                        request.clear();
                    }
                });
            }
        });
        (receiver, url)
    }

    async fn until(&self, within: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(found) = self.bodies.lock().unwrap().iter().find(|body| matches(body)) {
                return found.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such webhook: {:?}",
                self.bodies.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn account(phone: &str, lid: &str) -> MockAccount {
    MockAccount { phone: phone.into(), lid: lid.into(), push_name: "Wagate Shop".into() }
}

/// Creates a `web` session, waits for the real client's QR code, scans it with the fake phone
/// and waits until the session is connected. Returns every event seen on the way.
async fn link(api: &Api, mock: &WaMock, session: &str, phone: &MockAccount) -> Vec<(String, Value)> {
    let (status, created) = api
        .call(Method::POST, "/api/v1/sessions", json!({ "id": session, "engine": "web", "connect": true }))
        .await;
    assert_eq!(status, 201, "{created}");
    let mut events = api.events(session).await;
    let mut seen = events.collect_until(Duration::from_secs(30), |name, _| name == "qr").await;
    let qr = seen.last().unwrap().1["qr"].as_str().unwrap().to_owned();
    // The real client's QR payload: the server's ref, then its noise key, identity key, ADV
    // secret and platform.
    let parts: Vec<&str> = qr.split(',').collect();
    assert!(parts.len() >= 4 && parts[0].starts_with("2@"), "{qr}");
    mock.scan(&qr, phone).await.expect("the fake phone scans the QR code");
    seen.extend(
        events
            .collect_until(Duration::from_secs(60), |name, data| {
                name == "status" && data["status"] == "connected"
            })
            .await,
    );
    seen
}

/// Sends as fast as the session can: no delay, no typing indicator.
async fn unpaced(api: &Api, session: &str) {
    let body = json!({ "pacing": { "min_delay_ms": 0, "max_delay_ms": 0, "typing": false } });
    let (status, answer) = api.call(Method::PATCH, &format!("/api/v1/sessions/{session}"), body).await;
    assert_eq!(status, 200, "{answer}");
}

/// Waits until the contact has every message of `ids`, and checks that each arrived under its
/// own id. A resend under the same id is what WhatsApp drops, so it counts once.
async fn receive_exactly_once(mock: &WaMock, ids: &[String], mut texts_by_id: HashMap<String, String>) {
    while texts_by_id.len() < ids.len() {
        let received = mock.next_message(Duration::from_secs(60)).await.unwrap_or_else(|| {
            panic!("only {} of {} messages arrived", texts_by_id.len(), ids.len());
        });
        let text = received.text.unwrap_or_default();
        if let Some(earlier) = texts_by_id.insert(received.id.clone(), text.clone()) {
            assert_eq!(earlier, text, "one id, one message");
        }
    }
    let expected: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        texts_by_id.keys().collect::<HashSet<_>>(),
        expected,
        "every message arrived, under its own id"
    );
    let texts: HashSet<&String> = texts_by_id.values().collect();
    assert_eq!(texts.len(), ids.len(), "no message arrived twice under different ids");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_session_links_sends_receives_restarts_and_logs_out() {
    let (mock, dir, server, api) = fresh().await;
    let (receiver, hook_url) = Receiver::start().await;
    let (status, hook) = api
        .call(Method::POST, "/api/v1/webhooks", json!({ "url": hook_url, "events": ["message.received"] }))
        .await;
    assert_eq!(status, 201, "{hook}");

    // Link: real QR codes from the real client, scanned by the fake phone.
    let me = account("6281200000001", "100000000000001");
    let seen = link(&api, &mock, "shop", &me).await;
    let connected = &seen.last().unwrap().1;
    assert_eq!(connected["account"]["phone"], "+6281200000001", "{connected}");
    assert_eq!(connected["account"]["lid"], "100000000000001@lid", "{connected}");
    assert!(seen.iter().any(|(name, _)| name == "paired"), "{seen:?}");

    // Number checks and groups go through the real client's queries.
    let contact = mock.add_contact("6281300000002");
    let business = mock.add_business_contact("6281300000003");
    let (status, checked) = api
        .call(
            Method::POST,
            "/api/v1/sessions/shop/numbers/check",
            json!({ "numbers": ["+6281300000002", "+6281300000003", "+6281399999999"] }),
        )
        .await;
    assert_eq!(status, 200, "{checked}");
    let results = checked["results"].as_array().unwrap();
    assert_eq!(results[0]["on_whatsapp"], true, "{checked}");
    assert_eq!(results[0]["lid"].as_str(), Some(format!("{}@lid", contact.lid).as_str()), "{checked}");
    assert_eq!(
        (results[0]["business"].as_bool(), results[1]["business"].as_bool()),
        (Some(false), Some(true))
    );
    assert_eq!(results[1]["lid"].as_str(), Some(format!("{}@lid", business.lid).as_str()), "{checked}");
    assert_eq!(results[2]["on_whatsapp"], false, "{checked}");
    let groups = api.get("/api/v1/sessions/shop/groups").await;
    assert!(groups.to_string().contains('['), "{groups}");

    // Send: the fake contact's device decrypts exactly our text, under our message id.
    let id = api.send_text("shop", "+6281300000002", "Your order #1234 has shipped").await;
    let received =
        mock.next_message(Duration::from_secs(20)).await.expect("the contact receives the message");
    assert_eq!(received.text.as_deref(), Some("Your order #1234 has shipped"));
    assert_eq!((received.id.as_str(), received.to.as_str()), (id.as_str(), "6281300000002"));
    api.until_message_status(&id, &["read"], Duration::from_secs(20)).await;
    let message = api.get(&format!("/api/v1/messages/{id}")).await;
    let statuses: Vec<&str> = message["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|change| change["status"].as_str())
        .collect();
    for status in ["sent", "delivered", "read"] {
        assert!(statuses.contains(&status), "{status} missing from the history: {message}");
    }

    // Receive: the contact answers; the webhook carries the text with both sender identities.
    let reply_id = mock.send_text(&contact.phone, &me.phone, "Thanks, got it!").await.unwrap();
    let webhook =
        receiver.until(Duration::from_secs(20), |body| body.to_string().contains("Thanks, got it!")).await;
    let data = &webhook["data"];
    assert_eq!(data["session_id"], "shop", "{webhook}");
    assert_eq!(data["from"], "+6281300000002", "{webhook}");
    assert_eq!(data["from_lid"].as_str(), Some(format!("{}@lid", contact.lid).as_str()), "{webhook}");
    assert_eq!(data["id"], reply_id, "{webhook}");
    let chat = api.get("/api/v1/sessions/shop/chats/6281300000002@s.whatsapp.net/messages").await;
    assert!(chat.to_string().contains("Thanks, got it!"), "{chat}");

    // Restart the server: the session logs in again with its keys from the database, without
    // a QR code, and what arrived while wagate was down is delivered then. Nothing of the
    // session is needed on this node's disk.
    server.terminate().await;
    assert!(!dir.path().join("sessions/shop/whatsapp.db").exists(), "the keys are in the database");
    let _ = std::fs::remove_dir_all(dir.path().join("sessions"));
    mock.send_text(&contact.phone, &me.phone, "Sent while you were away").await.unwrap();
    let (server, api) = started(dir.path(), &mock).await;
    let mut events = api.events("shop").await;
    let seen = events
        .collect_until(Duration::from_secs(30), |name, data| {
            name == "status" && data["status"] == "connected"
        })
        .await;
    assert!(!seen.iter().any(|(name, _)| name == "qr"), "a restart must not ask for a QR code: {seen:?}");
    receiver
        .until(Duration::from_secs(20), |body| body.to_string().contains("Sent while you were away"))
        .await;
    let chat = api.get("/api/v1/sessions/shop/chats/6281300000002@s.whatsapp.net/messages").await;
    assert!(chat.to_string().contains("Sent while you were away"), "{chat}");
    let id = api.send_text("shop", "+6281300000002", "Still here after a restart").await;
    let received = mock.next_message(Duration::from_secs(20)).await.expect("sent after the restart");
    assert_eq!(
        (received.id.as_str(), received.text.as_deref()),
        (id.as_str(), Some("Still here after a restart"))
    );

    // WhatsApp removes the link: the session is logged out, and connecting again shows a QR code.
    mock.logout(&me.phone).await;
    let record = api.until_status("shop", "logged_out", Duration::from_secs(20)).await;
    assert!(record["account"].is_null(), "{record}");
    let (status, _) = api.call(Method::POST, "/api/v1/sessions/shop/connect", Value::Null).await;
    assert_eq!(status, 200);
    let mut events = api.events("shop").await;
    events.collect_until(Duration::from_secs(30), |name, _| name == "qr").await;
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pairing_code_comes_from_the_real_client() {
    let (_mock, _dir, server, api) = fresh().await;
    let (status, _) =
        api.call(Method::POST, "/api/v1/sessions", json!({ "id": "bycode", "engine": "web" })).await;
    assert_eq!(status, 201);
    let (status, code) = api
        .call(Method::POST, "/api/v1/sessions/bycode/pair-code", json!({ "phone": "+6281200000021" }))
        .await;
    assert_eq!(status, 200, "{code}");
    let code = code["code"].as_str().unwrap().to_owned();
    assert!(code.len() == 8 && code.chars().all(|c| c.is_ascii_alphanumeric()), "{code}");
    let mut events = api.events("bycode").await;
    let seen = events.collect_until(Duration::from_secs(10), |name, _| name == "pair_code").await;
    assert_eq!(seen.last().unwrap().1["code"], code.as_str());
    api.until_status("bycode", "pairing_code", Duration::from_secs(10)).await;
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restricted_numbers_fail_clearly_and_a_dropped_connection_loses_nothing() {
    let (mock, dir, server, api) = fresh().await;
    let me = account("6281200000011", "100000000000011");
    link(&api, &mock, "bulk", &me).await;
    unpaced(&api, "bulk").await;

    // A number WhatsApp will not let this account reach (error 463).
    mock.add_contact("6281300000013");
    mock.restrict("6281300000013");
    let id = api.send_text("bulk", "+6281300000013", "Hello stranger").await;
    let failed = api.until_message_status(&id, &["failed", "sent"], Duration::from_secs(20)).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("reach_out_restricted"), "{failed}");

    // A burst, with the connection dropped in the middle of it.
    mock.add_contact("6281300000012");
    let mut events = api.events("bulk").await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(api.send_text("bulk", "+6281300000012", &format!("burst message {n}")).await);
        if n == 10 {
            mock.drop_connections(Some(&me.phone));
        }
    }
    receive_exactly_once(&mock, &ids, HashMap::new()).await;
    for id in &ids {
        api.until_message_status(id, &["sent", "delivered", "read"], Duration::from_secs(60)).await;
    }
    // The drop was seen, and the session came back by itself.
    let seen = events
        .collect_until(Duration::from_secs(30), |name, data| {
            name == "status" && data["status"] == "connecting"
        })
        .await;
    let reason = seen.last().unwrap().1["reason"].as_str().unwrap().to_owned();
    assert!(reason.starts_with("reconnecting"), "{reason}");
    events
        .collect_until(Duration::from_secs(30), |name, data| {
            name == "status" && data["status"] == "connected"
        })
        .await;

    // The other kinds reach the contact as WhatsApp's own messages.
    let kinds = [
        json!({ "location": { "latitude": -6.1754, "longitude": 106.8272, "name": "Monas" } }),
        json!({ "contact": { "name": "Ana", "phone": "+6281300000099" } }),
        json!({ "poll": { "question": "Lunch?", "options": ["rice", "noodles"] } }),
        json!({ "reaction": { "message_id": ids[0], "emoji": "👍" } }),
        json!({ "text": "replying", "reply_to": ids[1] }),
    ];
    let mut sent = Vec::new();
    for mut body in kinds {
        body["to"] = json!("+6281300000012");
        let (status, message) = api.call(Method::POST, "/api/v1/sessions/bulk/messages", body).await;
        assert_eq!(status, 202, "{message}");
        sent.push(message["id"].as_str().unwrap().to_owned());
    }
    let mut received = HashMap::new();
    while received.len() < sent.len() {
        let message = mock.next_message(Duration::from_secs(20)).await.expect("every kind arrives");
        received.insert(message.id.clone(), message.message);
    }
    let location = received[&sent[0]].location_message.as_option().expect("a location");
    assert_eq!((location.degrees_latitude, location.name.as_deref()), (Some(-6.1754), Some("Monas")));
    let contact = received[&sent[1]].contact_message.as_option().expect("a contact card");
    assert!(contact.vcard.as_deref().unwrap_or_default().contains("+6281300000099"), "{contact:?}");
    let poll = received[&sent[2]].poll_creation_message_v3.as_option().expect("a single-choice poll");
    assert_eq!(poll.options.len(), 2);
    let reaction = received[&sent[3]].reaction_message.as_option().expect("a reaction");
    assert_eq!(reaction.key.as_option().and_then(|key| key.id.as_deref()), Some(ids[0].as_str()));
    let reply = received[&sent[4]].extended_text_message.as_option().expect("a reply");
    let quoted = reply.context_info.as_option().and_then(|context| context.stanza_id.as_deref());
    assert_eq!(quoted, Some(ids[1].as_str()));

    // Logging out from wagate unlinks the device and deletes its keys.
    let store = wagate_store::Store::connect(&wagate_store::Store::sqlite_url(dir.path())).await.unwrap();
    let bulk = wagate_core::SessionId::parse("bulk").unwrap();
    assert!(store.state_exists(&bulk).await.unwrap(), "the linked device's keys are in the database");
    let (status, record) = api.call(Method::POST, "/api/v1/sessions/bulk/logout", Value::Null).await;
    assert_eq!((status, record["status"].as_str()), (200, Some("logged_out")), "{record}");
    assert!(!store.state_exists(&bulk).await.unwrap(), "the keys are gone");
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_server_is_reported_attempt_by_attempt() {
    let (mock, _dir, server, api) = fresh().await;
    link(&api, &mock, "lonely", &account("6281200000031", "100000000000031")).await;
    let mut events = api.events("lonely").await;

    // WhatsApp goes away: the session must not keep saying `connected`.
    drop(mock);
    let seen = events
        .collect_until(Duration::from_secs(30), |name, data| {
            name == "status" && data["reason"].as_str().is_some_and(|r| r.contains("attempt 2 failed"))
        })
        .await;
    let statuses: Vec<&str> =
        seen.iter().filter(|(name, _)| name == "status").filter_map(|(_, d)| d["status"].as_str()).collect();
    assert_eq!(statuses.first(), Some(&"connected"), "the stream starts with the current status");
    assert!(statuses[1..].iter().all(|status| *status == "connecting"), "{seen:?}");
    let reason = seen.last().unwrap().1["reason"].as_str().unwrap();
    assert!(reason.contains("next in") && reason.contains("cannot connect"), "{reason}");
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_closed_while_its_client_connects_leaves_nothing_logged_in() {
    let (mock, _dir, server, api) = fresh().await;
    let me = account("6281200000061", "100000000000061");
    link(&api, &mock, "midway", &me).await;
    until(Duration::from_secs(20), "the device logged in", || mock.online_accounts() == [me.phone.clone()])
        .await;

    // The connection drops; the client's next one waits in its handshake when the session is
    // closed, and completes (logging in) right after.
    mock.hold_handshakes();
    mock.drop_connections(Some(&me.phone));
    until(Duration::from_secs(20), "the client reconnecting", || mock.held_handshakes() == 1).await;
    let closing = tokio::spawn(async move {
        api.call(Method::POST, "/api/v1/sessions/midway/disconnect", Value::Null).await;
        api
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    mock.release_handshakes();
    let api = closing.await.unwrap();
    // Closed means closed: the login that completed late is ended too, and stays ended.
    until(Duration::from_secs(2), "no login left", || mock.online_accounts().is_empty()).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        mock.online_accounts(),
        Vec::<String>::new(),
        "a client kept running after its session closed"
    );
    let record = api.get("/api/v1/sessions/midway").await;
    assert_eq!(record["status"], "disconnected", "{record}");
    server.terminate().await;
}

/// Waits until `done` holds, failing with `what` after `within`.
async fn until(within: Duration, what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn whatsapp_ending_a_session_is_reported_with_its_reason() {
    let (mock, _dir, server, api) = fresh().await;
    let cases = [
        ("replaced", "6281200000041", "stream_replaced: "),
        ("banned", "6281200000042", "temporary_ban: WhatsApp banned the account for 7200 s"),
        ("outdated", "6281200000043", "client_outdated: "),
    ];
    for (n, (session, phone, _)) in cases.iter().enumerate() {
        link(&api, &mock, session, &account(phone, &format!("10000000000004{n}"))).await;
    }
    // WhatsApp ends what is logged in: wait until each device's login is live on the server
    // (the client may still be between its pairing connection and its login).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cases.iter().all(|(_, phone, _)| mock.online_accounts().iter().any(|online| online == phone)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every device logged in: {:?}",
            mock.online_accounts()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.replace_stream(cases[0].1);
    mock.ban(cases[1].1, 101, Duration::from_secs(7200));
    mock.outdate(cases[2].1);
    for (session, _, reason) in cases {
        let record = api.until_status(session, "disconnected", Duration::from_secs(20)).await;
        assert!(record["status_reason"].as_str().unwrap_or_default().starts_with(reason), "{record}");
        assert_eq!(record["auto_connect"], false, "ended for good: no heartbeat brings it back");
    }
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_in_the_middle_of_a_burst_loses_and_duplicates_nothing() {
    let (mock, dir, server, api) = fresh().await;
    let me = account("6281200000051", "100000000000051");
    link(&api, &mock, "crashy", &me).await;
    unpaced(&api, "crashy").await;
    mock.add_contact("6281300000052");

    let mut ids = Vec::new();
    for n in 0..40 {
        ids.push(api.send_text("crashy", "+6281300000052", &format!("crash burst {n}")).await);
    }
    server.kill().await; // no shutdown at all: the keys on disk are whatever was written
    let mut texts_by_id: HashMap<String, String> = HashMap::new();
    while let Some(received) = mock.next_message(Duration::from_millis(300)).await {
        texts_by_id.insert(received.id, received.text.unwrap_or_default());
    }
    assert!(texts_by_id.len() < ids.len(), "the crash came in the middle of the burst");

    let (server, api) = started(dir.path(), &mock).await;
    receive_exactly_once(&mock, &ids, texts_by_id).await;
    for id in &ids {
        api.until_message_status(id, &["sent", "delivered", "read"], Duration::from_secs(60)).await;
    }
    server.terminate().await;
}
