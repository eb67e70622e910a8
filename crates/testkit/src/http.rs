//! JSON calls to the HTTP API and the two ways of reading their answers.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// Attaches `body` as JSON unless it is `Null`.
pub fn with_body(builder: RequestBuilder, body: Value) -> RequestBuilder {
    if body.is_null() { builder } else { builder.json(&body) }
}

/// Status and JSON body (Null when empty, a string when not JSON), checking the error contract
/// on the way: every error is problem+json with a `code`, and never a 500.
pub async fn read(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = response.text().await.unwrap();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(content_type, "application/problem+json", "errors are problem+json: {status} {text}");
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_client_error() || status.is_server_error() {
        assert!(body["code"].is_string(), "problem has a code: {body}");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "never a 500: {body}");
    }
    (status, body)
}

/// Status code and JSON body (Null when not JSON), with no check of the error contract.
pub async fn read_lenient(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A bearer-authenticated JSON call, read leniently.
pub async fn call(
    client: &reqwest::Client,
    method: Method,
    url: String,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let request = with_body(client.request(method, url).bearer_auth(token), body);
    read_lenient(request.send().await.unwrap()).await
}

/// Signs in at `base` and returns the session token; fails the test unless the answer is 200.
pub async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> String {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, StatusCode::OK, "login failed: {body}");
    body["token"].as_str().unwrap().to_owned()
}
