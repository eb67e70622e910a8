//! Message throughput and latency through the real HTTP API (sandbox engine, pacing off,
//! embedded SQLite). Prints figures; see BENCHMARKS.md.
//!
//! cargo run --release -p wagate --example bench_messages -- [accept_count] [rate] [seconds] [soak_count]
//!
//! The soak sends `soak_count` messages in blocks of 100,000, each accepted and sent before the
//! next, and prints each block's rate, the resident memory and the database's size.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Server, Soak, cpu_ms, percentile, rss_kib};

struct Bench {
    server: Server,
    sessions: usize,
}

impl Bench {
    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.server.post(path, body).await
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        self.server.get(path).await
    }

    async fn send(&self, n: usize) -> bool {
        let session = n % self.sessions;
        // Ends in 1: never one of the sandbox's magic failing numbers.
        let body =
            json!({ "to": format!("+628129{:06}1", n % 1_000_000), "text": format!("bench message {n}") });
        self.post(&format!("/api/v1/sessions/b{session}/messages"), body).await.0 == 202
    }

    /// Waits until nothing is queued or being sent.
    async fn drain(&self) {
        loop {
            let queued = self.get("/api/v1/messages?status=queued&limit=1").await;
            let sending = self.get("/api/v1/messages?status=sending&limit=1").await;
            if queued["messages"].as_array().is_some_and(Vec::is_empty)
                && sending["messages"].as_array().is_some_and(Vec::is_empty)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// accept → sent latencies (ms) of the newest `count` messages.
    async fn latencies(&self, count: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        while out.len() < count {
            let path = match &cursor {
                Some(c) => format!("/api/v1/messages?limit=200&cursor={c}"),
                None => "/api/v1/messages?limit=200".to_owned(),
            };
            let page = self.get(&path).await;
            for m in page["messages"].as_array().unwrap() {
                let at = |field: &str| {
                    chrono::DateTime::parse_from_rfc3339(m[field].as_str().unwrap())
                        .unwrap()
                        .timestamp_millis()
                };
                if m["sent_at"].is_string() {
                    out.push(at("sent_at") - at("created_at"));
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        out.truncate(count);
        out.sort_unstable();
        out
    }
}

async fn accept_burst(
    bench: &Arc<Bench>,
    total: usize,
    concurrency: usize,
    offset: usize,
) -> (usize, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (bench, next, ok) = (bench.clone(), next.clone(), ok.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        break;
                    }
                    if bench.send(offset + n).await {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    (ok.load(Ordering::SeqCst), started.elapsed())
}

#[tokio::main]
async fn main() {
    support::heap::sample_every_second();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let accept_count = args.first().copied().unwrap_or(20_000);
    let rate = args.get(1).copied().unwrap_or(1_000);
    let seconds = args.get(2).copied().unwrap_or(10);
    let soak_count = args.get(3).copied().unwrap_or(100_000);

    let dir = tempfile::tempdir().unwrap();
    // Sessions sending in parallel (default 4; `BENCH_SESSIONS`).
    let sessions: usize = std::env::var("BENCH_SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let server = Server::start(dir.path(), sessions, |config| {
        if let Ok(ms) = std::env::var("BENCH_ACK_TIMEOUT_MS") {
            config.delivery.ack_timeout_ms = ms.parse().unwrap();
        }
    })
    .await;
    let bench = Arc::new(Bench { server, sessions });
    println!(
        "wagate message benchmark: {sessions} sandbox sessions, pacing off, SQLite, {} cores",
        support::cores()
    );

    // 1. Acceptance throughput.
    let (ok, took) = accept_burst(&bench, accept_count, 64, 0).await;
    println!(
        "accept: {ok} of {accept_count} messages in {:.2} s = {:.0} accepted/s (64 concurrent clients)",
        took.as_secs_f64(),
        ok as f64 / took.as_secs_f64()
    );
    bench.drain().await;

    // 2. Latency from acceptance to `sent` at a steady offered rate.
    let total = rate * seconds;
    let started = Instant::now();
    let sent = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let (bench, sent) = (bench.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            if bench.send(1_000_000 + n).await {
                sent.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    bench.drain().await;
    let latencies = bench.latencies(total).await;
    println!(
        "latency at {rate} msg/s offered for {seconds} s ({} accepted): accept→sent p50 {} ms, p99 {} ms, max {} ms",
        sent.load(Ordering::SeqCst),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(0)
    );

    // 3. A long run, in blocks of 100,000 messages (or fewer for a short run), each accepted
    //    and sent before the next: its rate, the memory and the database after it.
    let block = soak_count.clamp(1, 100_000);
    let mut soak = Soak::new("messages", block);
    let mut peak = rss_kib();
    for round in 0..soak_count.div_ceil(block) {
        let (started, cpu_before) = (Instant::now(), cpu_ms());
        let (ok, accepting) = accept_burst(&bench, block, 64, 2_000_000 + round * block).await;
        let cpu_accepting = cpu_ms() - cpu_before;
        peak = peak.max(rss_kib());
        bench.drain().await;
        let (took, cpu) = (started.elapsed(), cpu_ms() - cpu_before);
        let extra = format!(
            "; accepted in {:.1} s, all sent {:.1} s later; CPU {:.3} ms per message ({:.3} while accepting) \
             (peak RSS so far {} MiB)",
            accepting.as_secs_f64(),
            (took - accepting).as_secs_f64(),
            cpu as f64 / ok.max(1) as f64,
            cpu_accepting as f64 / ok.max(1) as f64,
            peak / 1024
        );
        soak.block(ok, took, dir.path(), &extra);
    }
    soak.summary();

    if let Ok(bench) = Arc::try_unwrap(bench) {
        bench.server.stop().await;
    }
}
