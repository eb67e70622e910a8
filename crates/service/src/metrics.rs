//! What the gateway counts for Prometheus (`GET /metrics`). One [`Metrics`] per server, handed
//! to the services that count; figures that live in the database (sessions by status, the
//! outbox's depth, the webhook backlog) are read when scraped. Label values come from small
//! fixed sets (statuses, outcomes, route patterns), never phone numbers or ids.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use wagate_core::{MessageStatus, SessionStatus};
use wagate_store::{Store, StoreError};

use crate::time::now_ms;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern (`/api/v1/sessions/{id}`), or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    messages: Family<StatusLabel, Counter>,
    send_ack: Histogram,
    reach_out_restricted: Counter,
    otp: Family<OutcomeLabel, Counter>,
    webhook_deliveries: Family<ResultLabel, Counter>,
    http_requests: Family<RouteLabels, Counter>,
    http_duration: Family<RouteLabel, Histogram>,
    sessions: Family<StatusLabel, Gauge>,
    outbox_depth: Gauge,
    webhook_lag: Gauge<f64, AtomicU64>,
    resident_memory: Gauge,
    cpu_seconds: Gauge<f64, AtomicU64>,
}

/// 1 ms to about 33 s.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 16)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("wagate");
        let messages = Family::<StatusLabel, Counter>::default();
        registry.register("messages", "Message status changes, by the status reached", messages.clone());
        let send_ack = Histogram::new(latency_buckets());
        registry.register_with_unit(
            "send_ack",
            "From handing a message to WhatsApp to its acknowledgement",
            Unit::Seconds,
            send_ack.clone(),
        );
        let reach_out_restricted = Counter::default();
        registry.register(
            "reach_out_restricted",
            "Messages WhatsApp refused with a reach-out restriction (463)",
            reach_out_restricted.clone(),
        );
        let otp = Family::<OutcomeLabel, Counter>::default();
        registry.register("otp", "One-time password events, by outcome", otp.clone());
        let webhook_deliveries = Family::<ResultLabel, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by result",
            webhook_deliveries.clone(),
        );
        let http_requests = Family::<RouteLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests, by route and status", http_requests.clone());
        let http_duration =
            Family::<RouteLabel, Histogram>::new_with_constructor(|| Histogram::new(latency_buckets()));
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests, by route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let sessions = Family::<StatusLabel, Gauge>::default();
        registry.register("sessions", "Sessions, by status", sessions.clone());
        let outbox_depth = Gauge::default();
        registry.register("outbox_depth", "Messages queued or being sent", outbox_depth.clone());
        let webhook_lag = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "webhook_lag",
            "Age of the oldest webhook delivery not done yet",
            Unit::Seconds,
            webhook_lag.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register_with_unit(
            "process_resident_memory",
            "Resident memory of the process",
            Unit::Bytes,
            resident_memory.clone(),
        );
        let cpu_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "process_cpu",
            "CPU time the process used (user and system)",
            Unit::Seconds,
            cpu_seconds.clone(),
        );
        Metrics {
            registry,
            messages,
            send_ack,
            reach_out_restricted,
            otp,
            webhook_deliveries,
            http_requests,
            http_duration,
            sessions,
            outbox_depth,
            webhook_lag,
            resident_memory,
            cpu_seconds,
        }
    }
}

impl Metrics {
    pub fn message_status(&self, status: MessageStatus) {
        self.messages.get_or_create(&StatusLabel { status: status.to_string() }).inc();
    }

    pub fn send_acknowledged(&self, after: Duration) {
        self.send_ack.observe(after.as_secs_f64());
    }

    pub fn reach_out_restricted(&self) {
        self.reach_out_restricted.inc();
    }

    /// An `otp.*` event: `sent`, `delivered`, `read`, `approved`, `expired`, `failed`,
    /// `max_attempts`, …
    pub fn otp_event(&self, outcome: &str) {
        self.otp.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    }

    /// A webhook delivery attempt: `delivered`, `retry` or `dead`.
    pub fn webhook_attempt(&self, result: &str) {
        self.webhook_deliveries.get_or_create(&ResultLabel { result: result.to_owned() }).inc();
    }

    pub fn http_request(&self, route: &str, status: u16, took: Duration) {
        self.http_requests.get_or_create(&RouteLabels { route: route.to_owned(), status }).inc();
        self.http_duration.get_or_create(&RouteLabel { route: route.to_owned() }).observe(took.as_secs_f64());
    }

    /// Everything in the text exposition format, after reading what lives in the database.
    pub async fn render(&self, store: &Store) -> Result<String, StoreError> {
        for status in SessionStatus::ALL {
            self.sessions.get_or_create(&StatusLabel { status: status.to_string() }).set(0);
        }
        for (status, count) in store.session_counts().await? {
            self.sessions.get_or_create(&StatusLabel { status }).set(count);
        }
        self.outbox_depth.set(store.outbox_depth().await?);
        let lag = store.oldest_pending_webhook_delivery().await?.map_or(0, |since| (now_ms() - since).max(0));
        self.webhook_lag.set(lag as f64 / 1000.0);
        if let Some(process) = ProcessFigures::read() {
            self.resident_memory.set(process.resident_bytes);
            self.cpu_seconds.set(process.cpu_seconds);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(text)
    }
}

/// The process's memory and CPU, from `/proc` (Linux; elsewhere absent).
struct ProcessFigures {
    resident_bytes: i64,
    cpu_seconds: f64,
}

impl ProcessFigures {
    fn read() -> Option<Self> {
        // Clock ticks and page size: the values of every Linux platform wagate is built for.
        const TICKS_PER_SECOND: f64 = 100.0;
        const PAGE_SIZE: i64 = 4096;
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let resident_pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces, inside parentheses).
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let (user, system): (f64, f64) = (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
        Some(ProcessFigures {
            resident_bytes: resident_pages * PAGE_SIZE,
            cpu_seconds: (user + system) / TICKS_PER_SECOND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read_on_linux() {
        let figures = ProcessFigures::read().expect("/proc is there");
        assert!(figures.resident_bytes > 1_000_000, "{}", figures.resident_bytes);
        assert!(figures.cpu_seconds >= 0.0);
    }

    #[tokio::test]
    async fn rendered_in_the_text_format_with_database_figures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let metrics = Metrics::default();
        metrics.message_status(MessageStatus::Sent);
        metrics.message_status(MessageStatus::Sent);
        metrics.otp_event("approved");
        metrics.http_request("/api/v1/sessions/{id}", 200, Duration::from_millis(3));
        let text = metrics.render(&store).await.unwrap();
        for line in [
            "wagate_messages_total{status=\"sent\"} 2",
            "wagate_otp_total{outcome=\"approved\"} 1",
            "wagate_http_requests_total{route=\"/api/v1/sessions/{id}\",status=\"200\"} 1",
            "wagate_sessions{status=\"connected\"} 0",
            "wagate_outbox_depth 0",
            "wagate_webhook_lag_seconds 0.0",
            "# TYPE wagate_send_ack_seconds histogram",
            "# TYPE wagate_http_request_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("wagate_process_resident_memory_bytes "), "{text}");
    }
}
