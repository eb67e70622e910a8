//! The outbox: the one owner of a message's status (queued, sending, sent, delivered, read,
//! failed, canceled).
//!
//! Accepting a message writes it (status `queued`) before anything else; the session's
//! dispatcher (see `sessions::dispatcher`) claims it, hands it to the engine and tells the
//! outbox what happened. Receipts (see [`receipts`]) move a message forward, never backwards.
//! Every change the outbox makes on the way is announced through one [`StatusListener`].

mod announce;
mod config;
mod receipts;
mod writer;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wagate_core::{MessageContent, MessageStatus, SessionId};
use wagate_engine::ReceiptKind;
use wagate_store::{Claim, Fence, Inserted, MessageRecord, NewMessage, Store, StoreError};

pub use announce::{Sender, StatusChange, StatusListener};
pub use config::DeliveryConfig;

use self::receipts::Receipts;
use self::writer::{MessageWriter, message_writer};
use crate::audit::{Actor, AuditLog, Entry, Level};
use crate::group_commit::WriteError;
use crate::metrics::Metrics;
use crate::time::{Sequence, now_ms};

/// Pauses between tries of a write the database refused for an outage: doubling up to the maximum.
const OUTAGE_FIRST_PAUSE: Duration = Duration::from_millis(100);
const OUTAGE_MAX_PAUSE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the Idempotency-Key was used before with a different request")]
    IdempotencyMismatch,
    #[error("message not found")]
    NotFound,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("only a {expected} message can be {action} (this one is {actual})")]
    WrongStatus { expected: &'static str, action: &'static str, actual: MessageStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WriteError> for OutboxError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Stopped => OutboxError::ShuttingDown,
            WriteError::Store(err) => OutboxError::Store(err),
        }
    }
}

pub struct Accepted {
    pub message: MessageRecord,
    /// False when an earlier request with the same Idempotency-Key created it.
    pub created: bool,
}

pub struct NewOutgoing<'a> {
    pub owner_id: &'a str,
    pub session_id: &'a SessionId,
    pub pool: Option<&'a str>,
    pub recipient: &'a str,
    pub content: &'a MessageContent,
    pub priority: i64,
    pub expires_at: Option<i64>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

/// Why a claimed message goes back to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeue {
    /// The session reached its hourly or daily cap.
    SendingCap,
    /// The session has no connection right now.
    NotConnected,
    /// The connection went away before the network acknowledged the message.
    ConnectionLost,
    /// A transient failure; tried again after a backoff.
    Retry(String),
}

impl Requeue {
    fn reason(&self) -> &str {
        match self {
            Requeue::SendingCap => "waiting for the session's sending cap",
            Requeue::NotConnected => "session not connected",
            Requeue::ConnectionLost => "connection lost before the acknowledgement",
            Requeue::Retry(detail) => detail,
        }
    }
}

/// What became of a message after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// Back in the queue, after a backoff.
    Later,
    /// It had its attempts: now `failed`.
    GaveUp,
}

pub struct Outbox {
    store: Store,
    config: DeliveryConfig,
    seq: Sequence,
    writer: MessageWriter,
    receipts: Receipts,
    listener: OnceLock<Arc<dyn StatusListener>>,
    metrics: Arc<Metrics>,
    audit: AuditLog,
}

impl Outbox {
    pub fn new(store: Store, config: DeliveryConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new_cyclic(|outbox| Outbox {
            writer: message_writer(store.clone()),
            receipts: Receipts::start(outbox.clone()),
            audit: AuditLog::new(store.clone()),
            store,
            config,
            seq: Sequence::default(),
            listener: OnceLock::new(),
            metrics,
        })
    }

    /// Installs who announces the status changes (once; later calls are ignored).
    pub fn set_listener(&self, listener: Arc<dyn StatusListener>) {
        let _ = self.listener.set(listener);
    }

    pub fn config(&self) -> &DeliveryConfig {
        &self.config
    }

    /// The outbox row of a new message with this `id`, next in the send order.
    pub fn new_message<'a>(&self, new: &NewOutgoing<'a>, id: &'a str) -> NewMessage<'a> {
        NewMessage {
            id,
            owner_id: new.owner_id,
            session_id: new.session_id,
            pool: new.pool,
            seq: self.next_seq(),
            priority: new.priority,
            recipient: new.recipient,
            content: new.content,
            expires_at: new.expires_at,
            idempotency_key: new.idempotency_key,
            request_hash: new.request_hash,
        }
    }

    /// Writes the message to the outbox. With an idempotency key, a repeat of the same request
    /// returns the first message; a different request with the same key is refused.
    pub async fn accept(&self, new: NewOutgoing<'_>) -> Result<Accepted, OutboxError> {
        let id = wagate_core::message::new_message_id();
        let message = self.new_message(&new, &id);
        if new.idempotency_key.is_none() {
            // Nothing to look up on a conflict: the message may share its write with others.
            let message = self.writer.submit(message.record(now_ms())).await?;
            self.metrics.message_status(MessageStatus::Queued);
            return Ok(Accepted { message, created: true });
        }
        match self.store.insert_message(message).await? {
            Inserted::New(message) => {
                self.metrics.message_status(MessageStatus::Queued);
                Ok(Accepted { message, created: true })
            }
            Inserted::Existing(message) if message.request_hash.as_deref() == new.request_hash => {
                Ok(Accepted { message, created: false })
            }
            Inserted::Existing(_) => Err(OutboxError::IdempotencyMismatch),
        }
    }

    /// The next position in the send order (shared by every message this process accepts).
    pub(crate) fn next_seq(&self) -> i64 {
        self.seq.next()
    }

    pub async fn message(&self, id: &str) -> Result<MessageRecord, OutboxError> {
        self.store.message(id).await?.ok_or(OutboxError::NotFound)
    }

    /// At start-up: messages a previous run left `sending` go back to the queue.
    pub async fn release_leases_of_previous_run(&self) -> Result<u64, StoreError> {
        self.store.release_message_leases().await
    }

    /// The session's messages that a node which ran it before left `sending`, queued again
    /// at once when this node takes the session over.
    pub async fn release_leases_of_session(&self, session: &SessionId) -> Result<u64, StoreError> {
        self.store.release_session_message_leases(session).await
    }

    /// The session's next messages (at most `limit`), now `sending` and leased; refused
    /// ([`StoreError::Fenced`]) once `fence`, the session's lease, is no longer held.
    pub async fn claim(&self, session: &SessionId, fence: &Fence, limit: usize) -> Result<Claim, StoreError> {
        let now = now_ms();
        self.store.claim_next_messages(session, fence, now, now + self.config.lease_ms as i64, limit).await
    }

    /// Keeps a claimed message leased while it waits (pacing) until `ready_at`.
    pub async fn extend_lease(&self, id: &str, ready_at: i64) {
        let _ = self.store.extend_message_lease(id, ready_at + self.config.lease_ms as i64).await;
    }

    /// How many of the session's messages were sent since `since`, counted up to `at_most`.
    pub async fn sent_since(&self, session: &SessionId, since: i64, at_most: i64) -> i64 {
        self.store.count_sent_since(session, since, at_most).await.unwrap_or(0)
    }

    /// A claimed message goes back to the queue, not before `not_before`.
    pub async fn requeue(&self, id: &str, not_before: i64, why: Requeue) {
        let reason = why.reason();
        let requeued = self.through_outage("re-queue a message", || {
            self.store.requeue_message(id, not_before, Some(reason))
        });
        if let Err(err) = requeued.await {
            // Its lease expires and it is claimed again; nothing is lost.
            tracing::error!(message_id = id, error = %err, "cannot give a message back to the queue");
        }
    }

    /// A transient failure: tried again after a backoff, or `failed` after the last attempt.
    pub async fn retry_or_fail(&self, sender: &Sender, message: &MessageRecord, detail: String) -> Retried {
        let attempts = message.attempts;
        if !self.config.may_retry(attempts) {
            let reason = format!("{detail} (gave up after {attempts} attempts)");
            self.settle_failed(sender, &message.id, reason, false).await;
            return Retried::GaveUp;
        }
        let not_before = now_ms() + self.config.retry_delay_ms(attempts) as i64;
        self.requeue(&message.id, not_before, Requeue::Retry(detail)).await;
        Retried::Later
    }

    /// Claimed messages that were not handed over go back to the queue as they were.
    pub async fn release(&self, ids: &[&str]) {
        if let Err(err) = self.through_outage("release messages", || self.store.release_messages(ids)).await {
            // Their leases expire and they are claimed again; nothing is lost.
            tracing::error!(error = %err, count = ids.len(), "cannot give unsent messages back to the queue");
        }
    }

    /// The network acknowledged these messages: one statement, then their announcements.
    pub async fn record_sent(&self, sender: &Sender, ids: &[&str]) {
        if ids.is_empty() {
            return;
        }
        let recorded = self.through_outage("record sent messages", || {
            self.store.transition_messages(ids, MessageStatus::Sent)
        });
        match recorded.await {
            Ok(moved) => {
                for id in moved {
                    self.announce(sender.change(id, MessageStatus::Sent, None, false)).await;
                }
            }
            Err(err) => {
                tracing::error!(session = %sender.session_id, error = %err, count = ids.len(), "cannot record sent messages");
            }
        }
    }

    /// An acknowledgement that came after the dispatcher stopped waiting still marks the
    /// message sent (when that is a step forward).
    pub async fn record_late_ack(&self, sender: &Sender, id: &str) {
        if self.step(id, MessageStatus::Sent, None).await {
            self.announce(sender.change(id.to_owned(), MessageStatus::Sent, None, false)).await;
        }
    }

    /// The message cannot go: `failed`, with the reason. `restricted`: WhatsApp refused it with
    /// a reach-out restriction (463).
    pub async fn settle_failed(&self, sender: &Sender, id: &str, reason: String, restricted: bool) {
        if self.step(id, MessageStatus::Failed, Some(&reason)).await {
            let entry = Entry::new("message.failed", Level::Error, Actor::system())
                .owner(Some(&sender.owner_id))
                .session(sender.session_id.as_str())
                .detail(serde_json::json!({ "message_id": id, "reason": reason, "restricted": restricted }));
            self.audit.record(entry).await;
            self.announce(sender.change(id.to_owned(), MessageStatus::Failed, Some(reason), restricted))
                .await;
        }
    }

    /// Delivery or read receipts from the network, applied in batches.
    pub fn receipt(&self, sender: &Sender, ids: Vec<String>, kind: ReceiptKind) {
        self.receipts.push(sender, ids, kind);
    }

    /// A failed message goes back to the queue, keeping its id.
    pub async fn retry(&self, id: &str) -> Result<MessageRecord, OutboxError> {
        let message = self.message(id).await?;
        if message.status != MessageStatus::Failed
            || !self.store.requeue_message(id, now_ms(), Some("retry requested")).await?
        {
            return Err(OutboxError::WrongStatus {
                expected: "failed",
                action: "retried",
                actual: message.status,
            });
        }
        self.message(id).await
    }

    /// A queued message is withdrawn before it is sent.
    pub async fn cancel(&self, id: &str) -> Result<MessageRecord, OutboxError> {
        let message = self.message(id).await?;
        let canceled = self
            .store
            .transition_message(
                id,
                MessageStatus::Canceled,
                &[MessageStatus::Queued],
                Some("canceled by request"),
            )
            .await?;
        if !canceled {
            return Err(OutboxError::WrongStatus {
                expected: "queued",
                action: "canceled",
                actual: message.status,
            });
        }
        self.message(id).await
    }

    /// Moves the message forward to `status` when that is a step forward; false otherwise.
    async fn step(&self, id: &str, status: MessageStatus, reason: Option<&str>) -> bool {
        let stepped = self.through_outage("record a message status", || {
            self.store.transition_message(id, status, status.reachable_from(), reason)
        });
        match stepped.await {
            Ok(moved) => moved,
            Err(err) => {
                tracing::error!(message_id = id, error = %err, "cannot record message status");
                false
            }
        }
    }

    /// A write after a hand-over, tried again while the database is away (see [`through_outage`]).
    async fn through_outage<T, Write, Written>(&self, what: &str, write: Write) -> Result<T, StoreError>
    where
        Write: Fn() -> Written,
        Written: Future<Output = Result<T, StoreError>>,
    {
        through_outage(what, Duration::from_millis(self.config.lease_ms), write).await
    }

    async fn announce(&self, change: StatusChange) {
        self.metrics.message_status(change.status);
        if let Some(listener) = self.listener.get() {
            listener.status_changed(change).await;
        }
    }
}

/// Runs `write` again while the database refuses it for an outage, for at most `lease`. For the
/// writes after a hand-over: given up, the message would stay `sending` and hold its session's
/// queue until its lease expired, then go out a second time although the network took it.
async fn through_outage<T, Write, Written>(what: &str, lease: Duration, write: Write) -> Result<T, StoreError>
where
    Write: Fn() -> Written,
    Written: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + lease;
    let mut pause = OUTAGE_FIRST_PAUSE;
    loop {
        match write().await {
            Err(err) if err.outage().is_some() && tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(error = %err, "cannot {what} while the database is away; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(OUTAGE_MAX_PAUSE);
            }
            written => return written,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use wagate_store::Outage;

    use super::*;

    fn away() -> StoreError {
        StoreError::Outage { kind: Outage::Unavailable, detail: "connection refused".into() }
    }

    #[tokio::test(start_paused = true)]
    async fn writes_are_tried_again_while_the_database_is_away() {
        let tries = AtomicU32::new(0);
        let written = through_outage("write", Duration::from_secs(60), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 3 { Err(away()) } else { Ok("written") }
        });
        assert_eq!(written.await.unwrap(), "written");
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_and_a_lease_run_out_end_the_tries() {
        let tries = AtomicU32::new(0);
        let written: Result<(), _> = through_outage("write", Duration::from_secs(60), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Corrupt { column: "messages.status", value: "?".into() })
        })
        .await;
        assert!(matches!(written, Err(StoreError::Corrupt { .. })));
        assert_eq!(tries.load(Ordering::SeqCst), 1, "only outages are worth another try");

        let tries = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let written: Result<(), _> = through_outage("write", Duration::from_secs(5), || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(away())
        })
        .await;
        assert!(written.unwrap_err().outage().is_some());
        assert!(started.elapsed() < Duration::from_secs(5), "never past the lease");
        assert!(tries.load(Ordering::SeqCst) > 3);
    }
}
