//! Sending through the outbox: statuses, receipts, order, retries, idempotency.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn fast_retries(config: &mut wagate_server::Config) {
    config.delivery.max_attempts = 2;
    config.delivery.retry_base_ms = 20;
    config.delivery.ack_timeout_ms = 2_000;
}

#[tokio::test]
async fn a_text_goes_queued_sent_delivered_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "shop", "+6281200000001").await;
    let mut events = app.events("shop", &admin).await;

    let (status, accepted) = app
        .post("/api/v1/sessions/shop/messages", &admin, json!({ "to": "0812", "text": "Your order shipped" }))
        .await;
    assert_eq!(
        (status, accepted["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_phone")),
        "too short for a number of the sender's country: {accepted}"
    );
    let (status, accepted) = app
        .post(
            "/api/v1/sessions/shop/messages",
            &admin,
            json!({ "to": "+62 812-3456-7891", "text": "Your order shipped" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["status"], "queued");
    assert_eq!(accepted["to"], "+6281234567891");
    let id = accepted["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("3EB0"));

    for expected in ["sent", "delivered", "read"] {
        loop {
            let event = events.until("message_status").await;
            if event["message_id"] == id.as_str() && event["status"] == expected {
                break;
            }
        }
    }
    let message = app.wait_for_message(&admin, &id, |m| m["status"] == "read").await;
    let history: Vec<&str> =
        message["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "sending", "sent", "delivered", "read"]);
    assert!(
        message["sent_at"].is_string()
            && message["delivered_at"].is_string()
            && message["read_at"].is_string()
    );

    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234567891", &admin).await;
    let received = inbox["messages"].as_array().unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["id"], id.as_str());
    assert_eq!(received[0]["content"]["body"], "Your order shipped");
}

#[tokio::test]
async fn every_content_type_is_accepted_and_delivered() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "kinds", "+6281200000002").await;
    let to = "+6281234500001";
    let bodies = [
        json!({ "text": "hi @6281234500002", "mentions": ["+6281234500002"], "reply_to": "3EB0AAAA" }),
        json!({ "location": { "latitude": -6.2, "longitude": 106.8, "name": "Monas", "address": "Jakarta" } }),
        json!({ "contact": { "name": "Budi", "phone": "+6281234500003" } }),
        json!({ "reaction": { "message_id": "3EB0AAAA", "emoji": "👍" } }),
        json!({ "poll": { "question": "Lunch?", "options": ["Nasi", "Mie"], "selectable_count": 1 } }),
        json!({ "buttons": { "text": "Pick", "buttons": [{ "id": "a", "title": "A" }] } }),
        json!({ "list": { "text": "Menu", "button_text": "Open", "sections": [{ "title": "Food", "rows": [{ "id": "1", "title": "Nasi" }] }] } }),
    ];
    let mut ids = Vec::new();
    for mut body in bodies {
        body["to"] = json!(to);
        let (status, accepted) = app.post("/api/v1/sessions/kinds/messages", &admin, body.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body} → {accepted}");
        ids.push((
            accepted["id"].as_str().unwrap().to_owned(),
            accepted["type"].as_str().unwrap().to_owned(),
        ));
    }
    for (id, _) in &ids {
        app.wait_for_message(&admin, id, |m| m["status"] == "read").await;
    }
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{to}"), &admin).await;
    let kinds: Vec<&str> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "location", "contact", "reaction", "poll", "buttons", "list"], "in order");
    let (_, shown) = app.get(&format!("/api/v1/messages/{}", ids[5].0), &admin).await;
    assert_eq!(shown["best_effort"], true, "buttons are flagged best effort");
    let contact = &inbox["messages"][2]["content"];
    assert!(contact["vcard"].as_str().unwrap().contains("waid=6281234500003"));
}

#[tokio::test]
async fn messages_keep_their_order_and_wait_for_the_connection() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "later").await;
    let to = "+6281234500010";
    let mut ids = Vec::new();
    for n in 0..30 {
        let (status, accepted) = app
            .post("/api/v1/sessions/later/messages", &admin, json!({ "to": to, "text": format!("#{n}") }))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, first) = app.get(&format!("/api/v1/messages/{}", ids[0]), &admin).await;
    assert_eq!(first["status"], "queued", "nothing is sent before the session is linked");

    // Cancel one while it waits.
    let (status, canceled) =
        app.call(Method::DELETE, &format!("/api/v1/messages/{}", ids[29]), &admin, Value::Null).await;
    assert_eq!((status, canceled["status"].as_str()), (StatusCode::OK, Some("canceled")));
    let (status, problem) =
        app.call(Method::DELETE, &format!("/api/v1/messages/{}", ids[29]), &admin, Value::Null).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("invalid_message_status")));

    let mut events = app.events("later", &admin).await;
    app.post("/api/v1/sessions/later/connect", &admin, Value::Null).await;
    events.until("qr").await;
    app.post("/api/v1/sandbox/sessions/later/scan", &admin, json!({ "phone": "+6281200000003" })).await;
    app.wait_for_message(&admin, &ids[28], |m| {
        m["status"] == "sent" || m["status"] == "delivered" || m["status"] == "read"
    })
    .await;
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{to}"), &admin).await;
    let bodies: Vec<String> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..29).map(|n| format!("#{n}")).collect();
    assert_eq!(bodies, expected, "sent once each, in order, without the canceled one");
}

#[tokio::test]
async fn failures_have_reasons_and_transient_ones_are_retried() {
    let app = TestApp::spawn_with(fast_retries).await;
    let admin = app.admin().await;
    app.linked(&admin, "fails", "+6281200000004").await;
    let send =
        |to: &str| app.post("/api/v1/sessions/fails/messages", &admin, json!({ "to": to, "text": "x" }));
    let (_, not_on_wa) = send("+6281234560000").await;
    let (_, restricted) = send("+6281234560463").await;
    let (_, flaky) = send("+6281234560500").await;
    let (_, group) = app
        .post("/api/v1/sessions/fails/messages", &admin, json!({ "to": "1203630000@g.us", "text": "x" }))
        .await;

    let failed = |m: &Value| m["status"] == "failed";
    let m = app.wait_for_message(&admin, not_on_wa["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("not on WhatsApp"), "{m}");
    assert_eq!(m["attempts"], 1, "permanent failures are not retried");
    let m = app.wait_for_message(&admin, restricted["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("463"), "{m}");
    let m = app.wait_for_message(&admin, flaky["id"].as_str().unwrap(), failed).await;
    assert_eq!(m["attempts"], 2, "transient failures are retried up to max_attempts: {m}");
    assert!(m["reason"].as_str().unwrap().contains("gave up after 2 attempts"));
    let m = app.wait_for_message(&admin, group["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("unknown group"), "{m}");

    // A failed message can be queued again, with the same id.
    let id = flaky["id"].as_str().unwrap();
    let (status, retried) = app.post(&format!("/api/v1/messages/{id}/retry"), &admin, Value::Null).await;
    assert_eq!((status, retried["status"].as_str()), (StatusCode::OK, Some("queued")));
    app.wait_for_message(&admin, id, |m| m["status"] == "failed" && m["attempts"].as_i64() > Some(2)).await;
    let (status, problem) = app
        .post(&format!("/api/v1/messages/{}/retry", not_on_wa["id"].as_str().unwrap()), &admin, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{problem}");

    let (_, failed_list) = app.get("/api/v1/messages?status=failed&session=fails", &admin).await;
    assert!(failed_list["messages"].as_array().unwrap().len() >= 3);
    let (_, searched) = app.get("/api/v1/messages?q=463", &admin).await;
    assert_eq!(searched["messages"].as_array().unwrap().len(), 1, "search finds failure reasons");
}

#[tokio::test]
async fn a_retried_message_holds_the_rest_of_its_batch() {
    let app = TestApp::spawn_with(fast_retries).await;
    let admin = app.admin().await;
    app.create_session(&admin, "held").await;
    // Queued while the session is not linked, so that one claim takes them all.
    let to = "+6281234500030";
    let queue = |text: String, to: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let (status, accepted) =
                app.post("/api/v1/sessions/held/messages", &admin, json!({ "to": to, "text": text })).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            accepted["id"].as_str().unwrap().to_owned()
        }
    };
    let mut before = Vec::new();
    for n in 0..2 {
        before.push(queue(format!("#{n}"), to).await);
    }
    let flaky = queue("flaky".into(), "+6281234560500").await;
    let mut after = Vec::new();
    for n in 2..6 {
        after.push(queue(format!("#{n}"), to).await);
    }
    let mut events = app.events("held", &admin).await;
    app.post("/api/v1/sessions/held/connect", &admin, Value::Null).await;
    events.until("qr").await;
    app.post("/api/v1/sandbox/sessions/held/scan", &admin, json!({ "phone": "+6281200000005" })).await;

    let flaky = app.wait_for_message(&admin, &flaky, |m| m["status"] == "failed").await;
    assert_eq!(flaky["attempts"], 2, "{flaky}");
    let gave_up = flaky["history"].as_array().unwrap().last().unwrap()["at"].as_str().unwrap().to_owned();
    for id in before.iter().chain(&after) {
        app.wait_for_message(&admin, id, |m| m["sent_at"].is_string()).await;
    }
    for id in &after {
        let (_, message) = app.get(&format!("/api/v1/messages/{id}"), &admin).await;
        assert_eq!(message["attempts"], 1, "given back unsent, then sent once: {message}");
        let attempts: Vec<&Value> =
            message["history"].as_array().unwrap().iter().filter(|h| h["status"] == "sending").collect();
        assert_eq!(attempts.len(), 1, "{message}");
        let sent = message["sent_at"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(sent).unwrap()
                >= chrono::DateTime::parse_from_rfc3339(&gave_up).unwrap(),
            "not sent before the message ahead of it was settled: {message} {flaky}"
        );
    }
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{to}"), &admin).await;
    let bodies: Vec<&str> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["#0", "#1", "#2", "#3", "#4", "#5"], "once each, in order");
}

#[tokio::test]
async fn idempotency_keys_make_retries_safe() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "idem").await;
    let send = |key: &str, text: &str| {
        app.request(Method::POST, "/api/v1/sessions/idem/messages", Some(&admin))
            .header("idempotency-key", key)
            .json(&json!({ "to": "+6281234500020", "text": text }))
            .send()
    };
    let (first_status, first) = common::read(send("order-1", "hello").await.unwrap()).await;
    let (again_status, again) = common::read(send("order-1", "hello").await.unwrap()).await;
    assert_eq!((first_status, again_status), (StatusCode::ACCEPTED, StatusCode::OK));
    assert_eq!(first["id"], again["id"], "same key and body: the same message");
    let (status, problem) = common::read(send("order-1", "HELLO").await.unwrap()).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("idempotency_key_reused")));
    let (_, list) = app.get("/api/v1/messages?session=idem", &admin).await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_messages_are_refused_with_a_reason() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "bad").await;
    let cases = [
        (json!({ "to": "+6281234500030" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_message"),
        (
            json!({ "to": "+6281234500030", "text": "a", "poll": { "question": "q", "options": ["a", "b"] } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            json!({ "to": "+6281234500030", "text": "x".repeat(65_537) }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (json!({ "to": "+6281234500030", "text": "" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_message"),
        (json!({ "to": "not a phone", "text": "x" }), StatusCode::BAD_REQUEST, "invalid_phone"),
        (json!({ "to": "abc@g.us", "text": "x" }), StatusCode::BAD_REQUEST, "invalid_recipient"),
        (
            json!({ "to": "+6281234500030", "sticker_pack": {} }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "to": "+6281234500030", "poll": { "question": "q", "options": ["only"] } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (
            json!({ "to": "+6281234500030", "location": { "latitude": 100, "longitude": 0 } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_message",
        ),
        (json!({ "to": "+6281234500030", "image": {} }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (
            json!({ "to": "+6281234500030", "image": { "url": "ftp://example.com/a.png" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_media_url",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = app.post("/api/v1/sessions/bad/messages", &admin, body.clone()).await;
        assert_eq!((got, problem["code"].as_str().unwrap_or("")), (status, code), "{body}");
    }
    let (_, list) = app.get("/api/v1/messages", &admin).await;
    assert!(list["messages"].as_array().unwrap().is_empty(), "nothing was queued");

    let reader = app.post("/api/v1/api-keys", &admin, json!({ "name": "r", "scopes": ["read"] })).await.1;
    let (status, problem) = app
        .post(
            "/api/v1/sessions/bad/messages",
            reader["key"].as_str().unwrap(),
            json!({ "to": "+6281234500030", "text": "x" }),
        )
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_scope")));
}

#[tokio::test]
async fn send_from_a_phone_number_and_tenants_stay_apart() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    app.linked(&alice, "alice-1", "+6281200000005").await;
    let (status, accepted) = app
        .post(
            "/api/v1/messages",
            &alice,
            json!({ "from": "6281200000005", "to": "+6281234500040", "text": "hi" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["session_id"], "alice-1");
    let id = accepted["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            "/api/v1/messages",
            &bob,
            json!({ "from": "6281200000005", "to": "+6281234500040", "text": "hi" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob cannot send from alice's number");
    let (status, _) = app.get(&format!("/api/v1/messages/{id}"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nor see her messages");
    let (_, bobs) = app.get("/api/v1/messages", &bob).await;
    assert!(bobs["messages"].as_array().unwrap().is_empty());
    let (status, problem) =
        app.post("/api/v1/messages", &alice, json!({ "to": "+6281234500040", "text": "hi" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_message"))
    );
}
