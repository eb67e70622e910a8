//! Clients that hold connections open by never finishing their headers or by trickling their
//! bodies, and bodies declared far over the limit: the server drops the first, cuts the second
//! off at its deadline, refuses the third without reading it, keeps its memory, and serves
//! everyone else meanwhile.

mod common;

use std::time::Duration;

use common::TestApp;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Reads until the server closes the connection; what it said before.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_clients_do_not_hold_the_server() {
    let app = TestApp::spawn_with(|c| {
        c.header_read_timeout_secs = 1;
        c.max_connections = 64;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let before = resident_kib();

    // Three hundred clients send half a request and stop there.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: wagate\r\nX-Slow: ").await.unwrap();
        slow.push(stream);
    }
    // Everyone else is still served (the client gives up after 20 s).
    for _ in 0..5 {
        let response = app.client.get(app.url("/health")).send().await.expect("served despite slow clients");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // And the slow ones were shown the door.
    for stream in &mut slow {
        let closed = tokio::time::timeout(Duration::from_secs(20), until_closed(stream)).await;
        assert!(closed.is_ok(), "a client that never finished its headers is disconnected");
    }

    // Bodies declared far over the limit are refused before a byte of them is read.
    let mut oversized = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = "POST /api/v1/auth/login HTTP/1.1\r\nHost: wagate\r\nContent-Type: application/json\r\n\
                    Content-Length: 104857600\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        oversized.push(stream);
    }
    for stream in &mut oversized {
        let answer = tokio::time::timeout(Duration::from_secs(20), until_closed(stream)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("payload_too_large"), "{answer}");
    }
    let grown_mib = resident_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 64, "resident memory grew by {grown_mib} MiB");
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_is_cut_off_at_its_deadline() {
    let app = TestApp::spawn_with(|c| {
        c.body_read_timeout_secs = 1;
        c.max_connections = 64;
    })
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let body = br#"{"username":"admin","password":"a wrong password, sent slowly"}"#;
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: wagate\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );

    // Forty clients send their headers, then one byte of the body every 200 ms: each would take
    // twelve seconds to finish.
    let mut readers = Vec::new();
    for _ in 0..40 {
        let stream = TcpStream::connect(&address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = head.clone();
        tokio::spawn(async move {
            if writer.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for byte in body {
                if writer.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        readers.push(tokio::spawn(async move {
            let mut answer = Vec::new();
            let mut buffer = [0u8; 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => return String::from_utf8_lossy(&answer).into_owned(),
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                }
            }
        }));
    }
    // Everyone else is served meanwhile, and a body that arrives in parts within the deadline
    // is read as usual (a wrong password: 401).
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(&body[20..]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    // The tricklers get a 408 with a stable code once their second is up, and are disconnected.
    for reader in readers {
        let answer = tokio::time::timeout(Duration::from_secs(8), reader)
            .await
            .expect("the connection is closed well before the body could have finished")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
}
