//! WebSocket streams and the seed-compatible routes.

mod common;

use std::time::Duration;

use common::TestApp;
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message =
            tokio::time::timeout(Duration::from_secs(10), socket.next()).await.expect("a frame in time");
        match message.expect("socket open").expect("frame") {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(_) => panic!("socket closed"),
            _ => continue,
        }
    }
}

async fn until_type(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

#[tokio::test]
async fn seed_websocket_qr_flow() {
    let app = TestApp::spawn().await;
    // The multi-session API's own flow: POST /api/login, POST /api/sessions, connect, /api/ws.
    let response = app
        .request(Method::POST, "/api/login", None)
        .json(&json!({ "username": "admin", "password": common::ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    let (status, login) = common::read(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(login["success"], true);
    assert_eq!(login["user"]["username"], "admin");
    let token = login["token"].as_str().unwrap().to_owned();

    let (status, session) = app
        .post(
            "/api/sessions",
            &token,
            json!({ "name": "Business Support", "webhook_url": "https://example.com/hook" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["connected"], false);
    let id = session["id"].as_str().unwrap().to_owned();

    let (mut socket, _) =
        tokio_tungstenite::connect_async(app.ws_url(&format!("/api/ws/{id}?token={token}"))).await.unwrap();
    let (status, connect) = app.post(&format!("/api/sessions/{id}/connect"), &token, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(connect["success"], true);

    let qr = until_type(&mut socket, "qr").await;
    let code = qr["data"]["qr"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/sandbox/sessions/{id}/scan"),
        &token,
        json!({ "phone": "6282260790996", "qr": code }),
    )
    .await;
    let success = until_type(&mut socket, "success").await;
    assert_eq!(success["data"]["account"]["phone"], "+6282260790996");
    socket.send(Message::Close(None)).await.unwrap();

    let (status, list) = app.get("/api/sessions", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["connected"], true);
    assert_eq!(list[0]["logged_in"], true);
    assert_eq!(list[0]["phone"], "6282260790996");

    let (status, renamed) = app
        .call(Method::PUT, &format!("/api/sessions/{id}/name"), &token, json!({ "name": "Support" }))
        .await;
    assert_eq!((status, renamed["name"].as_str()), (StatusCode::OK, Some("Support")));
    let (status, hooked) = app
        .call(
            Method::PUT,
            &format!("/api/sessions/{id}/webhook"),
            &token,
            json!({ "webhook_url": "https://myapp.test/webhook" }),
        )
        .await;
    assert_eq!(
        (status, hooked["webhook_url"].as_str()),
        (StatusCode::OK, Some("https://myapp.test/webhook"))
    );
    let (status, shown) = app.get(&format!("/api/sessions/{id}"), &token).await;
    assert_eq!((status, shown["name"].as_str()), (StatusCode::OK, Some("Support")));
    let (status, body) = app.post(&format!("/api/sessions/{id}/disconnect"), &token, Value::Null).await;
    assert_eq!((status, body["session"]["connected"].as_bool()), (StatusCode::OK, Some(false)));
    let (status, body) = app.call(Method::DELETE, &format!("/api/sessions/{id}"), &token, Value::Null).await;
    assert_eq!((status, body["success"].as_bool()), (StatusCode::OK, Some(true)));

    // Unauthenticated sockets are refused before the upgrade.
    let refused = tokio_tungstenite::connect_async(app.ws_url(&format!("/api/ws/{id}"))).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn v1_websocket_carries_the_same_events_as_sse() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "ws").await;
    let (_, token) = app.post("/api/v1/sessions/ws/stream-token", &admin, Value::Null).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(app.ws_url(token["websocket_url"].as_str().unwrap())).await.unwrap();
    assert_eq!(next_json(&mut socket).await["event"], "status", "the current state comes first");
    app.post("/api/v1/sessions/ws/connect", &admin, Value::Null).await;
    let mut qr = next_json(&mut socket).await;
    while qr["event"] != "qr" {
        qr = next_json(&mut socket).await;
    }
    assert!(qr["qr"].as_str().unwrap().starts_with("2@"));
    assert!(qr["expires_at"].is_string());
}

#[tokio::test]
async fn seed_single_tenant_routes() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let anonymous = app
        .client
        .post(app.url("/api/sessions/create"))
        .json(&json!({ "sessionId": "my-session" }))
        .send()
        .await
        .unwrap();
    let (status, problem) = common::read(anonymous).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(problem["success"], false, "seed clients read `success`");

    let (status, created) =
        app.post("/api/sessions/create", &admin, json!({ "sessionId": "my-session" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["success"], true);
    assert_eq!(created["data"]["sessionId"], "my-session");

    // The session connects at once: a QR code shows up.
    let mut qr = Value::Null;
    for _ in 0..50 {
        let (status, body) = app.get("/api/sessions/my-session/qr", &admin).await;
        if status == StatusCode::OK {
            qr = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(qr["data"]["qrImage"].as_str().unwrap().starts_with("data:image/png;base64,"), "{qr}");
    assert_eq!(qr["data"]["qrCode"], qr["data"]["qrImage"], "seed 000's client reads `data.qrCode`");

    let (status, body) = app.get("/api/sessions/my-session/status", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["data"]["status"].as_str(), body["data"]["connected"].as_bool()),
        (Some("qr"), Some(false))
    );

    let page =
        app.request(Method::GET, "/api/sessions/my-session/qr-page", Some(&admin)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("<!doctype html>"));

    let (status, body) = app.call(Method::PUT, "/api/sessions/my-session/restart", &admin, Value::Null).await;
    assert_eq!((status, body["success"].as_bool()), (StatusCode::OK, Some(true)));

    let (status, dup) = app.post("/api/sessions/create", &admin, json!({ "sessionId": "my-session" })).await;
    assert_eq!(
        (status, dup["code"].as_str(), dup["success"].as_bool()),
        (StatusCode::CONFLICT, Some("session_exists"), Some(false))
    );

    let (status, body) = app.call(Method::DELETE, "/api/sessions/my-session", &admin, Value::Null).await;
    assert_eq!((status, body["success"].as_bool()), (StatusCode::OK, Some(true)));
    let (status, _) = app.get("/api/sessions/my-session/status", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Seeds 001/002 check `GET /api/health`: no credentials, the seeds' envelope, the database.
#[tokio::test]
async fn seed_health_check() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/api/health")).send().await.unwrap();
    let (status, body) = common::read(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["database"], "ok");
    assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn inbound_messages_and_the_sandbox_inbox() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for (id, phone) in [("a", "+6281200000001"), ("b", "+6281200000002")] {
        app.create_session(&admin, id).await;
        let mut events = app.events(id, &admin).await;
        app.post(&format!("/api/v1/sessions/{id}/connect"), &admin, Value::Null).await;
        events.until("qr").await;
        app.post(&format!("/api/v1/sandbox/sessions/{id}/scan"), &admin, json!({ "phone": phone })).await;
        events.until_status("connected").await;
    }
    let mut events = app.events("a", &admin).await;
    let (status, injected) = app
        .post(
            "/api/v1/sandbox/sessions/a/inbound",
            &admin,
            json!({ "from": "+6281299999999", "text": "hello" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{injected}");
    let received = events.until("message_received").await;
    assert_eq!(received["message_id"], injected["id"]);
    assert_eq!(received["from"], "+6281299999999");

    let (status, inbox) = app.get("/api/v1/sandbox/inbox/6281299999999", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox["phone"], "+6281299999999");
    assert!(inbox["messages"].as_array().unwrap().is_empty(), "nobody wrote to this number yet");
    let (status, problem) = app.get("/api/v1/sandbox/inbox/not-a-number", &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone")));

    // A message the database cannot take is neither announced nor confirmed to the network
    // (which then delivers it again).
    sqlx::any::install_default_drivers();
    let url = app.database_url();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE inbound_messages RENAME TO inbound_messages_away")
        .execute(&mut db)
        .await
        .unwrap();
    let (status, problem) = app
        .post(
            "/api/v1/sandbox/sessions/a/inbound",
            &admin,
            json!({ "from": "+6281299999999", "text": "lost?" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("inbound_not_stored"))
    );
    sqlx::query("ALTER TABLE inbound_messages_away RENAME TO inbound_messages")
        .execute(&mut db)
        .await
        .unwrap();
    let (status, injected) = app
        .post(
            "/api/v1/sandbox/sessions/a/inbound",
            &admin,
            json!({ "from": "+6281299999999", "text": "again" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{injected}");
    let received = events.until("message_received").await;
    assert_eq!(received["message_id"], injected["id"], "nothing was announced for the lost one");
}
