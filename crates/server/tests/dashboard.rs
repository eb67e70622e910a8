//! The dashboard over plain HTTP: sign-in, CSRF, tenant isolation, escaping, expiry.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, TestApp};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A browser-like client: no redirects followed, cookies kept by hand.
struct Browser {
    client: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, base: app.base.clone(), cookies: Vec::new() }
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let request = self.client.get(format!("{}{path}", self.base));
        self.exchange(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, Option<String>) {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.exchange(request).await
    }

    /// Sends with the kept cookies; keeps the new ones; returns status, body and redirect.
    async fn exchange(&mut self, request: reqwest::RequestBuilder) -> (StatusCode, String, Option<String>) {
        let response = request.header(COOKIE, self.cookie_header()).send().await.unwrap();
        self.keep(&response);
        let location = response.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_owned());
        (response.status(), response.text().await.unwrap(), location)
    }

    async fn sign_in(&mut self, username: &str, password: &str) -> (StatusCode, String, Option<String>) {
        let (_, page, _) = self.get("/admin/login").await;
        let csrf = hidden(&page, "csrf");
        self.post(
            "/admin/login",
            &[("username", username), ("password", password), ("csrf", &csrf), ("next", "/admin")],
        )
        .await
    }
}

/// The value of a hidden form field.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker).unwrap_or_else(|| panic!("no {name} field in {page}")) + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn sign_in_is_rate_limited_and_uses_a_strict_cookie() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let (status, _, location) = browser.get("/admin").await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin/login?next=/admin")));

    // Without the form's token: refused.
    let (status, _, _) = browser
        .post("/admin/login", &[("username", "admin"), ("password", ADMIN_PASSWORD), ("csrf", "x")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for _ in 0..5 {
        let (status, page, _) = browser.sign_in("admin", "wrong-password").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("Wrong username or password."), "a generic error");
    }
    let (status, page, _) = browser.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "locked out after repeated failures");
    assert!(page.contains("Too many attempts"));

    let other = TestApp::spawn().await;
    let mut browser = Browser::new(&other);
    let response = {
        let (_, page, _) = browser.get("/admin/login").await;
        let csrf = hidden(&page, "csrf");
        browser
            .client
            .post(format!("{}/admin/login", other.base))
            .header(COOKIE, browser.cookie_header())
            .header("x-forwarded-proto", "https")
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf", &csrf),
                ("next", "/admin/sessions"),
            ])
            .send()
            .await
            .unwrap()
    };
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin/sessions");
    let session_cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("wagate_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/admin"] {
        assert!(session_cookie.contains(attribute), "{attribute} in {session_cookie}");
    }
}

#[tokio::test]
async fn forms_need_the_csrf_token_and_other_tenants_are_invisible() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let user = app.create_user(&admin, "tenant").await;
    app.create_session(&admin, "admins-own").await;
    app.create_session(&user, "tenants-own").await;

    let mut browser = Browser::new(&app);
    let (status, _, _) = browser.sign_in("tenant", "tenant-password").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page, _) = browser.get("/admin/sessions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("tenants-own") && !page.contains("admins-own"), "only the user's own sessions");
    let csrf = hidden(&page, "csrf");

    // Missing or wrong CSRF token: 403 and nothing created.
    let (status, _, _) = browser.post("/admin/sessions", &[("id", "forged"), ("engine", "sandbox")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    let (status, _, _) =
        browser.post("/admin/sessions", &[("id", "forged"), ("engine", "sandbox"), ("csrf", "0000")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get("/api/v1/sessions/forged", &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let (status, _, location) =
        browser.post("/admin/sessions", &[("id", "made-here"), ("engine", "sandbox"), ("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_deref().map(|l| l.starts_with("/admin/sessions/made-here"))),
        (StatusCode::SEE_OTHER, Some(true))
    );

    // Another tenant's session, in any URL: 404, and its actions do nothing.
    let (status, _, _) = browser.get("/admin/sessions/admins-own").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) =
        browser.post("/admin/sessions/admins-own/delete", &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get("/api/v1/sessions/admins-own", &admin).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let (status, _, _) = browser.get("/admin/users").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "users are for admins");

    // Signing out ends the cookie.
    let (status, _, location) = browser.post("/admin/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin/login")));
    let (status, _, _) = browser.get("/admin/sessions").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn user_content_is_escaped_everywhere() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let script = "<script>alert(1)</script>";
    let (status, _) = app
        .post("/api/v1/sessions", &admin, json!({ "id": "xss", "engine": "sandbox", "name": script }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.linked(&admin, "xss-linked", "+6281200000301").await;
    app.post(
        "/api/v1/sessions/xss-linked/messages",
        &admin,
        json!({ "to": "+6281234560301", "text": script }),
    )
    .await;
    let (status, body) = app
        .post(
            "/api/v1/webhooks",
            &admin,
            json!({ "url": "http://127.0.0.1:9/hook?<script>alert(1)</script>" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut browser = Browser::new(&app);
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    for path in ["/admin/sessions", "/admin/sessions/xss", "/admin/messages", "/admin/webhooks"] {
        let (status, page, _) = browser.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!page.contains(script), "{path} shows the script unescaped");
        assert!(page.contains("&lt;script&gt;"), "{path} shows it escaped");
    }
}

#[tokio::test]
async fn an_idle_sign_in_expires() {
    let app = TestApp::spawn_with(|c| c.dashboard_idle_secs = 1).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    let (status, page, _) = browser.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Overview"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, location) = browser.get("/admin/messages").await;
    assert_eq!(
        (status, location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/admin/login?next=/admin/messages"))
    );
}

#[tokio::test]
async fn every_page_renders() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.linked(&admin, "pages", "+6281200000302").await;
    let (_, sent) = app
        .post("/api/v1/sessions/pages/messages", &admin, json!({ "to": "+6281234560302", "text": "hi" }))
        .await;
    app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560303" })).await;
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    let message = format!("/admin/messages/{}", sent["id"].as_str().unwrap());
    for path in [
        "/admin",
        "/admin/status",
        "/admin/sessions",
        "/admin/sessions/pages",
        "/admin/messages",
        "/admin/messages?status=failed&q=hi",
        message.as_str(),
        "/admin/otp",
        "/admin/otp?phone=%2B6281234560303",
        "/admin/otp?status=pending&since=2026-01-01&until=2099-12-31",
        "/admin/webhooks",
        "/admin/api-keys",
        "/admin/users",
        "/admin/sandbox?phone=%2B6281234560302",
    ] {
        let (status, page, _) = browser.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
    }
    let (_, page, _) = browser.get("/admin/otp?since=2000-01-01").await;
    assert!(page.contains("+6281234560303"), "the OTP log lists it");
    let (_, page, _) = browser.get("/admin/otp?since=2099-01-01").await;
    assert!(page.contains("No verifications."), "a time filter applies");
    let (status, _, _) = browser.get("/admin/otp?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, _) = browser.get("/admin/messages/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = app.request(Method::GET, "/admin", None);
}

/// The notice a form's redirect carries.
fn notice(location: &Option<String>) -> String {
    let location = location.as_deref().unwrap_or_default();
    let encoded = location.split("notice=").nth(1).unwrap_or_default();
    reqwest::Url::parse(&format!("http://x/?n={encoded}"))
        .unwrap()
        .query_pairs()
        .next()
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn every_action_works_from_the_dashboard() {
    let app = TestApp::spawn_with(|c| {
        c.webhooks.retry_schedule_ms = vec![];
        // The QR codes shown after "Reload" and "log out and scan again" are checked: they must
        // not run out (two seconds with the tests' timings) before a busy machine looks.
        c.sandbox_timings.qr_first_timeout_ms = 60_000;
    })
    .await;
    let admin = app.admin().await;
    let user = app.create_user(&admin, "ops-user").await;
    app.create_session(&user, "users-own").await;
    let mut browser = Browser::new(&app);
    browser.sign_in("admin", ADMIN_PASSWORD).await;
    let (_, page, _) = browser.get("/admin/sessions").await;
    assert!(page.contains("users-own"), "admins see every tenant's sessions");
    let csrf = hidden(&page, "csrf");

    // Users: create, disable, enable, reset the password.
    let (status, _, location) = browser
        .post(
            "/admin/users",
            &[("csrf", &csrf), ("username", "clerk"), ("password", "clerk-password"), ("role", "user")],
        )
        .await;
    assert_eq!((status, notice(&location)), (StatusCode::SEE_OTHER, "User clerk created".to_owned()));
    let (_, users) = app.get("/api/v1/users", &admin).await;
    let clerk = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "clerk").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    browser.post(&format!("/admin/users/{clerk}/disable"), &[("csrf", &csrf)]).await;
    let login = |password: &'static str| {
        app.request(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({ "username": "clerk", "password": password }))
            .send()
    };
    assert_eq!(login("clerk-password").await.unwrap().status(), StatusCode::UNAUTHORIZED, "disabled");
    browser.post(&format!("/admin/users/{clerk}/enable"), &[("csrf", &csrf)]).await;
    browser
        .post(
            &format!("/admin/users/{clerk}/password"),
            &[("csrf", &csrf), ("password", "new-clerk-password")],
        )
        .await;
    assert_eq!(login("new-clerk-password").await.unwrap().status(), StatusCode::OK, "enabled, new password");

    // A session: pairing code, pacing, webhook URL, a queued message canceled, delete.
    browser.post("/admin/sessions", &[("csrf", &csrf), ("id", "ops"), ("engine", "sandbox")]).await;
    let (_, _, location) =
        browser.post("/admin/sessions/ops/pair-code", &[("csrf", &csrf), ("phone", "+6281200000501")]).await;
    assert!(notice(&location).starts_with("Pairing code: "), "{location:?}");
    browser
        .post(
            "/admin/sessions/ops/pacing",
            &[("csrf", &csrf), ("min_delay_ms", "100"), ("max_delay_ms", "200"), ("hourly_cap", "50")],
        )
        .await;
    browser.post("/admin/sessions/ops/webhook", &[("csrf", &csrf), ("url", "http://127.0.0.1:9/ops")]).await;
    let session = app.session_status("ops", &admin).await;
    assert_eq!(
        (session["pacing"]["max_delay_ms"].as_i64(), session["pacing"]["hourly_cap"].as_i64()),
        (Some(200), Some(50))
    );
    assert_eq!(session["webhook_url"], "http://127.0.0.1:9/ops");
    let (_, _, location) = browser
        .post("/admin/sessions/ops/send", &[("csrf", &csrf), ("to", "+6281234560501"), ("text", "waits")])
        .await;
    let id = notice(&location).split(' ').nth(1).unwrap().to_owned();
    browser.post(&format!("/admin/messages/{id}/cancel"), &[("csrf", &csrf)]).await;
    let (_, message) = app.get(&format!("/api/v1/messages/{id}"), &admin).await;
    assert_eq!(message["status"], "canceled");
    // Reload, disconnect, connect, and "log out and scan again" (which shows a new QR code).
    browser.post("/admin/sessions/ops/disconnect", &[("csrf", &csrf)]).await;
    assert_eq!(app.session_status("ops", &admin).await["status"], "disconnected");
    let (_, _, location) = browser.post("/admin/sessions/ops/restart", &[("csrf", &csrf)]).await;
    assert_eq!(notice(&location), "Restarted");
    assert_ne!(app.session_status("ops", &admin).await["status"], "disconnected");
    let (_, _, location) = browser.post("/admin/sessions/ops/logout", &[("csrf", &csrf)]).await;
    assert_eq!(notice(&location), "Logged out: scan the new QR code");
    for _ in 0..100 {
        if app.session_status("ops", &admin).await["status"] == "qr" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let session = app.session_status("ops", &admin).await;
    assert_eq!(session["status"], "qr", "{session}");
    let (status, _, _) = browser.post("/admin/sessions/ops/delete", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "deleting needs the confirmation");
    assert_eq!(app.get("/api/v1/sessions/ops", &admin).await.0, StatusCode::OK);
    browser.post("/admin/sessions/ops/delete", &[("csrf", &csrf), ("confirm", "yes")]).await;
    assert_eq!(app.get("/api/v1/sessions/ops", &admin).await.0, StatusCode::NOT_FOUND);

    // OTP: cancel a verification; clear a phone's failure counter.
    app.linked(&admin, "otp-ops", "+6281200000502").await;
    let (_, sent) = app.post("/api/v1/otp/send", &admin, json!({ "phone": "+6281234560502" })).await;
    browser.post(&format!("/admin/otp/{}/cancel", sent["id"].as_str().unwrap()), &[("csrf", &csrf)]).await;
    let (_, shown) = app.get(&format!("/api/v1/otp/{}", sent["id"].as_str().unwrap()), &admin).await;
    assert_eq!(shown["status"], "canceled");
    app.post("/api/v1/otp/verify", &admin, json!({ "phone": "+6281234560502", "code": "123456" })).await;
    let (_, page, _) = browser.get("/admin/otp?phone=%2B6281234560502").await;
    assert!(page.contains("id=\"phone-failures\">1<"), "the counter is shown");
    browser.post("/admin/otp/phones/reset", &[("csrf", &csrf), ("phone", "+6281234560502")]).await;
    let (_, failures) = app.get("/api/v1/otp/phones/+6281234560502", &admin).await;
    assert_eq!(failures["consecutive_failures"], 0);

    // Sandbox: write to a session, read a number's inbox.
    let (_, _, location) = browser
        .post(
            "/admin/sandbox/inbound",
            &[("csrf", &csrf), ("session", "otp-ops"), ("from", "+6281234560503"), ("text", "hello ops")],
        )
        .await;
    assert_eq!(notice(&location), "Message delivered to the session");
    let (_, chat) = app.get("/api/v1/sessions/otp-ops/chats/+6281234560503/messages", &admin).await;
    assert_eq!(chat["messages"][0]["text"], "hello ops", "{chat}");
    app.post(
        "/api/v1/sessions/otp-ops/messages",
        &admin,
        json!({ "to": "+6281234560504", "text": "to the inbox" }),
    )
    .await;
    app.get("/api/v1/sandbox/inbox/+6281234560504?wait_ms=5000", &admin).await;
    let (_, page, _) = browser.get("/admin/sandbox?phone=%2B6281234560504").await;
    assert!(page.contains("to the inbox"));

    // An API key limited to one session and scope, from the form (the scope field repeats).
    let (status, page, _) = browser
        .post(
            "/admin/api-keys",
            &[("csrf", &csrf), ("name", "limited"), ("scope", "read"), ("sessions", "otp-ops")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = page.split("id=\"new-key\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    let (_, me) = common::read(
        app.client.get(app.url("/api/v1/auth/me")).header("x-api-key", &key).send().await.unwrap(),
    )
    .await;
    assert_eq!(
        (me["scopes"].to_string(), me["sessions"].to_string()),
        ("[\"read\"]".to_owned(), "[\"otp-ops\"]".to_owned()),
        "{me}"
    );

    // Webhooks: a receiver that refuses (400) leaves dead letters; replay queues them again.
    let refusing =
        axum::Router::new().route("/hook", axum::routing::post(|| async { StatusCode::BAD_REQUEST }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, refusing).await.unwrap() });
    let (_, hook) =
        app.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.*"] })).await;
    app.post("/api/v1/sessions/otp-ops/messages", &admin, json!({ "to": "+6281234560505", "text": "event" }))
        .await;
    let mut dead = false;
    for _ in 0..100 {
        let (_, page, _) = browser.get("/admin/webhooks").await;
        if page.contains("dead deliveries") {
            assert!(page.contains("400"), "the response code is in the log");
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead, "a dead letter shows up");
    let (_, _, location) = browser
        .post(&format!("/admin/webhooks/{}/replay", hook["id"].as_str().unwrap()), &[("csrf", &csrf)])
        .await;
    assert!(notice(&location).ends_with("deliveries queued again"), "{location:?}");
    assert!(!notice(&location).starts_with("0 "));
}
