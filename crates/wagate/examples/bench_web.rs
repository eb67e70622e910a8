//! Benchmark: the real WhatsApp client (`web` engine) against wamock, the fake WhatsApp server.
//!
//! For each N, a wagate server runs in a child process of its own (so its memory is measured
//! alone); N `web` sessions are linked by QR code and left idle, then the child's resident
//! memory is divided by N. Last, text messages go out as fast as the sessions send them.
//!
//! ```text
//! cargo run --release -p wagate --example bench_web -- [N,N,…] [SEND_SESSIONS] [MESSAGES]
//! cargo run --release -p wagate --example bench_web -- 10,100,500 50 10000
//! ```

mod support;

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use wagate_server::App;
use wamock::{MockAccount, MockConfig, WaMock};

/// Several linkings at once, as an operator onboarding accounts would; more only queue.
const LINKING_AT_ONCE: usize = 16;
const WEB_VERSION: (u32, u32, u32) = (2, 3000, 1_029_384_756);

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve(&args[1], &args[2]).await;
    }
    let counts: Vec<usize> =
        args.first().map_or("10,100,500", String::as_str).split(',').map(|n| n.parse().unwrap()).collect();
    let send_sessions: usize = args.get(1).map_or(50, |n| n.parse().unwrap());
    let messages: usize = args.get(2).map_or(10_000, |n| n.parse().unwrap());

    println!("web engine against wamock, {} cores", support::cores());
    println!(
        "{:>6} {:>14} {:>14} {:>16} {:>12}",
        "N", "RSS idle MiB", "RSS empty MiB", "per session MiB", "link s"
    );
    for &n in &counts {
        let run = Run::start(n).await;
        let linking = Instant::now();
        run.link_all().await;
        let link_secs = linking.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(5)).await; // idle: initial syncs done
        let idle = run.rss_kib();
        let per_session = (idle.saturating_sub(run.empty_rss_kib)) as f64 / n as f64 / 1024.0;
        println!(
            "{n:>6} {:>14.1} {:>14.1} {per_session:>16.2} {link_secs:>12.1}",
            idle as f64 / 1024.0,
            run.empty_rss_kib as f64 / 1024.0
        );
        run.stop().await;
    }

    let run = Run::start(send_sessions).await;
    run.link_all().await;
    run.throughput(messages).await;
    run.stop().await;
}

/// The server process: wagate with `web` sessions pointed at the mock.
async fn serve(data_dir: &str, mock_url: &str) {
    let mut config = support::loopback_config(std::path::Path::new(data_dir));
    config.sandbox = false;
    config.web.server_url = Some(mock_url.to_owned());
    config.web.version = Some(format!("{}.{}.{}", WEB_VERSION.0, WEB_VERSION.1, WEB_VERSION.2));
    // The target is the engine's throughput: no pacing, no per-hour caps.
    config.pacing = wagate_core::Pacing {
        min_delay_ms: 0,
        max_delay_ms: 0,
        typing: false,
        hourly_cap: None,
        daily_cap: None,
    };
    let app = App::build(config).await.unwrap();
    println!("listening {}", app.local_addr());
    app.run(std::future::pending()).await.unwrap();
}

struct Run {
    mock: WaMock,
    child: tokio::process::Child,
    api: Arc<Api>,
    sessions: usize,
    empty_rss_kib: u64,
    _dir: tempfile::TempDir,
}

struct Api {
    base: String,
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let mut request =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn account(n: usize) -> MockAccount {
    MockAccount {
        phone: format!("62812{n:07}"),
        lid: format!("1000000{n:08}"),
        push_name: format!("Bench {n}"),
    }
}

impl Run {
    async fn start(sessions: usize) -> Run {
        let mock = WaMock::start(MockConfig::default()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--serve", &dir.path().to_string_lossy(), &mock.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next_line().await.unwrap().expect("the server starts");
            if let Some(addr) = line.strip_prefix("listening ") {
                break addr.to_owned();
            }
        };
        let base = format!("http://{addr}");
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        let token = support::login(&client, &base).await;
        let api = Arc::new(Api { base, client, token });
        let mut run = Run { mock, child, api, sessions, empty_rss_kib: 0, _dir: dir };
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.empty_rss_kib = run.rss_kib();
        run
    }

    fn rss_kib(&self) -> u64 {
        support::rss_kib_of(&self.child.id().unwrap().to_string())
    }

    async fn link_all(&self) {
        let permits = Arc::new(tokio::sync::Semaphore::new(LINKING_AT_ONCE));
        let mut tasks = Vec::new();
        for n in 0..self.sessions {
            let (api, mock, permits) = (self.api.clone(), self.mock.clone(), permits.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = permits.acquire().await.unwrap();
                link(&api, &mock, n).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    async fn throughput(&self, messages: usize) {
        let contacts: Vec<String> = (0..self.sessions)
            .map(|n| {
                let phone = format!("62813{n:07}");
                self.mock.add_contact(&phone);
                phone
            })
            .collect();
        // One warm-up message per session: the first send to a contact fetches its keys.
        for (n, contact) in contacts.iter().enumerate() {
            send(&self.api, n, contact, "warm-up").await;
        }
        for _ in 0..self.sessions {
            self.mock.next_message(Duration::from_secs(60)).await.expect("warm-up arrives");
        }

        let started = Instant::now();
        let mut accepting = Vec::new();
        let per_session = messages / self.sessions;
        for (n, contact) in contacts.iter().enumerate() {
            let (api, contact) = (self.api.clone(), contact.clone());
            accepting.push(tokio::spawn(async move {
                for m in 0..per_session {
                    send(&api, n, &contact, &format!("message {m} from session {n}")).await;
                }
            }));
        }
        let total = per_session * self.sessions;
        let mut seen = HashSet::new();
        while seen.len() < total {
            let received =
                self.mock.next_message(Duration::from_secs(120)).await.expect("every message arrives");
            seen.insert(received.id);
        }
        let elapsed = started.elapsed().as_secs_f64();
        for task in accepting {
            task.await.unwrap();
        }
        println!(
            "throughput: {total} texts over {} sessions reached wamock in {elapsed:.1} s: {:.0} messages/s",
            self.sessions,
            total as f64 / elapsed
        );
        println!("RSS after sending: {:.1} MiB", self.rss_kib() as f64 / 1024.0);
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn send(api: &Api, session: usize, to: &str, text: &str) {
    let body = json!({ "to": format!("+{to}"), "text": text });
    let (status, answer) =
        api.call(reqwest::Method::POST, &format!("/api/v1/sessions/w{session}/messages"), body).await;
    assert_eq!(status, 202, "{answer}");
}

/// Creates session `w{n}`, scans its QR code with the fake phone, waits for `connected`.
async fn link(api: &Api, mock: &WaMock, n: usize) {
    let id = format!("w{n}");
    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/sessions",
            json!({ "id": id, "engine": "web", "connect": true }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let deadline = Instant::now() + Duration::from_secs(300);
    let qr = loop {
        let (status, qr) =
            api.call(reqwest::Method::GET, &format!("/api/v1/sessions/{id}/qr"), Value::Null).await;
        if status == 200 {
            break qr["qr"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no QR code for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    mock.scan(&qr, &account(n)).await.expect("the fake phone scans");
    loop {
        let (_, session) =
            api.call(reqwest::Method::GET, &format!("/api/v1/sessions/{id}"), Value::Null).await;
        if session["status"] == "connected" {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never connected: {session}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
