//! The push flow: send, verify once, attempts, resend, expiry and what is announced.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn push_flow_sends_verifies_once_and_never_shows_the_code() {
    let (app, admin) = linked_app(|_| {}).await;
    let phone = "+6281234560001";
    let (status, sent) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": phone, "brand": "Acme" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    for field in ["id", "status", "expires_at", "otp_expires_at", "to", "channel", "message_id", "jobId"] {
        assert!(!sent[field].is_null(), "{field} in {sent}");
    }
    assert_eq!((sent["status"].as_str(), sent["channel"].as_str()), (Some("pending"), Some("whatsapp")));
    assert!(sent.get("code").is_none() && sent.get("otp").is_none(), "no code by default: {sent}");
    let id = sent["id"].as_str().unwrap().to_owned();

    let code = code_from_inbox(&app, &admin, phone, 1).await;
    assert_eq!(code.len(), 6);
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), &admin).await;
    let text = inbox["messages"][0]["content"]["body"].as_str().unwrap();
    assert_eq!(
        text,
        format!("*{code}* is your verification code for Acme. Do not share it. It expires in 5 minutes.")
    );
    let (_, message) =
        app.get(&format!("/api/v1/messages/{}", sent["message_id"].as_str().unwrap()), &admin).await;
    assert_eq!(message["priority"], "otp");
    assert!(!message.to_string().contains(&code), "the outbox never shows the code: {message}");

    let (status, verdict) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": wrong(&code) })).await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict, json!({ "valid": false, "status": "pending", "attempts_left": 4, "id": id }));
    let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": code })).await;
    assert_eq!(
        (verdict["valid"].as_bool(), verdict["status"].as_str()),
        (Some(true), Some("approved")),
        "{verdict}"
    );
    let (status, again) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": code })).await;
    assert_eq!((status, again["code"].as_str()), (StatusCode::CONFLICT, Some("otp_already_used")));

    let shown = wait_for_otp(&app, &admin, &id, |v| v["delivery_status"] == "read").await;
    assert_eq!((shown["status"].as_str(), shown["attempts"].as_i64()), (Some("approved"), Some(1)));
    assert!(!shown["approved_at"].is_null());
    assert!(!shown.to_string().contains(&code));
    let (_, log) = app.get(&format!("/api/v1/otp?phone={phone}&status=approved"), &admin).await;
    assert_eq!(log["verifications"].as_array().unwrap().len(), 1, "{log}");

    // By phone: a new verification replaces nothing pending now; verify by phone works.
    let (_, sent) = app
        .post("/api/v1/otp/send", &admin, json!({ "phoneNumber": phone, "length": 8, "locale": "id" }))
        .await;
    let code = code_from_inbox(&app, &admin, phone, 2).await;
    assert_eq!(code.len(), 8);
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), &admin).await;
    assert!(
        inbox["messages"][1]["content"]["body"].as_str().unwrap().contains("adalah kode verifikasi Anda")
    );
    let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "phone": phone, "code": code })).await;
    assert_eq!(verdict, json!({ "valid": true, "status": "approved", "attempts_left": 5 }), "{sent}");
}

#[tokio::test]
async fn attempts_run_out_and_the_phone_counter_survives_new_verifications() {
    let (app, admin) = linked_app(|c| c.otp.phone_failure_cap = 8).await;
    let phone = "+6281234560005";
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let code = code_from_inbox(&app, &admin, phone, 1).await;
    for left in (0..5).rev() {
        let (_, verdict) =
            app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": wrong(&code) })).await;
        assert_eq!(verdict["attempts_left"], left, "{verdict}");
        let expected = if left == 0 { "max_attempts" } else { "pending" };
        assert_eq!(verdict["status"], expected);
    }
    let (status, problem) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": code })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("otp_max_attempts")),
        "the right code comes too late"
    );

    // A new verification does not reset the phone's counter.
    let (_, failures) = app.get(&format!("/api/v1/otp/phones/{phone}"), &admin).await;
    assert_eq!(failures["consecutive_failures"], 5);
    let (_, second) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let second_code = code_from_inbox(&app, &admin, phone, 2).await;
    for _ in 0..3 {
        app.post("/api/v1/otp/verify", &admin, json!({ "phone": phone, "code": wrong(&second_code) })).await;
    }
    let (status, problem) =
        app.post("/api/v1/otp/verify", &admin, json!({ "phone": phone, "code": second_code })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("phone_locked")),
        "{problem}"
    );
    let (status, problem) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": second["id"], "code": second_code })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("phone_locked")),
        "by id too: {problem}"
    );
    let (status, problem) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("phone_locked")));
    let (_, failures) = app.get(&format!("/api/v1/otp/phones/{phone}"), &admin).await;
    assert_eq!(failures["consecutive_failures"], 8);
    assert!(failures["locked_until"].is_string());

    // The operator clears the lock; a success clears the counter.
    let (status, _) =
        app.call(Method::DELETE, &format!("/api/v1/otp/phones/{phone}/failures"), &admin, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, verdict) = app
        .post("/api/v1/otp/verify", &admin, json!({ "id": second["id"], "code": wrong(&second_code) }))
        .await;
    assert_eq!(verdict["valid"], false);
    let (_, verdict) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": second["id"], "code": second_code })).await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    let (_, failures) = app.get(&format!("/api/v1/otp/phones/{phone}"), &admin).await;
    assert_eq!(failures["consecutive_failures"], 0);

    // A phone without a pending verification answers like a wrong code.
    let (status, verdict) =
        app.post("/api/v1/otp/verify", &admin, json!({ "phone": "+6281234569876", "code": "123456" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verdict, json!({ "valid": false, "status": "pending", "attempts_left": 4 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifies_of_the_right_code_approve_once() {
    let (app, admin) = linked_app(|_| {}).await;
    let phone = "+6281234560006";
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let code = code_from_inbox(&app, &admin, phone, 1).await;
    let id = sent["id"].as_str().unwrap();
    let verifies = (0..12).map(|_| app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": code })));
    let results = futures::future::join_all(verifies).await;
    let valid = results.iter().filter(|(_, v)| v["valid"] == true).count();
    assert_eq!(valid, 1, "{results:?}");
    for (status, body) in &results {
        assert!(
            *status == StatusCode::OK || body["code"] == "otp_already_used",
            "a loser sees a refusal: {status} {body}"
        );
    }
}

#[tokio::test]
async fn resend_has_a_cooldown_and_a_cap_and_replaces_the_code() {
    let (app, admin) = linked_app(|c| {
        c.otp.resend_cooldown_secs = 1;
        c.otp.max_sends = 2;
    })
    .await;
    let phone = "+6281234560007";
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let first = code_from_inbox(&app, &admin, phone, 1).await;
    let response =
        app.request(Method::POST, &format!("/api/v1/otp/{id}/resend"), Some(&admin)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    let (_, problem) = crate::common::read(response).await;
    assert_eq!(problem["code"], "resend_cooldown");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, resent) = app.post(&format!("/api/v1/otp/{id}/resend"), &admin, Value::Null).await;
    assert_eq!((status, resent["sends"].as_i64()), (StatusCode::ACCEPTED, Some(2)), "{resent}");
    let second = code_from_inbox(&app, &admin, phone, 2).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, problem) = app.post(&format!("/api/v1/otp/{id}/resend"), &admin, Value::Null).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("resend_limit_reached")));

    if first != second {
        let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": first })).await;
        assert_eq!(verdict["valid"], false, "the old code stopped working");
    }
    let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": second })).await;
    assert_eq!(verdict["valid"], true);

    // A new send replaces the pending verification of the phone: its code stops working.
    let (_, a) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let code_a = code_from_inbox(&app, &admin, phone, 3).await;
    let (_, b) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let (_, old) = app.get(&format!("/api/v1/otp/{}", a["id"].as_str().unwrap()), &admin).await;
    assert_eq!(old["status"], "canceled");
    let (status, problem) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": a["id"], "code": code_a })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("otp_canceled")));
    let (status, canceled) =
        app.post(&format!("/api/v1/otp/{}/cancel", b["id"].as_str().unwrap()), &admin, Value::Null).await;
    assert_eq!((status, canceled["status"].as_str()), (StatusCode::OK, Some("canceled")));
    let (status, problem) =
        app.post(&format!("/api/v1/otp/{}/resend", b["id"].as_str().unwrap()), &admin, Value::Null).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("otp_canceled")));
}

#[tokio::test]
async fn codes_expire_and_a_late_message_is_never_delivered() {
    let (app, admin) = linked_app(|c| {
        c.otp.sweep_interval_ms = 100;
        c.otp_pacing.min_delay_ms = 1_500;
        c.otp_pacing.max_delay_ms = 1_500;
    })
    .await;
    let (_, first) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560008", "ttl": 1 })).await;
    // Pacing holds the second message 1.5 s after the first: its 1 s code expires in the queue.
    let (_, second) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560009", "ttl": 1 })).await;
    let first_code = code_from_inbox(&app, &admin, "+6281234560008", 1).await;
    let late =
        wait_for_otp(&app, &admin, second["id"].as_str().unwrap(), |v| v["delivery_status"] == "failed")
            .await;
    assert_eq!(late["status"], "expired", "{late}");
    let (_, message) =
        app.get(&format!("/api/v1/messages/{}", second["message_id"].as_str().unwrap()), &admin).await;
    assert!(message["reason"].as_str().unwrap().contains("expired"), "{message}");
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234560009", &admin).await;
    assert!(inbox["messages"].as_array().unwrap().is_empty(), "never delivered late: {inbox}");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, problem) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": first["id"], "code": first_code })).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::CONFLICT, Some("otp_expired")));
    let (_, log) = app.get("/api/v1/otp?status=expired", &admin).await;
    assert_eq!(log["verifications"].as_array().unwrap().len(), 2, "the sweeper marks them: {log}");
}

#[tokio::test]
async fn expiry_and_spent_attempts_are_announced_without_the_code() {
    let (app, admin) = linked_app(|c| c.otp.sweep_interval_ms = 100).await;
    let (hooks, url) = hook_receiver().await;
    app.post(
        "/api/v1/webhooks",
        &admin,
        json!({ "url": url, "events": ["otp.expired", "otp.max_attempts"] }),
    )
    .await;

    let (_, spent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560031" })).await;
    let code = code_from_inbox(&app, &admin, "+6281234560031", 1).await;
    for _ in 0..5 {
        app.post("/api/v1/otp/verify", &admin, json!({ "id": spent["id"], "code": wrong(&code) })).await;
    }
    let event = hooks.wait_for("otp.max_attempts").await;
    assert_eq!((&event["data"]["id"], &event["data"]["status"]), (&spent["id"], &json!("max_attempts")));
    assert!(!event.to_string().contains(&code), "{event}");

    let (_, expiring) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560032", "ttl": 1 })).await;
    let code = code_from_inbox(&app, &admin, "+6281234560032", 1).await;
    let event = hooks.wait_for("otp.expired").await;
    assert_eq!((&event["data"]["id"], &event["data"]["status"]), (&expiring["id"], &json!("expired")));
    assert!(!event.to_string().contains(&code), "{event}");
}
