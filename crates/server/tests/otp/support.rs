//! What the OTP tests share: a linked sandbox app, reading codes from the sandbox inbox, polling
//! a verification, decoding `wa.me` links and a webhook receiver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use reqwest::StatusCode;
use serde_json::Value;

use crate::common::TestApp;

pub(crate) const SENDER: &str = "+6281200000101";

/// The code of the latest OTP message in a number's sandbox inbox (waits for it).
pub(crate) async fn code_from_inbox(app: &TestApp, token: &str, phone: &str, nth: usize) -> String {
    for _ in 0..250 {
        let (status, inbox) = app.get(&format!("/api/v1/sandbox/inbox/{phone}"), token).await;
        assert_eq!(status, StatusCode::OK, "{inbox}");
        let texts: Vec<String> = inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["content"]["body"].as_str().map(str::to_owned))
            .collect();
        if texts.len() >= nth {
            let text = &texts[nth - 1];
            assert!(!text.contains("sealed"), "the recipient gets the plain text: {text}");
            return text.split('*').nth(1).unwrap_or_else(|| panic!("no *code* in {text}")).to_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no OTP message #{nth} reached {phone}");
}

pub(crate) async fn linked_app(adjust: impl FnOnce(&mut wagate_server::Config)) -> (TestApp, String) {
    let app = TestApp::spawn_with(adjust).await;
    let admin = app.admin().await;
    app.linked(&admin, "otp", SENDER).await;
    (app, admin)
}

pub(crate) fn wrong(code: &str) -> String {
    code.chars().map(|c| if c == '9' { '0' } else { char::from(c as u8 + 1) }).collect()
}

pub(crate) async fn wait_for_otp(
    app: &TestApp,
    token: &str,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..250 {
        let (status, body) = app.get(&format!("/api/v1/otp/{id}"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("verification {id} never reached the expected state: {last}");
}

/// Reads the prefilled text of a `wa.me` link.
pub(crate) fn link_text(link: &str) -> String {
    let encoded = link.split("?text=").nth(1).unwrap();
    let bytes: Vec<u8> = {
        let raw = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' {
                out.push(u8::from_str_radix(std::str::from_utf8(&raw[i + 1..i + 3]).unwrap(), 16).unwrap());
                i += 3;
            } else {
                out.push(raw[i]);
                i += 1;
            }
        }
        out
    };
    String::from_utf8(bytes).unwrap()
}

#[derive(Clone, Default)]
pub(crate) struct Hooks(pub(crate) Arc<Mutex<Vec<Value>>>);

pub(crate) async fn hook_receiver() -> (Hooks, String) {
    let hooks = Hooks::default();
    let store = hooks.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: String| {
            let store = store.clone();
            async move {
                store.0.lock().unwrap().push(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hooks, url)
}

impl Hooks {
    pub(crate) async fn wait_for(&self, event_type: &str) -> Value {
        for _ in 0..250 {
            if let Some(event) = self.0.lock().unwrap().iter().find(|e| e["type"] == event_type) {
                return event.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {event_type} webhook; got {:?}", self.0.lock().unwrap());
    }
}
