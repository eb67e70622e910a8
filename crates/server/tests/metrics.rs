//! `GET /metrics`: who may read it, and that it counts what happens with bounded labels.

mod common;

use common::{TestApp, read};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn scrape(app: &TestApp, credential: Option<&str>) -> (StatusCode, String, String) {
    let response = app.request(Method::GET, "/metrics", credential).send().await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, content_type, response.text().await.unwrap())
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn only_admins_and_metrics_keys_read_the_figures() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, _, _) = scrape(&app, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let tenant = app.create_user(&admin, "tenant").await;
    let response = app.request(Method::GET, "/metrics", Some(&tenant)).send().await.unwrap();
    let (status, problem) = read(response).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("missing_scope")),
        "{problem}"
    );
    let (status, refused) =
        app.post("/api/v1/api-keys", &tenant, json!({ "name": "m", "scopes": ["metrics"] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a tenant cannot give itself every tenant's totals: {refused}");

    let (status, content_type, text) = scrape(&app, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    let (_, key) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "scraper", "scopes": ["metrics"] })).await;
    let key = key["key"].as_str().unwrap();
    assert_eq!(scrape(&app, Some(key)).await.0, StatusCode::OK);
    let (status, _) = app.get("/api/v1/sessions", key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the metrics scope reads metrics only");

    let public = TestApp::spawn_with(|c| c.metrics_public = true).await;
    assert_eq!(scrape(&public, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn messages_sessions_otp_and_requests_are_counted() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "counted", "+6281200000071").await;
    let (status, sent) = app
        .post("/api/v1/sessions/counted/messages", &admin, json!({ "to": "+6281234570001", "text": "hi" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    app.wait_for_message(&admin, sent["id"].as_str().unwrap(), |m| m["delivered_at"].is_string()).await;
    let (status, otp) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234570002" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{otp}");
    let (_, verdict) =
        app.post("/api/v1/otp/verify", &admin, json!({ "id": otp["id"], "code": "000000" })).await;
    assert_eq!(verdict["valid"], false);

    let (_, _, text) = scrape(&app, Some(&admin)).await;
    assert_eq!(value(&text, "wagate_sessions{status=\"connected\"}"), Some(1.0), "{text}");
    assert!(value(&text, "wagate_messages_total{status=\"queued\"}") >= Some(2.0), "{text}");
    assert!(value(&text, "wagate_messages_total{status=\"sent\"}") >= Some(1.0), "{text}");
    assert!(value(&text, "wagate_messages_total{status=\"delivered\"}") >= Some(1.0), "{text}");
    assert!(value(&text, "wagate_send_ack_seconds_count") >= Some(1.0), "{text}");
    assert_eq!(value(&text, "wagate_otp_total{outcome=\"issued\"}"), Some(1.0), "{text}");
    let route = "wagate_http_requests_total{route=\"/api/v1/sessions/{id}/messages\",status=\"202\"}";
    assert_eq!(value(&text, route), Some(1.0), "{text}");
    assert!(value(&text, "wagate_process_resident_memory_bytes") > Some(0.0), "{text}");
    assert!(text.contains("wagate_outbox_depth "), "{text}");
    assert!(text.contains("wagate_webhook_lag_seconds "), "{text}");
    for private in ["6281234570001", "6281234570002", "counted", sent["id"].as_str().unwrap()] {
        assert!(!text.contains(private), "no numbers or ids as labels: `{private}` in\n{text}");
    }
}
