//! OTP messages in the outbox queue, one verification per phone, and rate limits.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_leave_one_verification_per_phone() {
    let (app, admin) = linked_app(|c| {
        c.otp.sends_per_phone = 100;
        c.otp.sends_per_ip = 1_000;
    })
    .await;
    // Requests that arrive together share writes; each phone still ends with one pending
    // verification, the others replaced.
    let phones: Vec<String> = (0..4).map(|n| format!("+62812345610{n:02}")).collect();
    let bodies: Vec<Value> = phones.iter().flat_map(|phone| vec![json!({ "phone": phone }); 5]).collect();
    let sends = bodies.into_iter().map(|body| app.post("/api/v1/otp/send", &admin, body));
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    for phone in &phones {
        let (_, log) = app.get(&format!("/api/v1/otp?phone={}", phone.replace('+', "%2B")), &admin).await;
        let verifications = log["verifications"].as_array().unwrap();
        assert_eq!(verifications.len(), 5, "{log}");
        let pending = verifications.iter().filter(|v| v["status"] == "pending").count();
        let replaced = verifications.iter().filter(|v| v["status"] == "canceled").count();
        assert_eq!((pending, replaced), (1, 4), "{log}");
    }
}

#[tokio::test]
async fn an_otp_jumps_ahead_of_an_unpaced_batch() {
    // An image whose download holds the dispatcher until the test lets it go.
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let files = axum::Router::new().route(
        "/held.png",
        axum::routing::get(move || {
            let gate = gate.clone();
            async move {
                gate.notified().await;
                let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
                png.extend_from_slice(&[7u8; 100]);
                png
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, files).await.unwrap() });
    let (app, admin) = linked_app(|c| c.otp_pacing.max_delay_ms = 0).await;

    // Sandbox sessions are unpaced: these are claimed together, the image first.
    app.post("/api/v1/sessions/otp/disconnect", &admin, Value::Null).await;
    let to = "+6281234560020";
    let queue = |body: Value| app.post("/api/v1/sessions/otp/messages", &admin, body);
    let (_, image) = queue(json!({ "to": to, "image": { "url": format!("{base}/held.png") } })).await;
    let mut texts = Vec::new();
    for n in 0..3 {
        let (_, m) = queue(json!({ "to": to, "text": format!("#{n}") })).await;
        texts.push(m["id"].as_str().unwrap().to_owned());
    }
    app.post("/api/v1/sessions/otp/connect", &admin, Value::Null).await;
    app.wait_for_message(&admin, image["id"].as_str().unwrap(), |m| m["status"] == "sending").await;
    let (_, second) = app.get(&format!("/api/v1/messages/{}", texts[0]), &admin).await;
    assert_eq!(second["status"], "sending", "claimed in the same batch: {second}");

    let (status, otp) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560021" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{otp}");
    release.notify_one();
    let otp_message =
        app.wait_for_message(&admin, otp["message_id"].as_str().unwrap(), |m| m["sent_at"].is_string()).await;
    let at =
        |m: &Value, field: &str| chrono::DateTime::parse_from_rfc3339(m[field].as_str().unwrap()).unwrap();
    for id in &texts {
        let text = app.wait_for_message(&admin, id, |m| m["sent_at"].is_string()).await;
        assert!(
            at(&text, "sent_at") >= at(&otp_message, "sent_at"),
            "the code went first: {text} {otp_message}"
        );
        assert_eq!(text["attempts"], 1, "given back unsent, then sent once: {text}");
    }
}

#[tokio::test]
async fn otp_messages_jump_the_queue_and_old_verifications_are_deleted() {
    let (app, admin) = linked_app(|c| {
        c.otp.retention_days = 0;
        c.otp.sweep_interval_ms = 100;
    })
    .await;
    // Ordinary messages, paced 300 ms apart, then a one-time password.
    app.call(
        Method::PATCH,
        "/api/v1/sessions/otp",
        &admin,
        json!({ "pacing": { "min_delay_ms": 300, "max_delay_ms": 300 } }),
    )
    .await;
    let mut ordinary = Vec::new();
    for n in 0..5 {
        let (_, m) = app
            .post(
                "/api/v1/sessions/otp/messages",
                &admin,
                json!({ "to": "+6281234560018", "text": format!("#{n}") }),
            )
            .await;
        ordinary.push(m["id"].as_str().unwrap().to_owned());
    }
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560019" })).await;
    let code = code_from_inbox(&app, &admin, "+6281234560019", 1).await;
    let (_, last) = app.get(&format!("/api/v1/messages/{}", ordinary[4]), &admin).await;
    assert_eq!(last["status"], "queued", "the code went first: {last}");

    // Retention 0 days: once finished, a verification is deleted by the next sweep.
    let id = sent["id"].as_str().unwrap().to_owned();
    app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": code })).await;
    for _ in 0..100 {
        let (status, _) = app.get(&format!("/api/v1/otp/{id}"), &admin).await;
        if status == StatusCode::NOT_FOUND {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the finished verification was kept past its retention");
}

#[tokio::test]
async fn sends_per_api_key_and_verifies_per_ip_are_limited() {
    let (app, admin) = linked_app(|c| {
        c.otp.sends_per_api_key = 2;
        c.otp.verifies_per_ip = 3;
    })
    .await;
    let (_, key) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "backend", "scopes": ["otp"] })).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let send = |credential: &str, n: u32| {
        app.request(Method::POST, "/api/v1/otp/send", Some(credential))
            .json(&json!({ "phone": format!("+62812345602{n:02}") }))
            .send()
    };
    for n in 0..2 {
        assert_eq!(send(&key, n).await.unwrap().status(), StatusCode::ACCEPTED);
    }
    let refused = send(&key, 2).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS, "third send with one key");
    assert!(refused.headers().get("retry-after").is_some());
    let (_, problem) = crate::common::read(refused).await;
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    assert_eq!(send(&admin, 3).await.unwrap().status(), StatusCode::ACCEPTED, "another credential");

    // Verifies from one address: wrong codes and unknown phones count alike.
    for n in 0..3 {
        let (status, _) = app
            .post(
                "/api/v1/otp/verify",
                &admin,
                json!({ "phone": format!("+62812345603{n:02}"), "code": "123456" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let refused = app
        .request(Method::POST, "/api/v1/otp/verify", Some(&admin))
        .json(&json!({ "phone": "+6281234560399", "code": "123456" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get("retry-after").is_some());
}
