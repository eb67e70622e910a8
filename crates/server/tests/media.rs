//! Media messages: uploads (streamed, size- and type-checked) and URLs fetched when sending.

mod common;

use std::time::Duration;

use axum::routing::get;
use common::TestApp;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

fn png() -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&[7u8; 2000]);
    bytes
}

fn uploads_left(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir.join("media")).map(|d| d.count()).unwrap_or(0)
}

async fn upload(app: &TestApp, token: &str, form: Form) -> (StatusCode, Value) {
    let response = app
        .request(reqwest::Method::POST, "/api/v1/sessions/media/messages", Some(token))
        .multipart(form)
        .send()
        .await
        .unwrap();
    common::read(response).await
}

#[tokio::test]
async fn uploads_are_checked_stored_and_sent() {
    let app = TestApp::spawn_with(|c| c.media.max_bytes = 10_000).await;
    let admin = app.admin().await;
    app.linked(&admin, "media", "+6281200000031").await;

    let form = Form::new()
        .text("to", "+6281234500090")
        .text("caption", "our new menu")
        .part("image", Part::bytes(png()).file_name("menu.png").mime_str("image/png").unwrap());
    let (status, accepted) = upload(&app, &admin, form).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["type"], "image");
    assert_eq!(accepted["content"]["media"]["mimetype"], "image/png");
    let id = accepted["id"].as_str().unwrap();
    app.wait_for_message(&admin, id, |m| m["status"] == "delivered" || m["status"] == "read").await;
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234500090", &admin).await;
    assert_eq!(inbox["messages"][0]["media_size"], 2008);
    assert_eq!(inbox["messages"][0]["content"]["caption"], "our new menu");
    assert_eq!(uploads_left(&app), 0, "the stored upload is removed once sent");

    // A PDF is not an image.
    let form = Form::new()
        .text("to", "+6281234500090")
        .part("image", Part::bytes(b"%PDF-1.7 fake".to_vec()).file_name("x.png"));
    let (status, problem) = upload(&app, &admin, form).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_media")));
    // But it is a fine document, with its file name.
    let form = Form::new()
        .text("to", "+6281234500090")
        .part("document", Part::bytes(b"%PDF-1.7 fake".to_vec()).file_name("invoice.pdf"));
    let (status, accepted) = upload(&app, &admin, form).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["content"]["file_name"], "invoice.pdf");

    // Over the limit: refused while streaming, nothing left behind.
    let big = Form::new()
        .text("to", "+6281234500090")
        .part("video", Part::bytes(vec![0u8; 50_000]).file_name("big.mp4"));
    let (status, problem) = upload(&app, &admin, big).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );
    // Missing recipient: the upload is dropped too.
    let form = Form::new().part("image", Part::bytes(png()).file_name("a.png"));
    let (status, _) = upload(&app, &admin, form).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let form = Form::new()
        .text("to", "+6281234500090")
        .text("colour", "red")
        .part("image", Part::bytes(png()).file_name("a.png"));
    let (status, problem) = upload(&app, &admin, form).await;
    assert_eq!((status, problem["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(uploads_left(&app), 0, "failed uploads leave no files");
}

#[tokio::test]
async fn media_urls_are_fetched_when_sending() {
    let files = axum::Router::new()
        .route("/menu.png", get(|| async { png() }))
        .route("/price-list.pdf", get(|| async { b"%PDF-1.4 list".to_vec() }))
        .route(
            "/slow.png",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                png()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, files).await.unwrap() });

    let app = TestApp::spawn_with(|c| {
        c.media.download_timeout_ms = 300;
        c.delivery.max_attempts = 2;
        c.delivery.retry_base_ms = 20;
    })
    .await;
    let admin = app.admin().await;
    app.linked(&admin, "media", "+6281200000032").await;
    let send = |body: Value| app.post("/api/v1/sessions/media/messages", &admin, body);

    let (status, ok) = send(
        json!({ "to": "+6281234500091", "image": { "url": format!("{base}/menu.png") }, "caption": "menu" }),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{ok}");
    let (_, doc) =
        send(json!({ "to": "+6281234500091", "document": { "url": format!("{base}/price-list.pdf?v=2") } }))
            .await;
    assert_eq!(doc["content"]["file_name"], "price-list.pdf");
    let (_, missing) =
        send(json!({ "to": "+6281234500091", "image": { "url": format!("{base}/nothing.png") } })).await;
    let (_, slow) =
        send(json!({ "to": "+6281234500091", "image": { "url": format!("{base}/slow.png") } })).await;
    let (_, wrong) =
        send(json!({ "to": "+6281234500091", "image": { "url": format!("{base}/price-list.pdf") } })).await;

    app.wait_for_message(&admin, ok["id"].as_str().unwrap(), |m| m["status"] == "read").await;
    app.wait_for_message(&admin, doc["id"].as_str().unwrap(), |m| m["status"] == "read").await;
    let failed = |m: &Value| m["status"] == "failed";
    let m = app.wait_for_message(&admin, missing["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("HTTP 404"), "{m}");
    assert_eq!(m["attempts"], 1, "a 404 is not retried");
    let m = app.wait_for_message(&admin, slow["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("timed out"), "{m}");
    assert_eq!(m["attempts"], 2, "a timeout is retried");
    let m = app.wait_for_message(&admin, wrong["id"].as_str().unwrap(), failed).await;
    assert!(m["reason"].as_str().unwrap().contains("image media must be"), "{m}");

    let (status, problem) =
        send(json!({ "to": "+6281234500091", "image": { "url": "file:///etc/passwd" } })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_media_url"))
    );
}

#[tokio::test]
async fn private_media_urls_are_refused() {
    let app = TestApp::spawn_with(|c| c.webhooks.allow_private_urls = false).await;
    let admin = app.admin().await;
    app.create_session(&admin, "media").await;
    for url in
        ["http://127.0.0.1/a.png", "http://192.168.0.2/a.png", "http://169.254.169.254/latest/meta-data"]
    {
        let (status, problem) = app
            .post(
                "/api/v1/sessions/media/messages",
                &admin,
                json!({ "to": "+6281234500092", "image": { "url": url } }),
            )
            .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_media_url")),
            "{url}"
        );
    }
}
