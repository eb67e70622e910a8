//! One-time-password flows through the real HTTP API: send → read the code from the sandbox
//! inbox → verify. Sandbox engine, 4 sessions, embedded SQLite, limits raised. Prints flows/s,
//! p50/p99 of send, of the code's way to the inbox and of verify, CPU time per flow and peak
//! RSS; see BENCHMARKS.md.
//!
//! cargo run --release -p wagate --example bench_otp -- [flows] [concurrency] [rate] [seconds] [soak_flows]
//!
//! With `soak_flows`, a last part runs that many flows (each with its own phone number) by
//! `concurrency` clients in blocks of 100,000 and prints each block's rate, the resident memory
//! and the database's size; `0` skips a part. `LIMIT_WINDOW_SECS` replaces the OTP limits'
//! window (600 s), the time a phone number stays in the per-number limit's memory.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use support::http1::{Connection, Connections};
use support::{Server, Soak, cpu_ms, percentile, rss_kib, track_peak_rss};
use tokio::sync::Mutex;

const SESSIONS: usize = 4;

struct Bench {
    server: Server,
    connections: Connections,
    send_ms: Mutex<Vec<f64>>,
    /// From the send's answer to the code in the inbox: queue, dispatch and delivery.
    arrival_ms: Mutex<Vec<f64>>,
    verify_ms: Mutex<Vec<f64>>,
    peak_rss: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Sent {
    id: String,
}

#[derive(Deserialize)]
struct Inbox {
    messages: Vec<InboxMessage>,
}

#[derive(Deserialize)]
struct InboxMessage {
    content: InboxContent,
}

#[derive(Deserialize)]
struct InboxContent {
    body: String,
}

#[derive(Deserialize)]
struct Verdict {
    valid: bool,
}

impl Bench {
    /// One complete flow; true when the code was approved.
    async fn flow(&self, n: usize) -> bool {
        let mut connection = self.connections.take().await;
        let approved = self.flow_on(&mut connection, n).await;
        self.connections.give_back(connection);
        approved
    }

    async fn flow_on(&self, connection: &mut Connection, n: usize) -> bool {
        // Ends in 1: never one of the sandbox's magic numbers. Distinct for every n below
        // 60,000,000 (+62813…, then +62814… from 10,000,000 on, …).
        let phone = format!("+6281{}{:07}1", 3 + n / 10_000_000, n % 10_000_000);
        let started = Instant::now();
        let sent =
            connection.post_json("/api/v1/otp/send", &format!(r#"{{"phone":"{phone}"}}"#)).await.unwrap();
        self.send_ms.lock().await.push(started.elapsed().as_secs_f64() * 1000.0);
        if sent.status != 202 {
            eprintln!("send answered {}: {}", sent.status, String::from_utf8_lossy(&sent.body));
            return false;
        }
        let Sent { id } = serde_json::from_slice(&sent.body).unwrap();
        let answered = Instant::now();
        // The inbox answers as soon as the message arrives (long poll).
        let inbox_path = format!("/api/v1/sandbox/inbox/{phone}?wait_ms=10000");
        let code = loop {
            let inbox = connection.get(&inbox_path).await.unwrap();
            let inbox: Inbox = serde_json::from_slice(&inbox.body).unwrap();
            if let Some(message) = inbox.messages.first() {
                break message.content.body.split('*').nth(1).unwrap().to_owned();
            }
        };
        self.arrival_ms.lock().await.push(answered.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let verdict = connection
            .post_json("/api/v1/otp/verify", &format!(r#"{{"id":"{id}","code":"{code}"}}"#))
            .await
            .unwrap();
        self.verify_ms.lock().await.push(started.elapsed().as_secs_f64() * 1000.0);
        serde_json::from_slice::<Verdict>(&verdict.body).is_ok_and(|v| v.valid)
    }

    /// `cpu_ms`: CPU time of the whole process (server and load generator) during the run.
    async fn report(&self, label: &str, approved: usize, took: Duration, cpu_ms: u64) {
        let mut send = std::mem::take(&mut *self.send_ms.lock().await);
        let mut arrival = std::mem::take(&mut *self.arrival_ms.lock().await);
        let mut verify = std::mem::take(&mut *self.verify_ms.lock().await);
        arrival.sort_by(f64::total_cmp);
        send.sort_by(f64::total_cmp);
        verify.sort_by(f64::total_cmp);
        println!(
            "{label}: {approved} flows approved in {:.2} s = {:.0} flows/s; send p50 {:.1} ms p99 {:.1} ms; \
             code in inbox p50 {:.1} ms p99 {:.1} ms; verify p50 {:.1} ms p99 {:.1} ms; CPU {:.2} ms per flow; \
             peak RSS {} MiB",
            took.as_secs_f64(),
            approved as f64 / took.as_secs_f64(),
            percentile(&send, 0.50),
            percentile(&send, 0.99),
            percentile(&arrival, 0.50),
            percentile(&arrival, 0.99),
            percentile(&verify, 0.50),
            percentile(&verify, 0.99),
            cpu_ms as f64 / approved.max(1) as f64,
            self.peak_rss.load(Ordering::Relaxed) / 1024,
        );
    }
}

/// Runs flows `first..first + count` by `concurrency` clients; how many were approved.
async fn run_flows(bench: &Arc<Bench>, concurrency: usize, first: usize, count: usize) -> usize {
    let next = Arc::new(AtomicUsize::new(first));
    let approved = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (bench, next, approved) = (bench.clone(), next.clone(), approved.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= first + count {
                        break;
                    }
                    if bench.flow(n).await {
                        approved.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    approved.load(Ordering::SeqCst)
}

#[tokio::main]
async fn main() {
    support::heap::sample_every_second();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let flows = args.first().copied().unwrap_or(20_000);
    let concurrency = args.get(1).copied().unwrap_or(192);
    let rate = args.get(2).copied().unwrap_or(500);
    let seconds = args.get(3).copied().unwrap_or(10);
    let soak = args.get(4).copied().unwrap_or(0);

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), SESSIONS, |config| {
        config.otp_pacing.max_delay_ms = 0;
        config.otp.sends_per_ip = u32::MAX;
        config.otp.sends_per_api_key = u32::MAX;
        config.otp.verifies_per_ip = u32::MAX;
        if let Some(secs) = std::env::var("LIMIT_WINDOW_SECS").ok().and_then(|v| v.parse().ok()) {
            config.otp.limit_window_secs = secs;
        }
    })
    .await;
    let bench = Arc::new(Bench {
        connections: Connections::new(&server.base, &server.token),
        server,
        send_ms: Mutex::default(),
        arrival_ms: Mutex::default(),
        verify_ms: Mutex::default(),
        peak_rss: Arc::new(AtomicU64::new(rss_kib())),
    });
    let sampler = track_peak_rss(bench.peak_rss.clone());
    println!(
        "wagate OTP benchmark: {SESSIONS} sandbox sessions, SQLite, {} cores, load generator in the same process",
        support::cores()
    );

    // 1. Throughput: as many complete flows as `concurrency` clients can run.
    if flows > 0 {
        let (started, cpu_before) = (Instant::now(), cpu_ms());
        let approved = run_flows(&bench, concurrency, 0, flows).await;
        let label = format!("throughput ({concurrency} concurrent flows)");
        bench.report(&label, approved, started.elapsed(), cpu_ms() - cpu_before).await;
    }

    // 2. Latency at a steady offered rate.
    let total = rate * seconds;
    if total > 0 {
        let approved = Arc::new(AtomicUsize::new(0));
        let (started, cpu_before) = (Instant::now(), cpu_ms());
        let mut tasks = Vec::with_capacity(total);
        for n in 0..total {
            let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let (bench, approved) = (bench.clone(), approved.clone());
            tasks.push(tokio::spawn(async move {
                if bench.flow(5_000_000 + n).await {
                    approved.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        bench
            .report(
                &format!("{rate} flows/s offered for {seconds} s"),
                approved.load(Ordering::SeqCst),
                started.elapsed(),
                cpu_ms() - cpu_before,
            )
            .await;
    }

    // 3. A long run with a new phone number for every flow, in blocks of 100,000.
    let block = soak.clamp(1, 100_000);
    let mut figures = Soak::new("flows", block);
    for round in 0..soak.div_ceil(block) {
        let (started, cpu_before) = (Instant::now(), cpu_ms());
        let approved = run_flows(&bench, concurrency, 10_000_000 + round * block, block).await;
        let took = started.elapsed();
        let cpu = cpu_ms() - cpu_before;
        let send_p99 = {
            let mut send = std::mem::take(&mut *bench.send_ms.lock().await);
            send.sort_by(f64::total_cmp);
            percentile(&send, 0.99)
        };
        bench.arrival_ms.lock().await.clear();
        bench.verify_ms.lock().await.clear();
        let extra = format!(
            "; {approved} approved, send p99 {send_p99:.1} ms, CPU {:.2} ms per flow",
            cpu as f64 / approved.max(1) as f64
        );
        figures.block(approved, took, dir.path(), &extra);
    }
    figures.summary();
    sampler.abort();

    if let Ok(bench) = Arc::try_unwrap(bench) {
        bench.server.stop().await;
    }
}
