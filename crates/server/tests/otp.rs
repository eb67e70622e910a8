//! One-time passwords: the verification API end to end on the sandbox, its security rules and
//! every bad input the API must refuse.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SENDER: &str = "+6281200000101";

/// The code of the latest OTP message in a number's sandbox inbox (waits for it).
async fn code_from_inbox(app: &TestApp, token: &str, phone: &str, nth: usize) -> String {
    for _ in 0..250 {
        let (status, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), token).await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        let texts: Vec<String> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"]["body"].as_str().map(str::to_owned))
            .collect();
        if texts.len() >= nth {
            let text = &texts[nth - 1];
            assert!(!text.contains("sealed"), "the recipient gets the plain text: {text}");
            return text.split('*').nth(1).unwrap_or_else(|| panic!("no *code* in {text}")).to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no OTP message #{nth} reached {phone}");
}

async fn linked_app(adjust: impl FnOnce(&mut wagate_server::Config)) -> (TestApp, String) {
    let app = TestApp::spawn_with(adjust).await;
    let admin = app.admin().await;
    app.linked(&admin, "otp", SENDER).await;
    (app, admin)
}

fn wrong(code: &str) -> String {
    code.chars().map(|c| if c == '9' { '0' } else { char::from(c as u8 + 1) }).collect()
}

async fn wait_for_otp(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..250 {
        let (status, body) = app.get(&format!("/api/v1/otp/{id}"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("verification {id} never reached the expected state: {last}");
}

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
async fn bad_input_is_refused_with_clear_codes() {
    let (app, admin) = linked_app(|_| {}).await;
    let cases = [
        (json!({ "phone": "12" }), StatusCode::BAD_REQUEST, "invalid_phone"),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        (
            json!({ "phone": "+6281234560002", "length": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_length",
        ),
        (
            json!({ "phone": "+6281234560002", "length": 11 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_length",
        ),
        (json!({ "phone": "+6281234560002", "ttl": 0 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_ttl"),
        (json!({ "phone": "+6281234560002", "ttl": 601 }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_ttl"),
        (
            json!({ "phone": "+6281234560002", "locale": "English" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_locale",
        ),
        (
            json!({ "phone": "+6281234560002", "template": "nope" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_template",
        ),
        (
            json!({ "phone": "+6281234560002", "mode": "smoke" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({ "phone": "+6281234560002", "session": "ghost" }),
            StatusCode::NOT_FOUND,
            "session_not_found",
        ),
        (json!({ "phone": "+6281234560002", "pool": "ghost" }), StatusCode::NOT_FOUND, "pool_not_found"),
        (
            json!({ "phone": "+6281234560002", "custom_code": "12ab" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_custom_code",
        ),
    ];
    for (body, status, code) in cases {
        let (got, problem) = app.post("/api/v1/otp/send", &admin, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }

    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560002" })).await;
    let id = sent["id"].as_str().unwrap();
    let verify_cases = [
        (json!({ "id": id, "code": "12a456" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "id": id, "code": "123" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "id": id, "code": "12345678901" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_code"),
        (json!({ "code": "123456" }), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        (json!({ "id": id }), StatusCode::UNPROCESSABLE_ENTITY, "missing_field"),
        (
            json!({ "id": "01234567-0000-7000-8000-000000000000", "code": "123456" }),
            StatusCode::NOT_FOUND,
            "otp_not_found",
        ),
    ];
    for (body, status, code) in verify_cases {
        let (got, problem) = app.post("/api/v1/otp/verify", &admin, body.clone()).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{body}: {problem}");
    }
    let (_, shown) = app.get(&format!("/api/v1/otp/{id}"), &admin).await;
    assert_eq!(shown["attempts"], 0, "malformed codes are not attempts: {shown}");

    // A code of another length is a wrong code, not a format error (it would tell lengths apart).
    let (_, verdict) = app.post("/api/v1/otp/verify", &admin, json!({ "id": id, "code": "1234" })).await;
    assert_eq!(verdict["attempts_left"], 4);

    // Countries: an allow list.
    let (status, settings) =
        app.call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "allowed_countries": ["ID"] })).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (status, problem) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+14155550123" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("country_not_allowed"))
    );
    let (status, problem) = app
        .call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "denied_countries": ["indonesia"] }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_settings"))
    );

    // custom_code needs the admin scope.
    let user = app.create_user(&admin, "otp-user").await;
    app.linked(&user, "user-otp", "+6281200000102").await;
    let (status, problem) = app
        .post("/api/v1/otp/send", &user, json!({ "phone": "+6281234560003", "custom_code": "123456" }))
        .await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::FORBIDDEN, Some("missing_scope")));
    // Tenants are isolated: another tenant's verification does not exist for this user.
    let (status, _) = app.get(&format!("/api/v1/otp/{id}"), &user).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.post("/api/v1/otp/verify", &user, json!({ "id": id, "code": "123456" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, log) = app.get("/api/v1/otp", &user).await;
    assert!(log["verifications"].as_array().unwrap().is_empty(), "{log}");

    // Session not connected: 503, nothing stored.
    app.post("/api/v1/sessions/otp/disconnect", &admin, Value::Null).await;
    let (status, problem) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560004", "session": "otp" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("session_not_connected"))
    );
    let (status, problem) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560004" })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("no_connected_session"))
    );
    let (_, log) = app.get("/api/v1/otp?phone=%2B6281234560004", &admin).await;
    assert!(log["verifications"].as_array().unwrap().is_empty(), "{log}");
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
    let (_, problem) = common::read(response).await;
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

/// Reads the prefilled text of a `wa.me` link.
fn link_text(link: &str) -> String {
    let encoded = link.split("?text=").nth(1).unwrap();
    let bytes: Vec<u8> = {
        let raw = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' {
                out.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 3;
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        out
    };
    String::from_utf8(bytes).unwrap()
}

#[derive(Clone, Default)]
struct Hooks(Arc<Mutex<Vec<Value>>>);

async fn hook_receiver() -> (Hooks, String) {
    let hooks = Hooks::default();
    let store = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let store = store.clone();
            async move {
                store.0.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hooks, url)
}

impl Hooks {
    async fn wait_for(&self, event_type: &str) -> Value {
        for _ in 0..250 {
            if let Some(event) = self.0.lock().unwrap().iter().find(|e| e["type"] == event_type) {
                return event.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {event_type} webhook; got {:?}", self.0.lock().unwrap());
    }
}

#[tokio::test]
async fn inbound_and_auto_modes_verify_by_the_users_own_message() {
    let (app, admin) = linked_app(|_| {}).await;
    let (hooks, url) = hook_receiver().await;
    let (status, _) = app.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["otp.*"] })).await;
    assert_eq!(status, StatusCode::CREATED);

    // Inbound: the user sends the code from the link.
    let phone = "+6281234560010";
    let (status, sent) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": phone, "mode": "inbound" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!((sent["mode"].as_str(), sent["message_id"].as_str()), (Some("inbound"), None));
    let link = sent["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("https://wa.me/{}?text=", SENDER.trim_start_matches('+'))), "{link}");
    assert!(sent["qr"].as_str().unwrap().starts_with("data:image/png;base64,"));
    let text = link_text(link);
    // Someone else sending the code does not approve it.
    app.post(
        "/api/v1/sandbox/sessions/otp/inbound",
        &admin,
        json!({ "from": "+6281234560099", "text": text }),
    )
    .await;
    let (status, _) = app
        .post("/api/v1/sandbox/sessions/otp/inbound", &admin, json!({ "from": phone, "text": text }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let approved =
        wait_for_otp(&app, &admin, sent["id"].as_str().unwrap(), |v| v["status"] == "approved").await;
    assert_eq!(approved["attempts"], 0);
    let event = hooks.wait_for("otp.approved").await;
    assert_eq!(
        (event["data"]["method"].as_str(), event["data"]["phone"].as_str()),
        (Some("inbound"), Some(phone))
    );

    // Auto: the push is refused with 463, the answer is the inbound link instead.
    let restricted = "+6281234560463";
    let (status, sent) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": restricted, "mode": "auto" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(
        (sent["mode"].as_str(), sent["requested_mode"].as_str(), sent["fallback_reason"].as_str()),
        (Some("inbound"), Some("auto"), Some("reach_out_restricted")),
        "{sent}"
    );
    let text = link_text(sent["link"].as_str().unwrap());
    app.post("/api/v1/sandbox/sessions/otp/inbound", &admin, json!({ "from": restricted, "text": text }))
        .await;
    wait_for_otp(&app, &admin, sent["id"].as_str().unwrap(), |v| v["status"] == "approved").await;

    // Now the session is known to be restricted: auto goes inbound at once.
    let (_, sent) =
        app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560011", "mode": "auto" })).await;
    assert_eq!((sent["mode"].as_str(), sent["message_id"].as_str()), (Some("inbound"), None), "{sent}");

    // Push to a restricted number fails; the webhook says why, without any code.
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234570463" })).await;
    let failed = wait_for_otp(&app, &admin, sent["id"].as_str().unwrap(), |v| v["status"] == "failed").await;
    assert!(failed["reason"].as_str().unwrap().contains("463"), "{failed}");
    let event = hooks.wait_for("otp.failed").await;
    assert_eq!(event["data"]["restricted"], true);
    for event in hooks.0.lock().unwrap().iter() {
        assert!(event["data"].get("code").is_none() && event["data"].get("otp").is_none(), "{event}");
    }
}

#[tokio::test]
async fn webhooks_follow_delivery_and_rate_limits_hold() {
    let (app, admin) = linked_app(|c| {
        c.otp.sends_per_phone = 2;
        c.otp.sends_per_ip = 3;
        c.otp.client_ip_header = Some("X-End-User-IP".into());
    })
    .await;
    let (hooks, url) = hook_receiver().await;
    app.post(
        "/api/v1/webhooks",
        &admin,
        json!({ "url": url, "events": ["otp.sent", "otp.delivered", "otp.read", "otp.expired"] }),
    )
    .await;
    let phone = "+6281234560012";
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let code = code_from_inbox(&app, &admin, phone, 1).await;
    for event_type in ["otp.sent", "otp.delivered", "otp.read"] {
        let event = hooks.wait_for(event_type).await;
        assert_eq!(event["data"]["id"], sent["id"]);
        assert!(!event.to_string().contains(&code), "{event}");
    }

    app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let response = app
        .request(Method::POST, "/api/v1/otp/send", Some(&admin))
        .json(&json!({ "phone": phone }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "third send to one phone");
    assert!(response.headers().get("retry-after").is_some());

    // Per end-user IP, from the configured header.
    let send_from = |ip: &'static str, n: u32| {
        app.request(Method::POST, "/api/v1/otp/send", Some(&admin))
            .header("X-End-User-IP", ip)
            .json(&json!({ "phone": format!("+62812345601{n:02}") }))
            .send()
    };
    for n in 20..23 {
        assert_eq!(send_from("203.0.113.7", n).await.unwrap().status(), StatusCode::ACCEPTED);
    }
    assert_eq!(send_from("203.0.113.7", 23).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        send_from("203.0.113.8", 24).await.unwrap().status(),
        StatusCode::ACCEPTED,
        "another end user"
    );
    // Without the header, the caller's own address counts: two sends so far, one more fits.
    let (status, _) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560125" })).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560126" })).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn templates_settings_sandbox_test_numbers_and_seed_routes() {
    let (app, admin) = linked_app(|_| {}).await;
    // A tenant template per locale.
    let (status, problem) = app
        .call(
            Method::PUT,
            "/api/v1/otp/templates/default/en",
            &admin,
            json!({ "body": "{{ code }} https://x.example" }),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("template_has_link"))
    );
    let (status, problem) = app
        .call(Method::PUT, "/api/v1/otp/templates/default/en", &admin, json!({ "body": "Hello {{ brand }}" }))
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_template"))
    );
    let (status, _) = app
        .call(
            Method::PUT,
            "/api/v1/otp/templates/login/en",
            &admin,
            json!({ "body": "*{{ code }}* — {{ company_name }} login, {{ minutes }} min" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let phone = "+6281234560013";
    app.post(
        "/api/v1/otp/send",
        &admin,
        json!({ "phone": phone, "template": "login", "company_name": "Acme", "ttl": 120 }),
    )
    .await;
    let code = code_from_inbox(&app, &admin, phone, 1).await;
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), &admin).await;
    assert_eq!(inbox["messages"][0]["content"]["body"], format!("*{code}* — Acme login, 2 min"));

    // Sandbox test numbers (ending in 1234) have a fixed code.
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234561234" })).await;
    let (_, verdict) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": sent["id"], "code": "123456" })).await;
    assert_eq!(verdict["valid"], true, "{verdict}");

    // Seed 004: X-API-KEY + {phoneNumber}; the code only once the tenant asks for it.
    let (_, key) = app.post("/api/v1/api-keys", &admin, json!({ "name": "otp", "scopes": ["otp"] })).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let seed_send = |phone: &'static str| {
        app.client
            .post(app.url("/api/v1/otp/send"))
            .header("X-API-KEY", &key)
            .json(&json!({ "phoneNumber": phone }))
            .send()
    };
    let (status, body) = common::read(seed_send("+6281234560014").await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body["message"].is_string() && body["jobId"].is_string() && body["otp_expires_at"].is_string());
    assert!(body.get("otp").is_none(), "{body}");
    let (_, settings) = app
        .call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "return_code_in_response": true }))
        .await;
    assert_eq!(settings["return_code_in_response"], true);
    let (_, body) = common::read(seed_send("+6281234560015").await.unwrap()).await;
    let code = body["otp"].as_str().unwrap().to_owned();
    assert_eq!(code_from_inbox(&app, &admin, "+6281234560015", 1).await, code);

    // Seed 001's routes.
    let (status, body) = app.get("/api/messages/otp/generate-otp?length=8", &admin).await;
    assert_eq!((status, body["data"]["otp"].as_str().map(str::len)), (StatusCode::OK, Some(8)));
    let (status, body) = app.get("/api/v1/otp/generate?length=3", &admin).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_length")));
    let (status, body) = app
        .post("/api/messages/otp/otp", &admin, json!({ "to": "081234560016", "companyName": "PT. Example" }))
        .await;
    assert_eq!(
        (status, body["success"].as_bool()),
        (StatusCode::BAD_REQUEST, Some(false)),
        "no default region: {body}"
    );
    let (status, body) = app
        .post(
            "/api/messages/otp/otp",
            &admin,
            json!({ "to": "+6281234560016", "companyName": "PT. Example" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let code = body["data"]["otp"].as_str().unwrap().to_owned();
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234560016", &admin).await;
    let _ = inbox;
    let (_, status_body) = app.get("/api/otp/status/+6281234560016", &admin).await;
    assert_eq!(status_body["data"]["status"], "pending");
    let (_, body) = app
        .post("/api/otp/verify", &admin, json!({ "phoneNumber": "+6281234560016", "otp": wrong(&code) }))
        .await;
    assert_eq!((body["success"].as_bool(), body["data"]["attemptsLeft"].as_i64()), (Some(false), Some(4)));
    let (_, body) = app.post("/api/otp/expire", &admin, json!({ "phoneNumber": "+6281234560016" })).await;
    assert_eq!(body["data"]["status"], "canceled");
    let (status, body) =
        app.post("/api/otp/resend", &admin, json!({ "phoneNumber": "+6281234560016" })).await;
    assert_eq!(
        (status, body["success"].as_bool(), body["code"].as_str()),
        (StatusCode::CONFLICT, Some(false), Some("otp_canceled"))
    );
    let (status, body) = app.get("/api/otp/status/+6281234569999", &admin).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("otp_not_found")));
}

#[tokio::test]
async fn the_sandbox_inbox_waits_for_the_next_message() {
    let (app, admin) = linked_app(|_| {}).await;
    let phone = "+6281234560017";
    let waiting = {
        let request =
            app.request(Method::GET, &format!("/api/v1/sandbox/inbox/{phone}?wait_ms=10000"), Some(&admin));
        tokio::spawn(async move { common::read(request.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "an empty inbox waits");
    let started = std::time::Instant::now();
    app.post("/api/v1/otp/send", &admin, json!({ "phone": phone })).await;
    let (status, inbox) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1, "{inbox}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered when the message arrived");
    // `after`: the caller saw one already; a short wait returns what there is.
    let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}?wait_ms=100&after=1"), &admin).await;
    assert_eq!(inbox["messages"].as_array().unwrap().len(), 1);
    let (status, problem) = app.get(&format!("/api/v1/sandbox/inbox/{phone}?wait_ms=40000"), &admin).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_query")));
}

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
    let (_, problem) = common::read(refused).await;
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
