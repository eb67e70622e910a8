//! Inbound and auto modes (the user sends the code) and the webhooks that follow delivery.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

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
