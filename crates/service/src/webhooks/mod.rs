//! Signed webhooks (Standard Webhooks): events are written to the database with a delivery per
//! endpoint, then a worker posts them — in order per endpoint, retried with exponential backoff
//! and jitter for more than a day, with a log of every attempt and dead letters at the end.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use wagate_core::SessionId;
use wagate_store::{DeliveryRecord, Store, StoreError, WebhookEventRecord, WebhookRecord};

mod endpoints;

pub use endpoints::{DeliveryLog, EndpointChange, NewEndpoint, Replay};

use crate::audit::{Actor, AuditLog, Entry, Level};
use crate::cluster::Cluster;
use crate::metrics::Metrics;
use crate::seal::Sealer;
use crate::time::{Sequence, now_ms, rfc3339};
use crate::url_guard::UrlGuard;

/// Event types wagate emits.
pub const EVENT_TYPES: [&str; 11] = [
    "session.status",
    "session.qr",
    "message.received",
    "message.status",
    "otp.sent",
    "otp.delivered",
    "otp.read",
    "otp.approved",
    "otp.failed",
    "otp.expired",
    "otp.max_attempts",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Delays before the 2nd, 3rd… attempt; after the last one the delivery is dead.
    pub retry_schedule_ms: Vec<u64>,
    /// Per-request timeout.
    pub timeout_ms: u64,
    /// Allow URLs that resolve to loopback, private or link-local addresses.
    pub allow_private_urls: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            // 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: the last attempt ~27.5 h after the first.
            retry_schedule_ms: vec![5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
            timeout_ms: 10_000,
            allow_private_urls: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("unknown event type `{0}`")]
    UnknownEvent(String),
    #[error("events must not be empty")]
    EmptyEvents,
    #[error("webhook not found")]
    NotFound,
    #[error("no event {0} for this endpoint")]
    EventNotFound(String),
    #[error("status must be pending, delivered or dead")]
    UnknownDeliveryStatus,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Webhooks {
    store: Store,
    config: WebhookConfig,
    /// Signing secrets are stored encrypted; this opens them to sign.
    sealer: Arc<Sealer>,
    client: reqwest::Client,
    url_guard: UrlGuard,
    /// Every endpoint as last read, with the generation it was read under.
    endpoints: RwLock<Option<Arc<Vec<WebhookRecord>>>>,
    /// Raised by every invalidation, so that a read which overlapped one is not kept.
    endpoints_generation: std::sync::atomic::AtomicU64,
    wake: Notify,
    seq: Sequence,
    metrics: Arc<Metrics>,
}

impl Webhooks {
    pub fn new(store: Store, config: WebhookConfig, sealer: Arc<Sealer>, metrics: Arc<Metrics>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client builds");
        Webhooks {
            url_guard: UrlGuard::new(config.allow_private_urls),
            store,
            config,
            sealer,
            client,
            endpoints: RwLock::new(None),
            endpoints_generation: std::sync::atomic::AtomicU64::new(0),
            wake: Notify::new(),
            seq: Sequence::default(),
            metrics,
        }
    }

    /// `whsec_` + 24 random bytes in base64, as the Standard Webhooks spec shows secrets.
    pub fn generate_secret() -> String {
        format!("whsec_{}", B64.encode(rand::random::<[u8; 24]>()))
    }

    /// A new signing secret as it is stored (encrypted with the server secret).
    pub fn seal_secret(&self, secret: &str) -> String {
        self.sealer.seal(secret)
    }

    /// The stored secret in clear (secrets stored before they were encrypted are used as they are).
    fn open_secret(&self, stored: &str) -> String {
        self.sealer.open(stored).unwrap_or_else(|| stored.to_owned())
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the secret's bytes.
    pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
        let key =
            B64.decode(secret.trim_start_matches("whsec_")).unwrap_or_else(|_| secret.as_bytes().to_vec());
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }

    pub fn check_events(events: &[String]) -> Result<(), WebhookError> {
        for event in events {
            let known = event == "*"
                || EVENT_TYPES.contains(&event.as_str())
                || event
                    .strip_suffix(".*")
                    .is_some_and(|p| EVENT_TYPES.iter().any(|t| t.starts_with(&format!("{p}."))));
            if !known {
                return Err(WebhookError::UnknownEvent(event.clone()));
            }
        }
        Ok(())
    }

    /// An http(s) URL whose host does not resolve to a private address (unless allowed).
    pub async fn check_url(&self, raw: &str) -> Result<reqwest::Url, WebhookError> {
        self.url_guard.check(raw).await.map_err(|refused| WebhookError::InvalidUrl(refused.0))
    }

    /// Makes a session's `webhook_url` an endpoint for its messages and status (replacing the
    /// previous one), or removes it with `None`.
    pub async fn set_session_url(
        &self,
        owner_id: &str,
        session: &SessionId,
        url: Option<&str>,
    ) -> Result<(), WebhookError> {
        if let Some(url) = url {
            self.check_url(url).await?;
        }
        self.store.delete_session_webhooks(session, true).await?;
        if let Some(url) = url {
            let events: Vec<String> =
                ["message.received", "message.status", "session.status"].map(String::from).to_vec();
            let secret = self.seal_secret(&Self::generate_secret());
            self.store
                .insert_webhook(wagate_store::NewWebhook {
                    owner_id,
                    session_id: Some(session),
                    url,
                    events: &events,
                    secret: &secret,
                    from_session_url: true,
                })
                .await?;
        }
        self.invalidate();
        Ok(())
    }

    /// Forgets the cached endpoint list after a change.
    pub fn invalidate(&self) {
        let mut endpoints = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        self.endpoints_generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        *endpoints = None;
    }

    async fn endpoints(&self) -> Result<Arc<Vec<WebhookRecord>>, StoreError> {
        if let Some(cached) = self.endpoints.read().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(cached);
        }
        let generation = self.endpoints_generation.load(std::sync::atomic::Ordering::Acquire);
        let all = Arc::new(self.store.webhooks(None).await?);
        let mut endpoints = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: an invalidation during the read leaves nothing stale behind.
        if self.endpoints_generation.load(std::sync::atomic::Ordering::Acquire) == generation {
            *endpoints = Some(all.clone());
        }
        Ok(all)
    }

    /// Queues `event_type` for every endpoint of `owner` that wants it. Nothing is written when
    /// no endpoint does.
    pub async fn emit(&self, owner_id: &str, session: Option<&SessionId>, event_type: &str, data: Value) {
        if let Err(err) = self.try_emit(owner_id, session, event_type, data).await {
            tracing::error!(event_type, error = %err, "cannot queue webhook event");
        }
    }

    async fn try_emit(
        &self,
        owner_id: &str,
        session: Option<&SessionId>,
        event_type: &str,
        data: Value,
    ) -> Result<(), StoreError> {
        let endpoints = self.endpoints().await?;
        let targets: Vec<&str> = endpoints
            .iter()
            .filter(|e| e.owner_id == owner_id && e.wants(event_type, session.map(SessionId::as_str)))
            .map(|e| e.id.as_str())
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut payload = json!({ "type": event_type, "timestamp": rfc3339(now), "data": data });
        if event_type == "message.received" {
            // The shape existing receivers of the multi-session gateway read.
            payload["session_id"] = payload["data"]["session_id"].clone();
            payload["message"] = json!({
                "id": payload["data"]["id"],
                "from": payload["data"]["from_jid"],
                "to": payload["data"]["to_jid"],
                "message": payload["data"]["text"],
                "timestamp": payload["data"]["timestamp_unix"],
            });
        }
        let event = WebhookEventRecord {
            id: format!("evt_{}", wagate_core::new_id().replace('-', "")),
            owner_id: owner_id.to_owned(),
            session_id: session.map(ToString::to_string),
            event_type: event_type.to_owned(),
            payload: payload.to_string(),
            created_at: now,
        };
        self.store.insert_webhook_event(&event, &targets, self.next_seq()).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// The next position in the per-endpoint delivery order.
    pub fn next_seq(&self) -> i64 {
        self.seq.next()
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delivers until shutdown: the head of every endpoint's queue, endpoints in parallel; on
    /// the node that runs the cluster's jobs, so that no event goes out twice at once.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        let mut in_flight: HashSet<String> = HashSet::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Events queued by other nodes wake nobody here: look for them more often then.
            let mut next_due = now_ms() + if cluster.has_company() { 250 } else { 5_000 };
            let heads = if cluster.runs_jobs() {
                self.store.webhook_delivery_heads().await
            } else {
                next_due = now_ms() + 1_000; // look again whether this node took the jobs over
                Ok(Vec::new())
            };
            match heads {
                Ok(heads) => {
                    let now = now_ms();
                    for head in heads {
                        if in_flight.contains(&head.webhook_id) {
                            continue;
                        }
                        if head.next_attempt_at > now {
                            next_due = next_due.min(head.next_attempt_at);
                            continue;
                        }
                        in_flight.insert(head.webhook_id.clone());
                        let this = self.clone();
                        tasks.spawn(async move {
                            let endpoint = head.webhook_id.clone();
                            this.deliver(head).await;
                            endpoint
                        });
                    }
                }
                Err(err) => tracing::error!(error = %err, "cannot read webhook deliveries"),
            }
            let wait = Duration::from_millis((next_due - now_ms()).clamp(1, 5_000) as u64);
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(endpoint) = done {
                        in_flight.remove(&endpoint);
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
        tasks.shutdown().await;
    }

    async fn deliver(&self, delivery: DeliveryRecord) {
        let endpoint = match self.store.webhook(&delivery.webhook_id).await {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(error = %err, "cannot read webhook endpoint");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        if !endpoint.enabled {
            // Paused: keep the queue, look again later.
            let _ = self
                .store
                .record_webhook_attempt(
                    &delivery,
                    None,
                    Some("endpoint disabled"),
                    0,
                    "pending",
                    now_ms() + 60_000,
                )
                .await;
            return;
        }
        let started = Instant::now();
        let result = self.post(&endpoint, &delivery).await;
        let elapsed = started.elapsed().as_millis() as i64;
        let (status_code, error, retryable) = match result {
            Ok(code) if (200..300).contains(&code) => (Some(code), None, false),
            Ok(code) => {
                let retryable = code >= 500 || code == 408 || code == 429;
                (Some(code), Some(format!("HTTP {code}")), retryable)
            }
            Err((message, retryable)) => (None, Some(message), retryable),
        };
        let attempt = delivery.attempts as usize; // attempts made before this one
        let (outcome, next) = match (&error, retryable) {
            (None, _) => ("delivered", now_ms()),
            (Some(_), true) if attempt < self.config.retry_schedule_ms.len() => {
                ("pending", now_ms() + jittered(self.config.retry_schedule_ms[attempt]) as i64)
            }
            _ => ("dead", now_ms()),
        };
        self.metrics.webhook_attempt(if outcome == "pending" { "retry" } else { outcome });
        if outcome == "dead" {
            tracing::warn!(webhook = %endpoint.id, delivery = %delivery.id, error = ?error, "webhook delivery gave up (dead letter)");
            let entry = Entry::new("webhook.dead", Level::Error, Actor::system())
                .owner(Some(&endpoint.owner_id))
                .detail(serde_json::json!({
                    "webhook_id": endpoint.id,
                    "delivery_id": delivery.id,
                    "url": endpoint.url,
                    "error": error,
                }));
            AuditLog::new(self.store.clone()).record(entry).await;
        }
        if let Err(err) = self
            .store
            .record_webhook_attempt(&delivery, status_code, error.as_deref(), elapsed, outcome, next)
            .await
        {
            tracing::error!(error = %err, "cannot record webhook attempt");
        }
    }

    /// Posts the payload; `Err((message, retryable))` when no HTTP answer came.
    async fn post(&self, endpoint: &WebhookRecord, delivery: &DeliveryRecord) -> Result<u16, (String, bool)> {
        let url = self.check_url(&endpoint.url).await.map_err(|e| (e.to_string(), false))?;
        let timestamp = now_ms() / 1000;
        let signature =
            Self::sign(&self.open_secret(&endpoint.secret), &delivery.id, timestamp, &delivery.payload);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await
            .map_err(|e| (describe(&e), true))?;
        let code = response.status().as_u16();
        if (300..400).contains(&code) {
            return Err((format!("HTTP {code}: redirects are not followed"), false));
        }
        Ok(code)
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        format!("request failed: {err}")
    }
}

/// ±10 % so that many endpoints failing together do not retry in lockstep.
fn jittered(ms: u64) -> u64 {
    let spread = ms / 10;
    if spread == 0 { ms } else { ms - spread + rand::random_range(0..=2 * spread) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            Webhooks::sign(secret, id, 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn event_filters() {
        assert!(
            Webhooks::check_events(&[
                "message.*".into(),
                "session.status".into(),
                "*".into(),
                "otp.approved".into(),
                "otp.*".into()
            ])
            .is_ok()
        );
        assert!(Webhooks::check_events(&["message.deleted".into()]).is_err());
        assert!(Webhooks::check_events(&["otp.verified".into()]).is_err());
    }
}
