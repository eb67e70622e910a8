//! The dashboard in a real browser: headless Chromium driven through chromedriver (both from
//! Debian, installed by scripts/test.sh) against the server on loopback with the sandbox.
//! Every step leaves a screenshot in `artifacts/screenshots/` (git-ignored).

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_browser() -> (Chromedriver, Client) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (scripts/test.sh installs Debian's chromium-driver)");
    let driver = Chromedriver(driver);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"] }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    (driver, client)
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Runs `script` (which `return`s a value) until `done` accepts its result (20 s at most).
async fn wait_js(browser: &Client, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let value = browser.execute(script, vec![]).await.unwrap_or(Value::Null);
        if done(&value) {
            return value;
        }
        if Instant::now() > deadline {
            shot(browser, &format!("failed-{}", what.replace(' ', "-"))).await;
            panic!("{what}: last value {value}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(browser: &Client, css: &str, text: &str) {
    let field = browser.wait().for_element(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser.wait().for_element(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

/// Reloads `path` until its text contains `needle`.
/// Waits for the answer to the session page's test message form: leaving the page sooner could
/// cancel the submission.
async fn test_message_queued(browser: &Client) {
    let notice = "return document.querySelector('.notice') && document.querySelector('.notice').textContent";
    wait_js(browser, "test message queued", notice, |v| {
        v.as_str().is_some_and(|text| text.starts_with("Message ") && text.ends_with(" queued"))
    })
    .await;
}

async fn page_until(browser: &Client, app: &TestApp, path: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.goto(&app.url(path)).await.unwrap();
        let text = browser.source().await.unwrap();
        if text.contains(needle) {
            return;
        }
        assert!(Instant::now() < deadline, "{path} never showed {needle}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn an_operator_runs_the_gateway_from_the_browser() {
    let app = TestApp::spawn_with(|c| {
        let t = &mut c.sandbox_timings;
        t.qr_first_timeout_ms = 2_500;
        t.qr_timeout_ms = 1_500;
        t.qr_codes = 40;
        c.delivery.max_attempts = 1;
    })
    .await;
    let token = app.admin().await;
    let (_driver, browser) = start_browser().await;

    // Sign in.
    browser.goto(&app.url("/admin")).await.unwrap();
    fill(&browser, "#username", "admin").await;
    fill(&browser, "#password", ADMIN_PASSWORD).await;
    click(&browser, "#sign-in").await;
    wait_js(
        &browser,
        "overview",
        "return document.querySelector('h1') && document.querySelector('h1').textContent",
        |v| v == "Overview",
    )
    .await;
    shot(&browser, "01-overview").await;

    // Create a session: its page shows the live QR code, which rotates.
    browser.goto(&app.url("/admin/sessions")).await.unwrap();
    fill(&browser, "#new-session-id", "shop").await;
    fill(&browser, "#new-session-name", "Shop").await;
    click(&browser, "#create-session").await;
    let qr_src = "const img = document.getElementById('qr'); return img && !img.hidden && img.complete && img.naturalWidth > 0 ? img.getAttribute('src') : null";
    let first = wait_js(&browser, "qr shown", qr_src, Value::is_string).await;
    shot(&browser, "02-qr").await;
    wait_js(&browser, "qr rotated", qr_src, |v| v.is_string() && *v != first).await;
    shot(&browser, "03-qr-rotated").await;

    // "Simulate scan": the page turns to connected by itself, without a reload.
    browser.execute("window.__same_page = true; return null", vec![]).await.unwrap();
    fill(&browser, "#scan-phone", "+6281200000401").await;
    click(&browser, "#simulate-scan").await;
    wait_js(&browser, "connected", "return document.getElementById('session-status').textContent", |v| {
        v == "connected"
    })
    .await;
    wait_js(
        &browser,
        "account shown",
        "return document.getElementById('session-account').textContent",
        |v| v.as_str().is_some_and(|t| t.contains("+6281200000401")),
    )
    .await;
    let same_page = browser.execute("return window.__same_page === true", vec![]).await.unwrap();
    assert_eq!(same_page, json!(true), "no reload happened");
    shot(&browser, "04-connected").await;

    // A test message, delivered, in the messages table.
    fill(&browser, "#test-to", "+6281234560401").await;
    fill(&browser, "#test-text", "Hello from the dashboard").await;
    click(&browser, "#send-test").await;
    test_message_queued(&browser).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        browser.goto(&app.url("/admin/messages")).await.unwrap();
        let row = browser.find(Locator::XPath("//tr[td[contains(., 'Hello from the dashboard')]]")).await;
        let row_text = match row {
            Ok(row) => row.text().await.unwrap(),
            Err(_) => String::new(),
        };
        if row_text.contains("delivered") || row_text.contains("read") {
            break;
        }
        assert!(Instant::now() < deadline, "the test message never showed as delivered: {row_text:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    shot(&browser, "05-messages").await;

    // A failing message (the sandbox's "not on WhatsApp" number), then retried.
    browser.goto(&app.url("/admin/sessions/shop")).await.unwrap();
    fill(&browser, "#test-to", "+6281234560000").await;
    fill(&browser, "#test-text", "Will fail").await;
    click(&browser, "#send-test").await;
    test_message_queued(&browser).await;
    page_until(&browser, &app, "/admin/messages?status=failed", "Will fail").await;
    browser
        .find(Locator::XPath("//tr[td[contains(., 'Will fail')]]//a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&browser, "#retry").await;
    wait_js(
        &browser,
        "retried",
        "return document.querySelector('.notice') && document.querySelector('.notice').textContent",
        |v| v == "Queued again",
    )
    .await;
    shot(&browser, "06-retried").await;

    // An OTP sent and verified through the API appears in the OTP log (without its code).
    let (_, sent) = app.post("/api/v1/otp/send", &token, json!({ "phone": "+6281234560402" })).await;
    let (_, inbox) = app.get("/api/v1/sandbox/inbox/+6281234560402?wait_ms=10000", &token).await;
    let code =
        inbox["messages"][0]["content"]["body"].as_str().unwrap().split('*').nth(1).unwrap().to_owned();
    let (_, verdict) =
        app.post("/api/v1/otp/verify", &token, json!({ "id": sent["id"], "code": code })).await;
    assert_eq!(verdict["valid"], true);
    browser.goto(&app.url("/admin/otp")).await.unwrap();
    let log = browser.find(Locator::Css("#otp")).await.unwrap().text().await.unwrap();
    assert!(log.contains("+6281234560402") && log.contains("approved"), "{log}");
    assert!(!browser.source().await.unwrap().contains(&code), "the code is never shown");
    shot(&browser, "07-otp-log").await;

    // An API key: shown once, then revoked.
    browser.goto(&app.url("/admin/api-keys")).await.unwrap();
    fill(&browser, "#key-name", "backend").await;
    click(&browser, "#create-key").await;
    let key = browser.wait().for_element(Locator::Css("#new-key")).await.unwrap().text().await.unwrap();
    assert!(key.starts_with("wag_"), "{key}");
    shot(&browser, "08-api-key").await;
    browser.find(Locator::XPath("//tr[@data-key='backend']//button")).await.unwrap().click().await.unwrap();
    wait_js(
        &browser,
        "key revoked",
        "const row = document.querySelector(\"tr[data-key='backend']\"); return row && row.textContent",
        |v| v.as_str().is_some_and(|t| t.contains("revoked")),
    )
    .await;
    let (status, _) = common::read(
        app.client.get(app.url("/api/v1/auth/me")).header("x-api-key", &key).send().await.unwrap(),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "a revoked key no longer works");

    // The sessions page (the README's screenshot); on a phone-sized screen nothing is wider
    // than the screen but the tables, which scroll inside their frames.
    browser.goto(&app.url("/admin/sessions")).await.unwrap();
    shot(&browser, "09-sessions").await;
    // The list's statuses and the overview's figures follow without a reload.
    app.post("/api/v1/sessions/shop/disconnect", &token, Value::Null).await;
    wait_js(
        &browser,
        "live session status",
        "return document.querySelector('[data-session-status=\"shop\"]').textContent",
        |v| v == "disconnected",
    )
    .await;
    app.post("/api/v1/sessions/shop/connect", &token, Value::Null).await;
    browser.goto(&app.url("/admin")).await.unwrap();
    let read_now = "return document.querySelector('[data-count=\"last_hour\"]').textContent";
    let before = browser.execute(read_now, vec![]).await.unwrap();
    app.post("/api/v1/sessions/shop/messages", &token, json!({ "to": "+6281234560403", "text": "queued" }))
        .await;
    wait_js(&browser, "live overview", read_now, |v| *v != before).await;
    browser.set_window_size(390, 844).await.unwrap();
    for (path, name) in [("/admin", "09-phone-overview"), ("/admin/sessions/shop", "09-phone-session")] {
        browser.goto(&app.url(path)).await.unwrap();
        let overflow = browser
            .execute(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                vec![],
            )
            .await
            .unwrap();
        assert!(overflow.as_i64().is_some_and(|px| px <= 0), "{path} is wider than a phone: {overflow}");
        shot(&browser, name).await;
    }
    browser.set_window_size(1280, 1000).await.unwrap();
    click(&browser, "#logout").await;
    wait_js(&browser, "signed out", "return location.pathname", |v| v == "/admin/login").await;
    browser.goto(&app.url("/admin")).await.unwrap();
    wait_js(&browser, "login required", "return location.pathname", |v| v == "/admin/login").await;
    shot(&browser, "10-signed-out").await;
    browser.close().await.unwrap();
}
