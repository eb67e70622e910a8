//! What the benchmark programs share: a server on loopback with linked sandbox sessions, and
//! the figures they print.
#![allow(dead_code)]

pub mod heap;
pub mod http1;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wagate_server::{App, Config};

/// The allocator of the `wagate` binary, so that the figures are its figures; it counts the
/// live bytes only when `BENCH_SAMPLE_HEAP` is set.
#[global_allocator]
static ALLOCATOR: heap::Counting = heap::Counting;

pub const PASSWORD: &str = "bench-password-123";

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub token: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), wagate_server::app::StartError>>,
}

impl Server {
    /// A fresh data directory, sandbox receipts after 50 ms, `sessions` linked sandbox
    /// sessions `b0`, `b1`…; `adjust` changes the rest of the configuration.
    pub async fn start(dir: &std::path::Path, sessions: usize, adjust: impl FnOnce(&mut Config)) -> Server {
        // As the binary does; `BENCH_HUGE_PAGES` leaves the system's setting, to compare.
        if std::env::var_os("BENCH_HUGE_PAGES").is_none() {
            wagate_server::memory::use_small_pages();
        }
        // `BENCH_LOG=sqlx::query=debug` prints every statement, to count them per request.
        if let Ok(filter) = std::env::var("BENCH_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
        }
        let mut config = loopback_config(dir);
        config.sandbox_timings.delivery_delay_ms = 50;
        config.sandbox_timings.read_delay_ms = 50;
        adjust(&mut config);
        let app = App::build(config).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(async move {
            let _ = stopped.await;
        }));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let client = reqwest::Client::builder().pool_max_idle_per_host(512).build().unwrap();
        let token = login(&client, &base).await;
        let server = Server { base, client, token, stop, task };
        for n in 0..sessions {
            server
                .post(
                    "/api/v1/sessions",
                    json!({ "id": format!("b{n}"), "engine": "sandbox", "connect": true }),
                )
                .await;
            let scan = format!("/api/v1/sandbox/sessions/b{n}/scan");
            while server.post(&scan, json!({ "phone": format!("+62812000099{n:02}") })).await.0 != 200 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        server
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let response =
            self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        response.json().await.unwrap_or(Value::Null)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A server on a free loopback port, keeping its data in `dir`, with `admin`'s password known.
pub fn loopback_config(dir: &std::path::Path) -> Config {
    Config {
        host: [127, 0, 0, 1].into(),
        port: 0,
        data_dir: dir.to_path_buf(),
        admin_password: Some(PASSWORD.into()),
        ..Config::default()
    }
}

/// Signs in as `admin` and returns the token.
pub async fn login(client: &reqwest::Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}

pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Resident memory of this process (server and load generator), KiB.
pub fn rss_kib() -> u64 {
    rss_kib_of("self")
}

/// Resident memory of process `pid` (`"self"` for this one), KiB.
pub fn rss_kib_of(pid: &str) -> u64 {
    kib_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default(), "VmRSS:")
}

/// The figure of the line `name` (e.g. `VmRSS:`, `Rss:`) of a `/proc` file listing sizes in
/// KiB, such as `status` or `smaps_rollup`; 0 when absent.
pub fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time this process (server and load generator) has used, user and system, in ms.
pub fn cpu_ms() -> u64 {
    // Fields 14 and 15 of /proc/self/stat, in USER_HZ ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 =
        after_name.split_whitespace().skip(11).take(2).filter_map(|t| t.parse::<u64>().ok()).sum();
    ticks * 10
}

/// Keeps `peak` at the highest resident memory seen, sampling every 50 ms.
pub fn track_peak_rss(peak: std::sync::Arc<std::sync::atomic::AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Size of the SQLite database in `dir` (the file and its write-ahead log), bytes.
pub fn database_bytes(dir: &std::path::Path) -> u64 {
    ["wagate.db", "wagate.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

/// The figures of a soak run, one block of records at a time, and whether it stayed flat.
pub struct Soak {
    unit: &'static str,
    block: usize,
    /// Per block: records per second, resident memory (KiB) and database size (bytes) after it.
    rows: Vec<(f64, u64, u64)>,
}

impl Soak {
    pub fn new(unit: &'static str, block: usize) -> Soak {
        Soak { unit, block, rows: Vec::new() }
    }

    /// Records and prints one block.
    pub fn block(&mut self, done: usize, took: std::time::Duration, dir: &std::path::Path, extra: &str) {
        let per_second = done as f64 / took.as_secs_f64();
        let (rss, bytes) = (rss_kib(), database_bytes(dir));
        let grown = bytes.saturating_sub(self.rows.last().map_or(0, |r| r.2));
        self.rows.push((per_second, rss, bytes));
        let wal = std::fs::metadata(dir.join("wagate.db-wal")).map_or(0, |m| m.len());
        println!(
            "block {:>2} ({} {} in all): {per_second:.0} {}/s; RSS {} MiB; database {} MiB (+{:.1} MiB; write-ahead log {} MiB){extra}",
            self.rows.len(),
            self.rows.len() * self.block,
            self.unit,
            self.unit,
            rss / 1024,
            bytes >> 20,
            grown as f64 / 1_048_576.0,
            wal >> 20,
        );
    }

    /// The last block's rate against the first's, and the spread of resident memory.
    pub fn summary(&self) {
        let (Some(first), Some(last)) = (self.rows.first(), self.rows.last()) else { return };
        let rss_min = self.rows.iter().map(|r| r.1).min().unwrap_or(0);
        let rss_max = self.rows.iter().map(|r| r.1).max().unwrap_or(0);
        println!(
            "soak: last block {:.0}% of the first; RSS {}–{} MiB after each block ({:+.1}% from the lowest to the highest); \
             database {:.1} MiB per 100,000 {}",
            100.0 * last.0 / first.0,
            rss_min / 1024,
            rss_max / 1024,
            100.0 * (rss_max as f64 - rss_min as f64) / rss_min.max(1) as f64,
            last.2 as f64 / 1_048_576.0 / (self.rows.len() * self.block) as f64 * 100_000.0,
            self.unit,
        );
    }
}
