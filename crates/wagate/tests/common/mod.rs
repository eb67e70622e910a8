//! Runs the real `wagate` binary: spawn, read its JSON logs, signal it. HTTP calls and login
//! come from `wagate_testkit`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
pub use wagate_testkit::{call, login};

pub const BIN: &str = env!("CARGO_BIN_EXE_wagate");

pub fn wagate(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", data_dir)
        .env("WAGATE_HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("WAGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .kill_on_drop(true);
    command
}

pub struct Server {
    pub child: Child,
    /// Every log line, read as it comes so the process never blocks on a full pipe.
    logs: tokio::sync::mpsc::UnboundedReceiver<String>,
    pub base: String,
    seen: Vec<Value>,
}

impl Server {
    pub async fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        let mut command = wagate(data_dir);
        command.arg("serve").stdout(Stdio::piped()).stderr(Stdio::inherit());
        for (k, v) in extra_env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("wagate starts");
        let logs = drain(BufReader::new(child.stdout.take().unwrap()).lines());
        let mut server = Server { child, logs, base: String::new(), seen: Vec::new() };
        let listening = server.wait_for_log(|line| line["message"] == "listening").await;
        server.base = format!("http://{}", listening["addr"].as_str().unwrap());
        server.wait_for_log(|line| line["message"] == "sessions restored").await;
        server
    }

    pub async fn wait_for_log(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|l| matches(l)) {
            return found.clone();
        }
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.logs.recv())
                .await
                .expect("log line in time")
                .expect("process still running");
            let parsed: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("a JSON log line: {line}"));
            self.seen.push(parsed.clone());
            if matches(&parsed) {
                return parsed;
            }
        }
    }

    /// The log lines written so far, without waiting for more.
    pub fn logs_so_far(&mut self) -> &[Value] {
        while let Ok(line) = self.logs.try_recv() {
            if let Ok(parsed) = serde_json::from_str(&line) {
                self.seen.push(parsed);
            }
        }
        &self.seen
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn terminate(mut self) -> Vec<Value> {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(20), self.logs.recv()).await {
            self.seen.push(serde_json::from_str(&line).unwrap());
        }
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("exits in time")
            .unwrap();
        assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");
        self.seen
    }
}

impl Server {
    /// SIGKILL: no shutdown at all, as in a crash or a power cut of the process. Returns the
    /// lines it wrote before.
    pub async fn kill(mut self) -> Vec<Value> {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
        while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(5), self.logs.recv()).await {
            if let Ok(parsed) = serde_json::from_str(&line) {
                self.seen.push(parsed);
            }
        }
        self.seen
    }
}

fn drain(mut lines: Lines<BufReader<ChildStdout>>) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Creates a sandbox session `id` through `base`, connects it and "scans" its QR code as
/// `phone`, so that it is linked and connected.
pub async fn link_sandbox_session(client: &reqwest::Client, base: &str, token: &str, id: &str, phone: &str) {
    let (status, body) = call(
        client,
        Method::POST,
        format!("{base}/api/v1/sessions"),
        token,
        json!({ "id": id, "engine": "sandbox", "connect": true }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for _ in 0..200 {
        let (status, _) = call(
            client,
            Method::POST,
            format!("{base}/api/v1/sandbox/sessions/{id}/scan"),
            token,
            json!({ "phone": phone }),
        )
        .await;
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("session {id} was never linked");
}
