//! Templates, settings, sandbox test numbers, the seed routes and the sandbox inbox.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

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
    let (status, body) = crate::common::read(seed_send("+6281234560014").await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(body["message"].is_string() && body["jobId"].is_string() && body["otp_expires_at"].is_string());
    assert!(body.get("otp").is_none(), "{body}");
    // Seed 004's errors: 400 naming `phoneNumber`, and a `message` to read.
    let seed_post = |body: Value, key: Option<&str>| {
        let mut request = app.client.post(app.url("/api/v1/otp/send")).json(&body);
        if let Some(key) = key {
            request = request.header("X-API-KEY", key);
        }
        request.send()
    };
    let (status, body) = crate::common::read(seed_post(json!({}), Some(&key)).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("missing_field")));
    assert!(
        body["message"].as_str().unwrap().contains("\"phoneNumber\" (or \"phone\") is required"),
        "{body}"
    );
    let (status, body) =
        crate::common::read(seed_post(json!({ "phoneNumber": "12" }), Some(&key)).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_phone")));
    assert!(body["message"].as_str().unwrap().contains("\"phoneNumber\""), "{body}");
    let (status, body) =
        crate::common::read(seed_post(json!({ "phoneNumber": "+6281234560014" }), None).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["message"].is_string(), "{body}");
    let (_, settings) = app
        .call(Method::PATCH, "/api/v1/otp/settings", &admin, json!({ "return_code_in_response": true }))
        .await;
    assert_eq!(settings["return_code_in_response"], true);
    let (_, body) = crate::common::read(seed_send("+6281234560015").await.unwrap()).await;
    let code = body["otp"].as_str().unwrap().to_owned();
    assert_eq!(code_from_inbox(&app, &admin, "+6281234560015", 1).await, code);

    // Seed 001's routes.
    let (status, body) = app.get("/api/messages/otp/generate-otp?length=8", &admin).await;
    assert_eq!((status, body["data"]["otp"].as_str().map(str::len)), (StatusCode::OK, Some(8)));
    let (status, body) = app.get("/api/v1/otp/generate?length=3", &admin).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_length")));
    // A national number is read in the sending session's country (the session is +62).
    let (status, body) = app
        .post("/api/messages/otp/otp", &admin, json!({ "to": "081234560016", "companyName": "PT. Example" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["data"]["phone"], "+6281234560016");
    let code = body["data"]["otp"].as_str().unwrap().to_owned();
    // Without a session, in the country the caller's sessions share.
    let (_, status_body) = app.get("/api/otp/status/081234560016", &admin).await;
    assert_eq!(status_body["data"]["status"], "pending", "{status_body}");
    let (_, body) = app
        .post("/api/otp/verify", &admin, json!({ "phoneNumber": "081234560016", "otp": wrong(&code) }))
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
        tokio::spawn(async move { crate::common::read(request.send().await.unwrap()).await })
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
