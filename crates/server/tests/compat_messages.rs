//! The seed-compatible sending routes.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn inbox(app: &TestApp, token: &str, phone: &str, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let (_, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), token).await;
        let messages = inbox["messages"].as_array().unwrap().clone();
        if messages.len() >= count {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("fewer than {count} messages reached {phone}");
}

#[tokio::test]
async fn single_tenant_message_routes() {
    let app = TestApp::spawn_with(|c| c.default_region = Some("ID".into())).await;
    let admin = app.admin().await;
    app.linked(&admin, "my-session", "+6281200000051").await;

    let (status, text) = app
        .post("/api/messages/my-session/text", &admin, json!({ "to": "08123456789", "message": "Halo" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    assert_eq!(text["success"], true);
    assert_eq!(text["data"]["to"], "628123456789@s.whatsapp.net");
    assert!(text["data"]["messageId"].as_str().unwrap().starts_with("3EB0"));
    let (status, _) = app
        .post(
            "/api/messages/my-session/location",
            &admin,
            json!({ "to": "08123456789", "latitude": -6.2, "longitude": 106.8, "name": "Monas" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .post(
            "/api/messages/my-session/button",
            &admin,
            json!({ "to": "08123456789", "message": "Pilih", "buttons": [{ "id": "y", "text": "Ya" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = app
        .post(
            "/api/messages/my-session/list",
            &admin,
            json!({ "to": "08123456789", "message": "Menu", "buttonText": "Buka", "sections": [{ "title": "Makan", "rows": [{ "rowId": "1", "title": "Nasi" }] }] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&[1u8; 100]);
    let form = Form::new()
        .text("to", "08123456789")
        .text("caption", "Test gambar")
        .part("image", Part::bytes(png).file_name("image.jpg"));
    let response = app
        .request(reqwest::Method::POST, "/api/messages/my-session/image", Some(&admin))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, image) = common::read(response).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{image}");

    let received = inbox(&app, &admin, "+628123456789", 5).await;
    let kinds: Vec<&str> = received.iter().map(|m| m["content"]["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "location", "buttons", "list", "image"]);
    assert_eq!(received[0]["content"]["body"], "Halo");

    let (status, problem) = app
        .post("/api/messages/my-session/text", &admin, json!({ "to": "not-a-phone", "message": "x" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (problem["success"].as_bool(), problem["code"].as_str()),
        (Some(false), Some("invalid_phone"))
    );

    // The seeds answer a body of the wrong shape with 400 (v1 says 422), naming their field.
    let (status, problem) =
        app.post("/api/messages/my-session/text", &admin, json!({ "to": "08123456789" })).await;
    assert_eq!((status, problem["status"].as_u64()), (StatusCode::BAD_REQUEST, Some(400)), "{problem}");
    assert_eq!((problem["success"].as_bool(), problem["error"].as_str()), (Some(false), Some("Bad Request")));
    assert!(problem["message"].as_str().unwrap().contains("message"), "{problem}");

    let (status, formatted) = app.get("/api/messages/format-phone/08123456789", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(formatted["data"]["formatted"], "628123456789");
    let (_, status_body) = app.get("/api/sessions/my-session/status", &admin).await;
    assert_eq!(status_body["data"]["isConnected"], true);
}

/// With no `default_region`, a national number is read in the sending session's country, and
/// where no session is named, in the country all of the caller's sessions share.
#[tokio::test]
async fn national_numbers_take_the_senders_country() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "jakarta", "+6281200000061").await;

    let (status, sent) = app
        .post("/api/messages/jakarta/text", &admin, json!({ "to": "08123456789", "message": "Halo" }))
        .await;
    assert_eq!(
        (status, sent["data"]["to"].as_str()),
        (StatusCode::ACCEPTED, Some("628123456789@s.whatsapp.net"))
    );
    let (status, formatted) = app.get("/api/messages/format-phone/08123456789", &admin).await;
    assert_eq!(
        (status, formatted["data"]["e164"].as_str()),
        (StatusCode::OK, Some("+628123456789")),
        "{formatted}"
    );

    app.linked(&admin, "kualalumpur", "+60123456780").await;
    let (status, sent) = app
        .post("/api/v1/sessions/kualalumpur/messages", &admin, json!({ "to": "0123456789", "text": "Hai" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["to"], "+60123456789", "read as Malaysian: the sender is in Malaysia");
    let (status, problem) = app.get("/api/messages/format-phone/08123456789", &admin).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_phone")),
        "sessions in two countries: no guess"
    );
    let (status, formatted) = app.get("/api/v1/phone/format?number=08123456789&region=ID", &admin).await;
    assert_eq!((status, formatted["e164"].as_str()), (StatusCode::OK, Some("+628123456789")));
    assert_eq!(inbox(&app, &admin, "+60123456789", 1).await[0]["content"]["body"], "Hai");
}

#[tokio::test]
async fn multi_session_send_check_and_groups() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "1234567890", "+6282260790996").await;
    let (status, sent) = app
        .post(
            "/api/sessions/1234567890/send",
            &admin,
            json!({ "recipient": "6281381393739", "message": "Hello from specific session!" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["success"], true);
    let (status, sent) = app
        .post("/api/send", &admin, json!({ "phone": "6282260790996", "recipient": "6281381393739", "message": "Hello from selected phone!" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(sent["session_id"], "1234567890");
    let (status, problem) = app
        .post(
            "/api/send",
            &admin,
            json!({ "phone": "6280000000001", "recipient": "6281381393739", "message": "x" }),
        )
        .await;
    assert_eq!((status, problem["success"].as_bool()), (StatusCode::NOT_FOUND, Some(false)));
    inbox(&app, &admin, "+6281381393739", 2).await;

    let (status, check) =
        app.post("/api/sessions/1234567890/check-number", &admin, json!({ "number": "6281381393739" })).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!((check["success"].as_bool(), check["on_whatsapp"].as_bool()), (Some(true), Some(true)));
    let (_, check) =
        app.post("/api/sessions/1234567890/check-number", &admin, json!({ "number": "6281381390000" })).await;
    assert_eq!(check["on_whatsapp"], false);

    app.post(
        "/api/v1/sandbox/sessions/1234567890/groups",
        &admin,
        json!({ "subject": "Family Group", "participants": ["6281381393739"] }),
    )
    .await;
    let (status, groups) = app.get("/api/sessions/1234567890/groups", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(groups["count"], 1);
    assert_eq!(groups["groups"][0]["name"], "Family Group");
    assert_eq!(groups["groups"][0]["participant_count"], 2);
}
