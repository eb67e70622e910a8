//! A cluster of `wagate` processes on one PostgreSQL database, against one process on the same
//! database: messages/s and one-time-password flows/s through every node, the database's share
//! of the CPU, and failover time (`kill -9` of a node → every session it ran connected on
//! another). Prints figures; see BENCHMARKS.md.
//!
//! cargo build --release -p wagate --bins --example bench_cluster
//! target/release/examples/bench_cluster [nodes…] [--sessions N] [--messages N] [--flows N]
//!
//! Nodes are the release `wagate` binary beside this program, with the sandbox engine, pacing
//! off and the default cluster settings (2 s heartbeat, 10 s lease); the database is a fresh one
//! on the PostgreSQL server at 127.0.0.1:5432. Sessions are linked through every node in turn,
//! so each node runs its share.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{PASSWORD, login, percentile};
use wagate_testkit::{DatabaseKind, TestDatabase};

const SECRET: &str = "one-secret-for-every-node-of-this-benchmark";
const CLIENTS: usize = 64;

struct Node {
    id: String,
    base: String,
    process: Child,
}

impl Node {
    fn start(binary: &Path, dir: &Path, database_url: &str, id: &str) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(dir).unwrap();
        let config = dir.join("wagate.toml");
        std::fs::write(
            &config,
            "host = \"127.0.0.1\"\n\
             [otp]\nsends_per_phone = 1000000\nsends_per_ip = 1000000000\nsends_per_api_key = 1000000000\n\
             verifies_per_ip = 1000000000\n\
             [otp_pacing]\nmax_delay_ms = 0\n\
             [sandbox_timings]\ndelivery_delay_ms = 50\nread_delay_ms = 50\n",
        )
        .unwrap();
        let process = Command::new(binary)
            .arg("serve")
            .env("WAGATE_DATA_DIR", dir)
            .env("WAGATE_CONFIG", &config)
            .env("WAGATE_DATABASE_URL", database_url)
            .env("WAGATE_SECRET", SECRET)
            .env("WAGATE_ADMIN_PASSWORD", PASSWORD)
            .env("WAGATE_NODE_ID", id)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the release wagate binary beside this program");
        Node { id: id.into(), base: format!("http://127.0.0.1:{port}"), process }
    }

    async fn ready(&self, client: &reqwest::Client) {
        for _ in 0..600 {
            if client.get(format!("{}/ready", self.base)).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready", self.id);
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

struct Api {
    client: reqwest::Client,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, url: String, body: Value) -> (u16, Value) {
        let mut request = self.client.request(method, url).bearer_auth(&self.token);
        if !body.is_null() {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn post(&self, url: String, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, url, body).await
    }

    async fn get(&self, url: String) -> Value {
        self.call(reqwest::Method::GET, url, Value::Null).await.1
    }
}

/// CPU time (user and system) of process `pid`, in ms.
fn cpu_ms_of(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum::<u64>() * 10
}

/// CPU time of every PostgreSQL server process, in ms.
fn postgres_cpu_ms() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| cpu_ms_of(&pid))
        .sum()
}

struct Cpu {
    nodes: u64,
    database: u64,
}

fn cpu(nodes: &[Node]) -> Cpu {
    Cpu {
        nodes: nodes.iter().map(|node| cpu_ms_of(&node.pid().to_string())).sum(),
        database: postgres_cpu_ms(),
    }
}

fn share(before: &Cpu, after: &Cpu) -> String {
    let (nodes, database) = (after.nodes - before.nodes, after.database - before.database);
    format!(
        "CPU: nodes {:.1} s, PostgreSQL {:.1} s ({:.0}% of the two)",
        nodes as f64 / 1000.0,
        database as f64 / 1000.0,
        100.0 * database as f64 / (nodes + database).max(1) as f64
    )
}

/// Links `count` sandbox sessions, session `n` through node `n % nodes`, so each runs its share.
async fn link_sessions(api: &Api, nodes: &[Node], count: usize) {
    for n in 0..count {
        let base = &nodes[n % nodes.len()].base;
        let (status, body) = api
            .post(
                format!("{base}/api/v1/sessions"),
                json!({ "id": format!("c{n}"), "engine": "sandbox", "connect": true }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let scan = format!("{base}/api/v1/sandbox/sessions/c{n}/scan");
        while api.post(scan.clone(), json!({ "phone": format!("+62812000077{n:02}") })).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    loop {
        let sessions = api.get(format!("{}/api/v1/sessions", nodes[0].base)).await;
        let sessions = sessions["sessions"].as_array().cloned().unwrap_or_default();
        if sessions.len() == count && sessions.iter().all(|s| s["status"] == "connected") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `total` requests made by `CLIENTS` clients, request `n` through node `n % nodes`; returns
/// how many succeeded and how long they took.
async fn spread<F, Fut>(nodes: &[Node], total: usize, request: F) -> (usize, Duration)
where
    F: Fn(String, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let bases: Arc<Vec<String>> = Arc::new(nodes.iter().map(|node| node.base.clone()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let request = Arc::new(request);
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (bases, next, done, request) = (bases.clone(), next.clone(), done.clone(), request.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    if request(bases[n % bases.len()].clone(), n).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    (done.load(Ordering::Relaxed), started.elapsed())
}

/// Waits until no message is queued or being sent.
async fn drain(api: &Api, base: &str) {
    loop {
        let queued = api.get(format!("{base}/api/v1/messages?status=queued&limit=1")).await;
        let sending = api.get(format!("{base}/api/v1/messages?status=sending&limit=1")).await;
        if queued["messages"].as_array().is_some_and(Vec::is_empty)
            && sending["messages"].as_array().is_some_and(Vec::is_empty)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(binary: &Path, node_count: usize, sessions: usize, messages: usize, flows: usize) {
    let database = TestDatabase::create(DatabaseKind::Postgres).await.expect("PostgreSQL at 127.0.0.1:5432");
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<Node> = (0..node_count)
        .map(|n| {
            Node::start(binary, &root.path().join(format!("n{n}")), database.url(), &format!("node-{n}"))
        })
        .collect();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    for node in &nodes {
        node.ready(&client).await;
    }
    let token = login(&client, &nodes[0].base).await;
    let api = Arc::new(Api { client, token });
    link_sessions(&api, &nodes, sessions).await;
    println!("\n{node_count} node(s), {sessions} sandbox sessions, PostgreSQL");

    // Messages: accepted through every node, sent by the node that runs each session.
    let before = cpu(&nodes);
    let started = Instant::now();
    let sender = api.clone();
    let (accepted, took) = spread(&nodes, messages, move |base, n| {
        let api = sender.clone();
        async move {
            let to = format!("+628129{:06}1", n % 1_000_000);
            let body = json!({ "to": to, "text": format!("cluster bench {n}") });
            api.post(format!("{base}/api/v1/sessions/c{}/messages", n % sessions), body).await.0 == 202
        }
    })
    .await;
    drain(&api, &nodes[0].base).await;
    let all_sent = started.elapsed();
    println!(
        "messages: {accepted} accepted in {:.1} s ({:.0}/s); all sent after {:.1} s ({:.0}/s end to end); {}",
        took.as_secs_f64(),
        accepted as f64 / took.as_secs_f64(),
        all_sent.as_secs_f64(),
        accepted as f64 / all_sent.as_secs_f64(),
        share(&before, &cpu(&nodes))
    );

    // One-time passwords: send (the code in the answer) and verify, through every node.
    if flows > 0 {
        for node in &nodes {
            let (status, body) = api
                .call(
                    reqwest::Method::PATCH,
                    format!("{}/api/v1/otp/settings", node.base),
                    json!({ "return_code_in_response": true }),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await; // settings caches
        let before = cpu(&nodes);
        let flow_api = api.clone();
        let (approved, took) = spread(&nodes, flows, move |base, n| {
            let api = flow_api.clone();
            async move {
                let phone = format!("+6281{}{:07}1", 3 + n / 10_000_000, n % 10_000_000);
                let (status, sent) =
                    api.post(format!("{base}/api/v1/otp/send"), json!({ "phone": phone })).await;
                if status != 202 {
                    return false;
                }
                let body = json!({ "id": sent["id"], "code": sent["otp"] });
                let (status, verdict) = api.post(format!("{base}/api/v1/otp/verify"), body).await;
                status == 200 && verdict["valid"] == true
            }
        })
        .await;
        println!(
            "OTP: {approved} of {flows} flows approved in {:.1} s ({:.0} flows/s); {}",
            took.as_secs_f64(),
            approved as f64 / took.as_secs_f64(),
            share(&before, &cpu(&nodes))
        );
    }

    if node_count > 1 {
        failover(&api, nodes).await;
    }
}

/// `kill -9` of the first node; the time until each session it ran is connected on another.
async fn failover(api: &Api, mut nodes: Vec<Node>) {
    let victim = nodes.remove(0);
    let survivor = nodes[0].base.clone();
    let sessions = api.get(format!("{survivor}/api/v1/sessions")).await;
    let moving: Vec<String> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["node"] == victim.id.as_str())
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let mut victim = victim;
    victim.process.kill().unwrap();
    let killed = Instant::now();
    victim.process.wait().unwrap();
    let mut moved: Vec<(String, Duration)> = Vec::new();
    while moved.len() < moving.len() && killed.elapsed() < Duration::from_secs(120) {
        let sessions = api.get(format!("{survivor}/api/v1/sessions")).await;
        for session in sessions["sessions"].as_array().cloned().unwrap_or_default() {
            let id = session["id"].as_str().unwrap_or_default();
            let elsewhere = session["status"] == "connected"
                && !session["node"].is_null()
                && session["node"] != victim.id.as_str();
            if elsewhere && moving.iter().any(|m| m == id) && !moved.iter().any(|(m, _)| m == id) {
                moved.push((id.to_owned(), killed.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut times: Vec<f64> = moved.iter().map(|(_, t)| t.as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    println!(
        "failover: kill -9 of {} → {} of its {} sessions connected on the other nodes; p50 {:.2} s, max {:.2} s",
        victim.id,
        moved.len(),
        moving.len(),
        percentile(&times, 0.5),
        times.last().copied().unwrap_or_default()
    );
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sessions = flag(&args, "--sessions", 12);
    let messages = flag(&args, "--messages", 20_000);
    let flows = flag(&args, "--flows", 10_000);
    let mut node_counts: Vec<usize> = Vec::new();
    let mut skip = false;
    for arg in &args {
        if std::mem::take(&mut skip) {
            continue;
        }
        if arg.starts_with("--") {
            skip = true;
        } else if let Ok(count) = arg.parse() {
            node_counts.push(count);
        }
    }
    if node_counts.is_empty() {
        node_counts = vec![1, 3];
    }
    let binary = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("wagate");
    assert!(binary.exists(), "build the release binary first: cargo build --release -p wagate --bins");
    println!(
        "wagate cluster benchmark: {} cores, {CLIENTS} clients, {messages} messages, {flows} OTP flows",
        support::cores()
    );
    for count in node_counts {
        run(&binary, count, sessions, messages, flows).await;
    }
}
