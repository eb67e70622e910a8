//! One-time passwords never reach the logs: a full run of the real binary at debug level, with
//! every way a code can be created, sent, returned and verified; then the whole log is searched
//! for each code.

mod common;

use std::time::Duration;

use common::{Server, call, login};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "otp-logs-test-password";
const SENDER: &str = "+6281200000801";

async fn linked(client: &reqwest::Client, base: &str, token: &str) {
    let (status, body) = call(
        client,
        Method::POST,
        format!("{base}/api/v1/sessions"),
        token,
        json!({ "id": "otp", "engine": "sandbox", "connect": true }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..200 {
        let url = format!("{base}/api/v1/sandbox/sessions/otp/scan");
        if call(client, Method::POST, url, token, json!({ "phone": SENDER })).await.0 == 200 {
            for _ in 0..200 {
                let (_, session) =
                    call(client, Method::GET, format!("{base}/api/v1/sessions/otp"), token, Value::Null)
                        .await;
                if session["status"] == "connected" {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the session never connected");
}

/// The code in the latest message to `phone` (the sandbox's inbox is the recipient's phone).
async fn code_from_inbox(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    phone: &str,
    nth: usize,
) -> String {
    for _ in 0..250 {
        let (_, inbox) =
            call(client, Method::GET, format!("{base}/api/v1/sandbox/inbox/{phone}"), token, Value::Null)
                .await;
        if let Some(text) = inbox["messages"]
            .as_array()
            .and_then(|m| m.get(nth - 1))
            .and_then(|m| m["content"]["body"].as_str())
        {
            return text.split('*').nth(1).unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no message #{nth} reached {phone}");
}

#[tokio::test]
async fn codes_never_appear_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(dir.path(), &[("WAGATE_ADMIN_PASSWORD", PASSWORD), ("RUST_LOG", "debug")]).await;
    let base = server.base.clone();
    let client = reqwest::Client::new();
    let token = login(&client, &base, "admin", PASSWORD).await;
    linked(&client, &base, &token).await;
    let post = |path: &str, body: Value| call(&client, Method::POST, format!("{base}{path}"), &token, body);
    let mut codes = Vec::new();

    // Push: sent, a wrong code, the right code. Ten digits, so no other number in the logs can
    // match by chance.
    let phone = "+6281234580001";
    let (status, sent) = post("/api/v1/otp/send", json!({ "phone": phone, "length": 10 })).await;
    assert_eq!(status, 202, "{sent}");
    let code = code_from_inbox(&client, &base, &token, phone, 1).await;
    let wrong: String = code.chars().rev().collect();
    let (_, verdict) = post("/api/v1/otp/verify", json!({ "id": sent["id"], "code": wrong })).await;
    assert_eq!(verdict["valid"], false);
    let (_, verdict) = post("/api/v1/otp/verify", json!({ "phone": phone, "code": code })).await;
    assert_eq!(verdict["valid"], true, "{verdict}");
    codes.extend([code, wrong]);

    // Inbound: the code travels in a link and comes back in the user's message.
    let phone = "+6281234580002";
    let (_, sent) =
        post("/api/v1/otp/send", json!({ "phone": phone, "length": 10, "mode": "inbound" })).await;
    let link = sent["link"].as_str().unwrap();
    let code: String =
        link.split("?text=").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 10, "{link}");
    post(
        "/api/v1/sandbox/sessions/otp/inbound",
        json!({ "from": phone, "text": format!("{code} is my code") }),
    )
    .await;
    for _ in 0..250 {
        let (_, shown) = call(
            &client,
            Method::GET,
            format!("{base}/api/v1/otp/{}", sent["id"].as_str().unwrap()),
            &token,
            Value::Null,
        )
        .await;
        if shown["status"] == "approved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    codes.push(code);

    // Returned in the response (the tenant's choice), generated, and the seed routes.
    call(
        &client,
        Method::PATCH,
        format!("{base}/api/v1/otp/settings"),
        &token,
        json!({ "return_code_in_response": true }),
    )
    .await;
    let (_, sent) = post("/api/v1/otp/send", json!({ "phoneNumber": "+6281234580003", "length": 10 })).await;
    codes.push(sent["otp"].as_str().unwrap().to_owned());
    let (_, seed) =
        post("/api/messages/otp/otp", json!({ "to": "+6281234580004", "companyName": "Acme" })).await;
    let _ = seed;
    let (_, generated) =
        call(&client, Method::GET, format!("{base}/api/v1/otp/generate?length=10"), &token, Value::Null)
            .await;
    codes.push(generated["code"].as_str().unwrap().to_owned());
    code_from_inbox(&client, &base, &token, "+6281234580003", 1).await;

    let logs: Vec<String> = server.terminate().await.iter().map(Value::to_string).collect();
    let logs = logs.join("\n");
    assert!(
        logs.contains("verification issued") && logs.contains("verification approved"),
        "the run was logged"
    );
    for code in &codes {
        assert_eq!(code.len(), 10);
        assert!(!logs.contains(code.as_str()), "code {code} found in the logs");
    }
}
