//! The OpenAPI document and the offline docs page.

mod common;

use std::process::Command;

use common::TestApp;
use reqwest::StatusCode;

#[tokio::test]
async fn openapi_lists_every_designed_route() {
    let app = TestApp::spawn().await;
    let response = app.client.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/auth/login",
        "/api/v1/api-keys",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/{id}/connect",
        "/api/v1/sessions/{id}/disconnect",
        "/api/v1/sessions/{id}/restart",
        "/api/v1/sessions/{id}/logout",
        "/api/v1/sessions/{id}/qr",
        "/api/v1/sessions/{id}/qr.png",
        "/api/v1/sessions/{id}/qr-page",
        "/api/v1/sessions/{id}/pair-code",
        "/api/v1/sessions/{id}/events",
        "/api/v1/sessions/{id}/ws",
        "/api/v1/sandbox/sessions/{id}/scan",
        "/api/v1/sandbox/inbox/{phone}",
        "/health",
        "/ready",
        "/api/health",
        "/api/sessions/create",
        "/api/ws/{id}",
        "/api/v1/sessions/{id}/messages",
        "/api/v1/messages",
        "/api/v1/messages/{id}",
        "/api/v1/messages/{id}/retry",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}/replay",
        "/api/v1/webhooks/{id}/deliveries",
        "/api/v1/sessions/{id}/numbers/check",
        "/api/v1/sessions/{id}/groups",
        "/api/v1/sessions/{id}/chats/{chat}/messages",
        "/api/v1/phone/format",
        "/api/messages/{session}/text",
        "/api/send",
    ] {
        assert!(paths.contains_key(path), "{path} missing from the OpenAPI document");
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // Errors are documented as what they are: problem+json, on every operation.
    for (path, item) in paths {
        let methods = item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()));
        for (method, operation) in methods {
            for status in ["400", "401", "404", "408", "422", "429", "503"] {
                let content = &operation["responses"][status]["content"];
                assert!(
                    content["application/problem+json"].is_object(),
                    "{method} {path} {status}: {content}"
                );
                assert!(content.get("application/json").is_none(), "{method} {path} {status}");
            }
        }
    }
}

/// Loads /docs in headless Chromium with no network and checks the rendered page.
#[tokio::test]
async fn docs_page_renders_offline_in_a_browser() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is required for this test; scripts/test.sh installs it");
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs")).send().await.unwrap().text().await.unwrap();
    assert!(!page.contains("https://") || !page.contains("<script src"), "no external scripts");
    let profile = tempfile::tempdir().unwrap();
    let url = app.url("/docs");
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(profile_arg)
            .arg(url)
            .output()
            .expect("chromium runs")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        dom.contains("data-rendered=\"true\""),
        "the page finished rendering: {}",
        &dom[..dom.len().min(2000)]
    );
    assert!(!dom.contains("data-load-error"), "the document loaded");
    for path in ["/api/v1/sessions", "/api/v1/sessions/{id}/qr", "/api/v1/sessions/{id}/pair-code"] {
        assert!(dom.contains(path), "{path} is listed on the docs page");
    }
}
