//! Linking sessions end to end through the real HTTP server and the sandbox engine.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn qr_link_survives_a_restart_and_logout_shows_a_new_qr() {
    // The codes after the first last long enough for the test to fetch one in three formats and
    // scan it on a busy machine; the first still gives way to a second.
    let app = TestApp::spawn_with(|config| config.sandbox_timings.qr_timeout_ms = 10_000).await;
    let admin = app.admin().await;

    // A program uses an API key, not the admin's login.
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({ "name": "backend", "scopes": ["sessions", "read", "send"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("wag_"));

    app.create_session(&key, "shop").await;
    let mut events = app.events("shop", &key).await;
    assert_eq!(events.until("status").await["status"], "created");
    let (status, body) = app.post("/api/v1/sessions/shop/connect", &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // QR codes rotate: the first is valid longer than the next ones.
    let first = events.until("qr").await;
    let second = events.until("qr").await;
    assert_ne!(first["qr"], second["qr"], "a rotation shows a new code");
    assert!(first["qr"].as_str().unwrap().starts_with("2@"));

    // The QR endpoint serves the current code in every format.
    let (status, qr) = app.get("/api/v1/sessions/shop/qr", &key).await;
    assert_eq!(status, StatusCode::OK, "{qr}");
    assert!(qr["png"].as_str().unwrap().starts_with("data:image/png;base64,"));
    assert!(qr["svg"].as_str().unwrap().contains("<svg"));
    let png = app.request(Method::GET, "/api/v1/sessions/shop/qr.png", Some(&key)).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(&png.bytes().await.unwrap()[..4], b"\x89PNG");

    // Scan the code shown right now, as a phone.
    let (status, account) = app
        .post(
            "/api/v1/sandbox/sessions/shop/scan",
            &key,
            json!({ "phone": "+62 812-3456-7890", "push_name": "Toko", "qr": qr["qr"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(events.until("paired").await["account"]["phone"], "+6281234567890");
    let connected = events.until_status("connected").await;
    assert_eq!(connected["account"]["phone"], "+6281234567890");
    let session = app.session_status("shop", &key).await;
    assert_eq!(session["status"], "connected");
    assert_eq!(session["account"]["push_name"], "Toko");
    let (status, problem) = app.get("/api/v1/sessions/shop/qr", &key).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("already_connected")));

    // Restart the whole server on the same data: the session comes back linked, without a QR.
    drop(events);
    let app = app.stop().await.restart(|_| {}).await;
    let mut events = app.events("shop", &key).await;
    let status = events.until_status("connected").await;
    assert_eq!(status["account"]["phone"], "+6281234567890");
    assert_eq!(app.session_status("shop", &key).await["status"], "connected");

    // Logout unlinks; the next connect shows a new QR code.
    let (status, body) = app.post("/api/v1/sessions/shop/logout", &key, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "logged_out");
    assert!(body["account"].is_null());
    events.until_status("logged_out").await;
    app.post("/api/v1/sessions/shop/connect", &key, Value::Null).await;
    let fresh = events.until("qr").await;
    assert_ne!(fresh["qr"], first["qr"]);

    let (status, log) = app.get("/api/v1/sessions/shop/activity", &key).await;
    assert_eq!(status, StatusCode::OK);
    let kinds: Vec<&str> =
        log["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["created", "qr", "paired", "connected", "logged_out"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[tokio::test]
async fn pairing_code_flow() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "by-code").await;
    let mut events = app.events("by-code", &admin).await;

    let (status, problem) =
        app.post("/api/v1/sessions/by-code/pair-code", &admin, json!({ "phone": "not a phone" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone")));

    let (status, pair) =
        app.post("/api/v1/sessions/by-code/pair-code", &admin, json!({ "phone": "6281234567891" })).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let code = pair["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 8);
    assert_eq!(pair["display"], format!("{}-{}", &code[..4], &code[4..]));
    assert_eq!(events.until("pair_code").await["code"], code);
    assert_eq!(app.session_status("by-code", &admin).await["status"], "pairing_code");

    let (status, problem) = app
        .post("/api/v1/sandbox/sessions/by-code/pair-code/confirm", &admin, json!({ "code": "ZZZZ-ZZZZ" }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("wrong_pair_code")));
    let (status, account) = app
        .post(
            "/api/v1/sandbox/sessions/by-code/pair-code/confirm",
            &admin,
            json!({ "code": pair["display"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["phone"], "+6281234567891");
    events.until_status("connected").await;

    let (status, problem) =
        app.post("/api/v1/sessions/by-code/pair-code", &admin, json!({ "phone": "6281234567891" })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("already_linked")));
}

#[tokio::test]
async fn qr_codes_run_out_with_a_clear_status() {
    let app = TestApp::spawn_with(|c| {
        c.sandbox_timings.qr_first_timeout_ms = 200;
        c.sandbox_timings.qr_timeout_ms = 100;
        c.sandbox_timings.qr_codes = 2;
    })
    .await;
    let admin = app.admin().await;
    app.create_session(&admin, "ignored").await;
    let mut events = app.events("ignored", &admin).await;
    app.post("/api/v1/sessions/ignored/connect", &admin, Value::Null).await;
    let error = events.until("error").await;
    assert_eq!(error["code"], "qr_codes_exhausted");
    let session = app.session_status("ignored", &admin).await;
    assert_eq!(session["status"], "disconnected");
    assert_eq!(session["status_reason"], "qr_codes_exhausted");
    assert_eq!(session["auto_connect"], false);
    let (status, problem) = app.get("/api/v1/sessions/ignored/qr", &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("qr_not_available")));
    // Connecting again starts a new round of codes.
    app.post("/api/v1/sessions/ignored/connect", &admin, Value::Null).await;
    events.until("qr").await;
}

#[tokio::test]
async fn a_session_that_ended_for_good_is_not_brought_back_by_itself() {
    let app = TestApp::spawn_with(|c| {
        c.sandbox_timings.pair_code_timeout_ms = 200;
        c.cluster.heartbeat_ms = 100;
    })
    .await;
    let admin = app.admin().await;
    app.create_session(&admin, "unpaired").await;
    let mut events = app.events("unpaired", &admin).await;
    let (status, pair) =
        app.post("/api/v1/sessions/unpaired/pair-code", &admin, json!({ "phone": "6281234567892" })).await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let ended = events.until_status("disconnected").await;
    assert_eq!(ended["reason"], "pairing code expired");
    // Heartbeats claim what should be online: an ending like this one (or a replaced stream,
    // a ban) must not be undone by them.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let session = app.session_status("unpaired", &admin).await;
    assert_eq!(
        (session["status"].as_str(), session["auto_connect"].as_bool()),
        (Some("disconnected"), Some(false)),
        "{session}"
    );
    assert_eq!(session["status_reason"], "pairing code expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_right_after_connect_is_the_last_word() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Many sessions at once, so that the server is busy and events queue up.
    let rounds = (0..100).map(|round| flip(&app, &admin, round));
    futures::future::join_all(rounds).await;
}

async fn flip(app: &TestApp, admin: &str, round: usize) {
    let id = format!("flip{round}");
    app.create_session(admin, &id).await;
    let mut events = app.events(&id, admin).await;
    app.post(&format!("/api/v1/sessions/{id}/connect"), admin, Value::Null).await;
    app.post(&format!("/api/v1/sessions/{id}/disconnect"), admin, Value::Null).await;
    // Whatever the closed connection still had in flight (its first QR code) must not land
    // after the "disconnected".
    let mut last_status = Value::Null;
    let mut after_disconnect = Vec::new();
    while let Ok(Some((name, body))) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        if last_status == "disconnected" {
            after_disconnect.push(name.clone());
        }
        if name == "status" {
            last_status = body["status"].clone();
        }
    }
    assert_eq!(last_status, "disconnected", "round {round}");
    assert!(after_disconnect.is_empty(), "round {round}: {after_disconnect:?} after the disconnect");
    let session = app.session_status(&id, admin).await;
    assert_eq!(session["status"], "disconnected", "round {round}: {session}");
}

#[tokio::test]
async fn disconnect_keeps_the_link_and_delete_removes_everything() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "temp").await;
    let mut events = app.events("temp", &admin).await;
    app.post("/api/v1/sessions/temp/connect", &admin, Value::Null).await;
    events.until("qr").await;
    app.post("/api/v1/sandbox/sessions/temp/scan", &admin, json!({ "phone": "+6281234567892" })).await;
    events.until_status("connected").await;

    let (_, body) = app.post("/api/v1/sessions/temp/disconnect", &admin, Value::Null).await;
    assert_eq!(body["status"], "disconnected");
    assert_eq!(body["auto_connect"], false);
    let (_, body) = app.post("/api/v1/sessions/temp/restart", &admin, Value::Null).await;
    assert_eq!(body["auto_connect"], true);
    events.until_status("connected").await;

    assert!(app.engine_state_exists("temp").await, "the linked account is kept");
    let response = app.request(Method::DELETE, "/api/v1/sessions/temp", Some(&admin)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    events.until("deleted").await;
    assert!(events.next().await.is_none(), "the stream ends when the session is deleted");
    assert!(!app.engine_state_exists("temp").await, "stored credentials are removed");
    assert!(!app.data_dir.join("sessions").join("temp").exists(), "and the session's directory");
    let (status, problem) = app.post("/api/v1/sessions/temp/connect", &admin, Value::Null).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("session_not_found")));
    let (status, body) = app.get("/api/v1/sessions/temp/activity", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn qr_page_is_html_that_streams_with_a_short_lived_token() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "page").await;

    let anonymous = app.client.get(app.url("/api/v1/sessions/page/qr-page")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (status, token) = app.post("/api/v1/sessions/page/stream-token", &admin, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let page = app.client.get(app.url(token["qr_page_url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("EventSource") && html.contains("data-session=\"page\""));

    // A stream token only reads, and only its own session.
    let stream_token = token["token"].as_str().unwrap();
    let (status, problem) = app.post("/api/v1/sessions/page/connect", stream_token, Value::Null).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_scope")));
    app.create_session(&admin, "other").await;
    let (status, _) = app.get("/api/v1/sessions/other", stream_token).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // API keys never go into URLs.
    let (_, key) = app.post("/api/v1/api-keys", &admin, json!({ "name": "k", "scopes": ["read"] })).await;
    let url = format!("/api/v1/sessions/page/qr-page?token={}", key["key"].as_str().unwrap());
    let response = app.client.get(app.url(&url)).send().await.unwrap();
    let (status, problem) = common::read(response).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("api_key_in_url")));
}
