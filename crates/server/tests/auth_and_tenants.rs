//! Authentication, scopes, revocation, rate limits and tenant isolation.

mod common;

use common::{SECRET, TestApp, read};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use wagate_service::auth::{ISSUER, Secrets, TokenClaims, TokenKind, issue_token};

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn everything_but_health_needs_credentials() {
    let app = TestApp::spawn().await;
    for path in ["/api/v1/sessions", "/api/v1/api-keys", "/api/v1/users", "/api/sessions", "/api/v1/auth/me"]
    {
        let (status, problem) = read(app.client.get(app.url(path)).send().await.unwrap()).await;
        assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "missing_credentials"), "{path}");
    }
    for path in ["/health", "/ready", "/api/health"] {
        assert_eq!(app.client.get(app.url(path)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    let (status, problem) = app.get("/api/v1/sessions", "not-a-token").await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "invalid_token"));
    let (status, problem) = app.get("/api/v1/sessions", "wag_0000000000000000000000000000000000000000").await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "invalid_api_key"));
    let response = app
        .client
        .get(app.url("/api/v1/sessions"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_eq!(read(response).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_and_forged_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, me) = app.get("/api/v1/auth/me", &admin).await;
    let key = Secrets::derive(SECRET).token_key;
    let now = chrono::Utc::now().timestamp();
    let claims = |exp| TokenClaims {
        iss: ISSUER.into(),
        sub: me["user_id"].as_str().unwrap().into(),
        kind: TokenKind::Access,
        session: None,
        sid: None,
        iat: now - 100,
        exp,
    };
    let (status, problem) = app.get("/api/v1/sessions", &issue_token(&key, &claims(now - 1))).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "token_expired"));
    let (status, _) = app.get("/api/v1/sessions", &issue_token(&key, &claims(now + 60))).await;
    assert_eq!(status, StatusCode::OK, "a valid token made with the same key works");
    let (status, problem) = app.get("/api/v1/sessions", &issue_token(&[9u8; 32], &claims(now + 60))).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "invalid_token"));
}

#[tokio::test]
async fn wrong_passwords_and_login_rate_limits() {
    let app = TestApp::spawn_with(|c| {
        c.login_limits.failures_per_user = 3;
        c.login_limits.per_ip = 100;
    })
    .await;
    let attempt = |username: &str, password: &str| {
        app.request(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({ "username": username, "password": password }))
            .send()
    };
    let (status, unknown_user) = read(attempt("nobody", "whatever-password").await.unwrap()).await;
    let (_, wrong_password) = read(attempt("admin", "whatever-password").await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_user, wrong_password, "the answer does not reveal whether a user exists");
    for _ in 0..2 {
        attempt("admin", "wrong-password").await.unwrap();
    }
    let response = attempt("admin", common::ADMIN_PASSWORD).await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after > 0);
    let (status, problem) = read(response).await;
    assert_eq!(
        (status, code(&problem)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "locked even with the right password"
    );

    let per_ip = TestApp::spawn_with(|c| c.login_limits.per_ip = 2).await;
    for _ in 0..2 {
        per_ip
            .request(Method::POST, "/api/v1/auth/login", None)
            .json(&json!({"username": "a", "password": "b"}))
            .send()
            .await
            .unwrap();
    }
    let response = per_ip
        .request(Method::POST, "/api/v1/auth/login", None)
        .json(&json!({"username": "c", "password": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (status, created) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "reader", "scopes": ["read"] })).await;
    assert_eq!(status, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap().to_owned();
    let (_, list) = app.get("/api/v1/api-keys", &admin).await;
    let listed = serde_json::to_string(&list).unwrap();
    assert!(!listed.contains(&key), "the key is never shown again");
    assert!(listed.contains(created["prefix"].as_str().unwrap()));

    // Both header forms work.
    let response =
        app.client.get(app.url("/api/v1/sessions")).header("x-api-key", &key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get("/api/v1/sessions", &key).await;
    assert_eq!(status, StatusCode::OK);

    let (status, problem) = app.post("/api/v1/sessions", &key, json!({ "id": "nope" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::FORBIDDEN, "missing_scope"));
    let (status, problem) =
        app.post("/api/v1/api-keys", &key, json!({ "name": "escalate", "scopes": ["sessions"] })).await;
    assert_eq!((status, code(&problem)), (StatusCode::FORBIDDEN, "scope_not_grantable"));
    let (status, problem) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "bad", "scopes": ["root"] })).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"));

    let id = created["id"].as_str().unwrap();
    let response =
        app.request(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&admin)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, problem) = app.get("/api/v1/sessions", &key).await;
    assert_eq!(
        (status, code(&problem)),
        (StatusCode::UNAUTHORIZED, "invalid_api_key"),
        "revoked keys stop working"
    );

    let (status, expired) = app
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({ "name": "old", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app.get("/api/v1/sessions", expired["key"].as_str().unwrap()).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "api_key_expired"));
}

#[tokio::test]
async fn keys_limited_to_sessions_see_only_those() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    app.create_session(&admin, "one").await;
    app.create_session(&admin, "two").await;
    let (status, created) = app
        .post(
            "/api/v1/api-keys",
            &admin,
            json!({ "name": "one-only", "scopes": ["read", "sessions"], "sessions": ["one"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap();
    let (_, list) = app.get("/api/v1/sessions", key).await;
    let ids: Vec<&str> =
        list["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["one"]);
    assert_eq!(app.get("/api/v1/sessions/two", key).await.0, StatusCode::NOT_FOUND);
    let (status, problem) = app.post("/api/v1/sessions", key, json!({ "id": "three" })).await;
    assert_eq!((status, code(&problem)), (StatusCode::FORBIDDEN, "key_session_restricted"));
    let (status, _) = app
        .post("/api/v1/api-keys", &admin, json!({ "name": "x", "scopes": ["read"], "sessions": ["ghost"] }))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let alice = app.create_user(&admin, "alice").await;
    let bob = app.create_user(&admin, "bob").await;
    app.create_session(&alice, "alice-shop").await;
    app.create_session(&bob, "bob-shop").await;

    let (_, list) = app.get("/api/v1/sessions", &alice).await;
    let ids: Vec<&str> =
        list["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alice-shop"]);

    // Bob's session looks exactly like a session that does not exist.
    let probes: Vec<(Method, String, Value)> = vec![
        (Method::GET, "/api/v1/sessions/bob-shop".into(), Value::Null),
        (Method::PATCH, "/api/v1/sessions/bob-shop".into(), json!({ "name": "mine" })),
        (Method::POST, "/api/v1/sessions/bob-shop/connect".into(), Value::Null),
        (Method::POST, "/api/v1/sessions/bob-shop/logout".into(), Value::Null),
        (Method::GET, "/api/v1/sessions/bob-shop/qr".into(), Value::Null),
        (Method::GET, "/api/v1/sessions/bob-shop/events".into(), Value::Null),
        (Method::GET, "/api/v1/sessions/bob-shop/activity".into(), Value::Null),
        (Method::POST, "/api/v1/sessions/bob-shop/pair-code".into(), json!({ "phone": "+6281234567890" })),
        (Method::POST, "/api/v1/sandbox/sessions/bob-shop/scan".into(), json!({ "phone": "+6281234567890" })),
        (Method::DELETE, "/api/v1/sessions/bob-shop".into(), Value::Null),
        (Method::GET, "/api/sessions/bob-shop/status".into(), Value::Null),
    ];
    for (method, path, body) in probes {
        let (status, problem) = app.call(method.clone(), &path, &alice, body).await;
        assert_eq!((status, code(&problem)), (StatusCode::NOT_FOUND, "session_not_found"), "{method} {path}");
    }
    assert_eq!(app.session_status("bob-shop", &bob).await["name"], "bob-shop", "untouched");

    // Users cannot manage users; admins see every tenant.
    let (status, problem) = app.get("/api/v1/users", &alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let (_, all) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(all["sessions"].as_array().unwrap().len(), 2);

    // Alice cannot revoke Bob's keys, and does not see them.
    let (_, bobs_key) =
        app.post("/api/v1/api-keys", &bob, json!({ "name": "bob", "scopes": ["read"] })).await;
    let path = format!("/api/v1/api-keys/{}", bobs_key["id"].as_str().unwrap());
    assert_eq!(app.call(Method::DELETE, &path, &alice, Value::Null).await.0, StatusCode::NOT_FOUND);
    let (_, alices_keys) = app.get("/api/v1/api-keys", &alice).await;
    assert!(alices_keys["api_keys"].as_array().unwrap().is_empty());

    // A disabled user is locked out at once.
    let (_, users) = app.get("/api/v1/users", &admin).await;
    let bob_id = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "bob").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .call(Method::PATCH, &format!("/api/v1/users/{bob_id}"), &admin, json!({ "disabled": true }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, problem) = app.get("/api/v1/sessions", &bob).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "account_disabled"));
}

/// `[api_limits]`: each API key and each signed-in user has its own allowance of requests per
/// minute, told in the `RateLimit-*` headers; beyond it, 429 with `Retry-After`.
#[tokio::test]
async fn requests_per_minute_are_limited_per_key_and_per_user() {
    let app = TestApp::spawn_with(|c| {
        c.api_limits.per_key_per_minute = 3;
        c.api_limits.per_user_per_minute = 20;
    })
    .await;
    let admin = app.admin().await;
    let (_, key) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "limited", "scopes": ["read"] })).await;
    let key = key["key"].as_str().unwrap().to_owned();
    let with_key = || app.client.get(app.url("/api/v1/sessions")).header("X-API-Key", &key).send();
    let header = |response: &reqwest::Response, name: &str| {
        response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    for left in ["2", "1", "0"] {
        let response = with_key().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(header(&response, "ratelimit-remaining").as_deref(), Some(left));
        assert_eq!(header(&response, "ratelimit-policy").as_deref(), Some("3;w=60"));
        assert!(header(&response, "ratelimit-reset").is_some());
    }
    let refused = with_key().await.unwrap();
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "one request's share of the minute: {retry_after}");
    assert_eq!(header(&refused, "ratelimit-remaining").as_deref(), Some("0"));
    let (status, problem) = read(refused).await;
    assert_eq!((status, code(&problem)), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));

    // The user's login token has its own allowance, and so does every other key.
    let (status, _) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (_, other) =
        app.post("/api/v1/api-keys", &admin, json!({ "name": "other", "scopes": ["read"] })).await;
    let (status, _) = app.get("/api/v1/sessions", other["key"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    // Requests without credentials are not counted.
    for _ in 0..5 {
        assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), StatusCode::OK);
    }
}

/// Two different credentials in one request are refused, not one of them silently preferred;
/// the same key in both headers is fine.
#[tokio::test]
async fn conflicting_credentials_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let (_, key) = app.post("/api/v1/api-keys", &admin, json!({ "name": "k", "scopes": ["read"] })).await;
    let key = key["key"].as_str().unwrap();
    let send = |x_api_key: &str, authorization: &str| {
        app.client
            .get(app.url("/api/v1/sessions"))
            .header("X-API-Key", x_api_key)
            .header("Authorization", authorization)
            .send()
    };
    let (status, problem) =
        read(send(key, "Bearer wag_0000000000000000000000000000000000000000").await.unwrap()).await;
    assert_eq!((status, code(&problem)), (StatusCode::UNAUTHORIZED, "conflicting_credentials"));
    let (status, _) = read(send(key, &format!("Bearer {admin}")).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "even two valid ones");
    assert_eq!(read(send(key, &format!("Bearer {key}")).await.unwrap()).await.0, StatusCode::OK);
    assert_eq!(read(send(key, "Basic YWRtaW46YWRtaW4=").await.unwrap()).await.0, StatusCode::UNAUTHORIZED);
}

/// A body must be a JSON object: an array of the fields in order is not read as one.
#[tokio::test]
async fn an_array_is_not_an_object() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    for path in ["/api/v1/sessions", "/api/sessions"] {
        let (status, problem) = app.post(path, &admin, json!([null, null])).await;
        assert_eq!(
            (status.as_u16(), problem["code"].as_str()),
            (if path.starts_with("/api/v1") { 422 } else { 400 }, Some("invalid_body")),
            "{path}: {problem}"
        );
    }
    let (_, sessions) = app.get("/api/v1/sessions", &admin).await;
    assert_eq!(sessions["sessions"].as_array().map(Vec::len), Some(0), "nothing was created: {sessions}");
}
