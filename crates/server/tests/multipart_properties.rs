//! Multipart uploads built at random, truncated at random: the answer is never a 5xx, a
//! refusal is a problem with a code, and a refused upload leaves no file behind.

mod common;

use common::TestApp;
use proptest::prelude::*;
use reqwest::{Method, StatusCode};

#[derive(Debug, Clone)]
enum Field {
    Text { name: String, value: String },
    File { name: String, file_name: Option<String>, content_type: Option<String>, bytes: Vec<u8> },
}

fn field() -> impl Strategy<Value = Field> {
    let names = prop::sample::select(vec![
        "to", "text", "caption", "image", "document", "video", "audio", "sticker", "x", "",
    ]);
    prop_oneof![
        (names.clone(), prop_oneof![Just("+6281234500095".to_owned()), "\\PC{0,20}"])
            .prop_map(|(name, value)| Field::Text { name: name.to_owned(), value }),
        (
            names,
            prop::option::of("[a-z.]{0,12}"),
            prop::option::of(prop::sample::select(vec![
                "image/png",
                "application/pdf",
                "text/plain",
                "nonsense"
            ])),
            prop_oneof![
                Just(b"\x89PNG\r\n\x1a\n0000".to_vec()),
                Just(b"%PDF-1.7 x".to_vec()),
                prop::collection::vec(any::<u8>(), 0..300)
            ],
        )
            .prop_map(|(name, file_name, content_type, bytes)| Field::File {
                name: name.to_owned(),
                file_name,
                content_type: content_type.map(str::to_owned),
                bytes,
            }),
    ]
}

fn body(fields: &[Field], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for field in fields {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match field {
            Field::Text { name, value } => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
                );
            }
            Field::File { name, file_name, content_type, bytes } => {
                let file_name = file_name.as_ref().map(|f| format!("; filename=\"{f}\"")).unwrap_or_default();
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"{file_name}\r\n").as_bytes(),
                );
                if let Some(content_type) = content_type {
                    out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(bytes);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[test]
fn random_uploads_never_fail_the_server_nor_leave_files() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let app = runtime.block_on(TestApp::spawn_with(|c| c.media.max_bytes = 200));
    let admin = runtime.block_on(async {
        let admin = app.admin().await;
        app.linked(&admin, "up", "+6281200000095").await;
        admin
    });
    let accepted = std::sync::Mutex::new(Vec::<(String, String)>::new());
    let config = ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(fields in prop::collection::vec(field(), 0..6), cut in prop::option::of(0usize..2_000), boundary in "[A-Za-z0-9]{1,40}")| {
        let mut raw = body(&fields, &boundary);
        if let Some(cut) = cut {
            raw.truncate(cut.min(raw.len()));
        }
        let (status, answer) = runtime.block_on(async {
            let response = app
                .request(Method::POST, "/api/v1/sessions/up/messages", Some(&admin))
                .header("content-type", format!("multipart/form-data; boundary={boundary}"))
                .body(raw)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            (status, serde_json::from_str::<serde_json::Value>(&text).unwrap_or(serde_json::Value::String(text)))
        });
        prop_assert!(!status.is_server_error(), "{status}: {answer}");
        if status == StatusCode::ACCEPTED {
            if let Some(source) = answer["content"]["media"]["source"].as_str() {
                let name = source.strip_prefix("upload:").unwrap_or(source).to_owned();
                accepted.lock().unwrap().push((answer["id"].as_str().unwrap().to_owned(), name));
            }
        } else {
            prop_assert!(status.is_client_error(), "{status}: {answer}");
            prop_assert!(answer["code"].is_string(), "a refusal names its code: {answer}");
        }
    });
    // A refused upload leaves no file; an accepted one keeps its file until its message is sent.
    let accepted = accepted.into_inner().unwrap();
    let files: Vec<String> = std::fs::read_dir(app.data_dir.join("media"))
        .map(|dir| dir.map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    for file in &files {
        assert!(accepted.iter().any(|(_, name)| name == file), "{file} belongs to no accepted upload");
    }
    for (id, name) in &accepted {
        let (status, message) = runtime.block_on(app.get(&format!("/api/v1/messages/{id}"), &admin));
        assert_eq!(status, StatusCode::OK, "{message}");
        let sent = matches!(message["status"].as_str(), Some("sent" | "delivered" | "read"));
        if !sent {
            assert!(files.contains(name), "the upload of unsent message {id} is kept: {message}");
        }
    }
}
