//! Every kind of bad input gets a precise 4xx problem, never a 500, and changes nothing.

mod common;

use common::{TestApp, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn raw_post(
    app: &TestApp,
    path: &str,
    credential: &str,
    body: &str,
    content_type: &str,
) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, path, Some(credential))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    read(response).await
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn malformed_bodies() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let cases = [
        (r#"{"id": "x""#, "application/json", StatusCode::BAD_REQUEST, "malformed_json"),
        (
            r#"{"id": "x", "colour": "red"}"#,
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (r#"{"id": 42}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (r#"{"engine": "telegram"}"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (r#"[1, 2]"#, "application/json", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (r#"{"id": "x"}"#, "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    ];
    for (body, content_type, status, expected) in cases {
        let (got, problem) = raw_post(&app, "/api/v1/sessions", &admin, body, content_type).await;
        assert_eq!((got, code(&problem)), (status, expected), "{body}: {problem}");
    }
    let unknown =
        raw_post(&app, "/api/v1/sessions", &admin, r#"{"id": "x", "colour": "red"}"#, "application/json")
            .await;
    assert!(unknown.1["detail"].as_str().unwrap().contains("colour"), "the detail names the field");

    let huge = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let (status, problem) = raw_post(&app, "/api/v1/sessions", &admin, &huge, "application/json").await;
    assert_eq!((status, code(&problem)), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"));

    let (_, list) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "nothing was created");
}

#[tokio::test]
async fn bad_session_ids_and_names() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let long = "a".repeat(1000);
    for id in ["a/b", "..", "../etc", "with space", long.as_str(), "", "é"] {
        let (status, problem) = app.post("/api/v1/sessions", &admin, json!({ "id": id })).await;
        assert_eq!((status, code(&problem)), (StatusCode::BAD_REQUEST, "invalid_session_id"), "{id:?}");
    }
    for name in ["x".repeat(101), "   ".into(), "tab\there".into()] {
        let (status, problem) =
            app.post("/api/v1/sessions", &admin, json!({ "id": "ok", "name": name })).await;
        assert_eq!((status, code(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"), "{name:?}");
    }
    // In paths: encoded slashes, dots and spaces never reach the data directory.
    for path in [
        "/api/v1/sessions/a%2Fb",
        "/api/v1/sessions/..%2F..",
        "/api/v1/sessions/a%20b",
        &format!("/api/v1/sessions/{long}"),
    ] {
        let (status, problem) = app.get(path, &admin).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
            "{path}: {status} {problem}"
        );
    }
    let (status, problem) = app.get("/api/v1/sessions/missing", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::NOT_FOUND, "session_not_found"));
    let (_, list) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 0, "nothing half-created");
    assert!(
        !app.data_dir.join("sessions").exists()
            || std::fs::read_dir(app.data_dir.join("sessions")).unwrap().count() == 0
    );
}

#[tokio::test]
async fn the_default_engine_is_configurable() {
    let app = TestApp::spawn_with(|c| c.default_engine = None).await;
    let admin = app.admin().await;
    let (status, session) = app.post("/api/v1/sessions", &admin, json!({ "id": "real" })).await;
    assert_eq!((status, session["engine"].as_str()), (StatusCode::CREATED, Some("web")), "{session}");
    let (status, problem) =
        app.post("/api/v1/sessions", &admin, json!({ "id": "x", "engine": "carrier-pigeon" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"), "{problem}");
    let (status, _) = app.get("/api/v1/sessions/x", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no session was left behind");
}

#[tokio::test]
async fn sandbox_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| c.sandbox = false).await;
    let admin = app.admin().await;
    let (status, problem) =
        app.post("/api/v1/sessions", &admin, json!({ "id": "s", "engine": "sandbox" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::NOT_IMPLEMENTED, "engine_not_available"));
    assert!(problem["detail"].as_str().unwrap().contains("sandbox"));
    let (status, _) = app.get("/api/v1/sessions/s", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no session was left behind");
    let (status, problem) = app.get("/api/v1/sandbox/inbox/+6281234567890", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::NOT_FOUND, "sandbox_disabled"));
}

#[tokio::test]
async fn state_conflicts() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "s1").await;
    let (status, problem) = app.get("/api/v1/sessions/s1/qr", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::CONFLICT, "qr_not_available"), "not connected yet");
    let (status, problem) =
        app.post("/api/v1/sandbox/sessions/s1/scan", &admin, json!({ "phone": "+6281234567890" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::CONFLICT, "session_not_open"));
    let (status, problem) = app
        .post(
            "/api/v1/sandbox/sessions/s1/inbound",
            &admin,
            json!({ "from": "+6281234567890", "text": "hi" }),
        )
        .await;
    assert_eq!((status, code(&problem)), (StatusCode::CONFLICT, "session_not_open"));
    let (status, problem) = app.call(Method::PUT, "/api/v1/sessions/s1", &admin, Value::Null).await;
    assert_eq!((status, code(&problem)), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    let (status, problem) = app.get("/api/v1/nothing-here", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::NOT_FOUND, "route_not_found"));
    let (status, problem) = app.get("/api/v1/sessions/s1/activity?limit=0", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (status, problem) = app.get("/api/v1/sessions/s1/activity?limit=abc", &admin).await;
    assert_eq!((status, code(&problem)), (StatusCode::BAD_REQUEST, "invalid_query"));
}

#[tokio::test]
async fn concurrent_creates_with_the_same_id() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for round in 0..5 {
        let id = format!("race-{round}");
        let attempts = (0..4).map(|_| app.post("/api/v1/sessions", &admin, json!({ "id": id })));
        let results = futures::future::join_all(attempts).await;
        let created = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
        let conflicts: Vec<_> = results.iter().filter(|(s, _)| *s == StatusCode::CONFLICT).collect();
        assert_eq!(created, 1, "exactly one create wins: {results:?}");
        assert_eq!(conflicts.len(), 3);
        assert!(conflicts.iter().all(|(_, p)| code(p) == "session_exists"));
    }
    let (_, list) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn patch_validates_and_applies() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "named").await;
    let (status, body) =
        app.call(Method::PATCH, "/api/v1/sessions/named", &admin, json!({ "name": "Sales <b>" })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "Sales <b>");
    let (status, problem) =
        app.call(Method::PATCH, "/api/v1/sessions/named", &admin, json!({ "webhook_url": "ftp://x" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url"));
    let (status, problem) =
        app.call(Method::PATCH, "/api/v1/sessions/named", &admin, json!({ "owner": "me" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));
    assert_eq!(app.session_status("named", &admin).await["name"], "Sales <b>");
}
