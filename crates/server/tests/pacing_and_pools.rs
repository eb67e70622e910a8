//! Pacing (delays, caps) and pools (routing, health, moving queued messages).

mod common;

use std::time::Duration;

use chrono::DateTime;
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn sent(m: &Value) -> bool {
    ["sent", "delivered", "read"].contains(&m["status"].as_str().unwrap_or(""))
}

fn millis(at: &Value) -> i64 {
    DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap().timestamp_millis()
}

#[tokio::test]
async fn pacing_spaces_messages_and_caps_stop_them() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "paced", "+6281200000041").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            "/api/v1/sessions/paced",
            &admin,
            json!({ "pacing": { "min_delay_ms": 300, "max_delay_ms": 400, "hourly_cap": 3 } }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pacing"]["min_delay_ms"], 300);
    let (status, problem) = app
        .call(
            Method::PATCH,
            "/api/v1/sessions/paced",
            &admin,
            json!({ "pacing": { "min_delay_ms": 5, "max_delay_ms": 1 } }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_pacing"))
    );

    let mut ids = Vec::new();
    for n in 0..4 {
        let (_, accepted) = app
            .post(
                "/api/v1/sessions/paced/messages",
                &admin,
                json!({ "to": "+6281234500100", "text": format!("#{n}") }),
            )
            .await;
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    let mut times = Vec::new();
    for id in &ids[..3] {
        times.push(millis(&app.wait_for_message(&admin, id, sent).await["sent_at"]));
    }
    for pair in times.windows(2) {
        assert!(pair[1] - pair[0] >= 290, "at least the minimum delay apart: {times:?}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, fourth) = app.get(&format!("/api/v1/messages/{}", ids[3]), &admin).await;
    assert_eq!(fourth["status"], "queued", "the hourly cap holds the fourth: {fourth}");
    assert!(fourth["reason"].as_str().unwrap().contains("cap"));

    // Back to the engine's default (none for sandbox sessions).
    let (_, body) =
        app.call(Method::PATCH, "/api/v1/sessions/paced", &admin, json!({ "pacing": null })).await;
    assert!(body["pacing"].is_null());
}

#[tokio::test]
async fn pools_route_to_healthy_sessions_and_move_queued_messages() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.max_attempts = 1;
    })
    .await;
    let admin = app.admin().await;
    app.linked(&admin, "p1", "+6281200000042").await;
    app.linked(&admin, "p2", "+6281200000043").await;
    for id in ["p1", "p2"] {
        let (status, body) = app
            .call(Method::PATCH, &format!("/api/v1/sessions/{id}"), &admin, json!({ "pool": "otp" }))
            .await;
        assert_eq!((status, body["pool"].as_str()), (StatusCode::OK, Some("otp")));
    }
    // Round robin spreads messages over both members.
    let mut used = std::collections::HashSet::new();
    for n in 0..4 {
        let (status, accepted) = app
            .post(
                "/api/v1/messages",
                &admin,
                json!({ "pool": "otp", "to": format!("+62812345001{n:02}"), "text": "x" }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        used.insert(accepted["session_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(used.len(), 2, "{used:?}");
    let (status, problem) = app
        .post("/api/v1/messages", &admin, json!({ "pool": "nope", "to": "+6281234500199", "text": "x" }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::NOT_FOUND, Some("pool_not_found")));

    // A restriction (463) takes p1 out of rotation.
    let (_, restricted) = app
        .post(
            "/api/v1/sessions/p1/messages",
            &admin,
            json!({ "to": "+6281234560463", "text": "hi stranger" }),
        )
        .await;
    app.wait_for_message(&admin, restricted["id"].as_str().unwrap(), |m| m["status"] == "failed").await;
    for _ in 0..4 {
        let (_, accepted) = app
            .post("/api/v1/messages", &admin, json!({ "pool": "otp", "to": "+6281234500150", "text": "x" }))
            .await;
        assert_eq!(accepted["session_id"], "p2", "restricted sessions are skipped");
    }

    // With every member offline, pool messages wait (durably) on one of them; once p3 joins the
    // pool connected, they move there and go out.
    for id in ["p1", "p2"] {
        let (_, disconnected) =
            app.post(&format!("/api/v1/sessions/{id}/disconnect"), &admin, Value::Null).await;
        assert_eq!(disconnected["status"], "disconnected");
    }
    let mut waiting = Vec::new();
    for n in 0..3 {
        let (_, accepted) = app
            .post(
                "/api/v1/messages",
                &admin,
                json!({ "pool": "otp", "to": format!("+62812345002{n:02}"), "text": "wait" }),
            )
            .await;
        waiting.push(accepted["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in &waiting {
        let (_, m) = app.get(&format!("/api/v1/messages/{id}"), &admin).await;
        assert_eq!(m["status"], "queued", "{m}");
    }
    app.linked(&admin, "p3", "+6281200000044").await;
    app.call(Method::PATCH, "/api/v1/sessions/p3", &admin, json!({ "pool": "otp" })).await;
    for id in &waiting {
        let m = app.wait_for_message(&admin, id, sent).await;
        assert_eq!(m["session_id"], "p3", "moved to the healthy member: {m}");
    }
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234500200", &admin).await;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1, "sent once");
    assert_eq!(inbox["messages"][0]["from"], "+6281200000044");
}

#[tokio::test]
async fn a_session_that_drops_mid_burst_loses_nothing() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "burst", "+6281200000045").await;
    let mut ids = Vec::new();
    for n in 0..60 {
        let (_, accepted) = app
            .post(
                "/api/v1/sessions/burst/messages",
                &admin,
                json!({ "to": "+6281234500300", "text": format!("#{n:02}") }),
            )
            .await;
        ids.push(accepted["id"].as_str().unwrap().to_owned());
        if n == 20 {
            app.post("/api/v1/sessions/burst/disconnect", &admin, Value::Null).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.post("/api/v1/sessions/burst/connect", &admin, Value::Null).await;
    for id in &ids {
        app.wait_for_message(&admin, id, sent).await;
    }
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234500300", &admin).await;
    let bodies: Vec<String> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"]["body"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..60).map(|n| format!("#{n:02}")).collect();
    assert_eq!(bodies, expected, "every message once, in order");
}

#[tokio::test]
async fn deleting_a_session_leaves_no_message_waiting_for_it() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    // Recipients end in 1: none of the sandbox's numbers that fail on purpose.
    for (id, phone) in [("d1", "+6281200000046"), ("d2", "+6281200000047"), ("d3", "+6281200000048")] {
        app.linked(&admin, id, phone).await;
        app.post(&format!("/api/v1/sessions/{id}/disconnect"), &admin, Value::Null).await;
    }
    for id in ["d1", "d2"] {
        app.call(Method::PATCH, &format!("/api/v1/sessions/{id}"), &admin, json!({ "pool": "ops" })).await;
    }
    let queue = |session: &'static str, body: Value| {
        let app = &app;
        let admin = &admin;
        async move {
            let path = format!("/api/v1/sessions/{session}/messages");
            let (status, accepted) = app.post(&path, admin, body).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
            accepted["id"].as_str().unwrap().to_owned()
        }
    };
    // d3 is in no pool: its queued messages fail when it is deleted.
    let mut alone = Vec::new();
    for n in 0..3 {
        alone.push(queue("d3", json!({ "to": format!("+628123456{n}01"), "text": "alone" })).await);
    }
    // d1's pool messages move to d2; a message sent through d1 by name (not the pool) fails.
    let mut pooled = Vec::new();
    for n in 0..3 {
        let (status, accepted) = app
            .post(
                "/api/v1/messages",
                &admin,
                json!({ "pool": "ops", "to": format!("+628123457{n}01"), "text": "pooled" }),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        pooled.push((accepted["id"].as_str().unwrap().to_owned(), accepted["session_id"].clone()));
    }
    let pinned = queue("d1", json!({ "to": "+6281234580001", "text": "pinned" })).await;

    for id in ["d3", "d1"] {
        let response =
            app.request(Method::DELETE, &format!("/api/v1/sessions/{id}"), Some(&admin)).send().await;
        assert_eq!(response.unwrap().status(), StatusCode::NO_CONTENT);
    }
    for id in alone.iter().chain([&pinned]) {
        let (_, m) = app.get(&format!("/api/v1/messages/{id}"), &admin).await;
        assert_eq!(
            (m["status"].as_str(), m["reason"].as_str()),
            (Some("failed"), Some("session deleted")),
            "{m}"
        );
        let last = m["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["status"], "failed", "{m}");
    }
    let (_, waiting) = app.get("/api/v1/messages?status=queued", &admin).await;
    let waiting: Vec<(&str, &str)> = waiting["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["session_id"].as_str().unwrap()))
        .collect();
    let mut expected: Vec<&str> = pooled.iter().map(|(id, _)| id.as_str()).collect();
    expected.sort_unstable();
    let mut queued: Vec<&str> = waiting.iter().map(|(id, _)| *id).collect();
    queued.sort_unstable();
    assert_eq!(queued, expected, "only the pool's messages wait, every one of them");
    assert!(
        waiting.iter().all(|(_, session)| *session == "d2"),
        "all on the pool's other member: {waiting:?}"
    );
    assert!(pooled.iter().any(|(_, session)| session == "d1"), "some were on the deleted member: {pooled:?}");

    app.post("/api/v1/sessions/d2/connect", &admin, Value::Null).await;
    for (id, _) in &pooled {
        let m = app.wait_for_message(&admin, id, sent).await;
        assert_eq!(m["session_id"], "d2", "{m}");
    }
}
