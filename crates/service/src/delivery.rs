//! Message acceptance and outcomes: the outbox rows, acknowledgements, receipts.
//!
//! Accepting a message writes it to the database (status `queued`) before anything else; the
//! session's dispatcher (see `sessions::dispatcher`) sends it. Engine acknowledgements are
//! handed to the waiting dispatcher; receipts (see `sessions::receipts`) move the message
//! forward (never backwards).

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;
use wagate_core::{MessageContent, MessageStatus, SessionId};
use wagate_engine::SendFailure;
use wagate_store::{Inserted, MessageRecord, NewMessage, Store, StoreError};

use super::group_commit::{GroupCommit, WriteError};
use crate::time::{Sequence, now_ms};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// How long a message may stay `sending` before another attempt may take it.
    pub lease_ms: u64,
    /// How long to wait for the server's acknowledgement of a sent message.
    pub ack_timeout_ms: u64,
    /// Attempts before a transient failure becomes `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubles with every attempt up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// How long a session that hit WhatsApp's reach-out restriction (463) stays out of pools.
    pub restriction_cooldown_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            lease_ms: 60_000,
            ack_timeout_ms: 30_000,
            max_attempts: 5,
            retry_base_ms: 2_000,
            retry_max_ms: 300_000,
            restriction_cooldown_ms: 3_600_000,
        }
    }
}

/// What the network said about a message the dispatcher handed over.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent,
    Failed(SendFailure),
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
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

pub struct Delivery {
    store: Store,
    pub(crate) config: DeliveryConfig,
    acks: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    seq: Sequence,
    /// New messages without an idempotency key, written together.
    writer: GroupCommit<MessageRecord, MessageRecord>,
}

impl From<WriteError> for DeliveryError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Stopped => DeliveryError::ShuttingDown,
            WriteError::Store(err) => DeliveryError::Store(err),
        }
    }
}

impl Delivery {
    pub fn new(store: Store, config: DeliveryConfig) -> Self {
        let writer = message_writer(store.clone());
        Delivery { store, config, acks: Mutex::new(HashMap::new()), seq: Sequence::default(), writer }
    }

    /// Writes the message to the outbox. With an idempotency key, a repeat of the same request
    /// returns the first message; a different request with the same key is refused.
    pub async fn accept(&self, new: NewOutgoing<'_>) -> Result<Accepted, DeliveryError> {
        let id = wagate_core::message::new_message_id();
        let message = NewMessage {
            id: &id,
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
        };
        if new.idempotency_key.is_none() {
            // Nothing to look up on a conflict: the message may share its write with others.
            let message = self.writer.submit(message.record(now_ms())).await?;
            return Ok(Accepted { message, created: true });
        }
        match self.store.insert_message(message).await? {
            Inserted::New(message) => Ok(Accepted { message, created: true }),
            Inserted::Existing(message) if message.request_hash.as_deref() == new.request_hash => {
                Ok(Accepted { message, created: false })
            }
            Inserted::Existing(_) => Err(DeliveryError::IdempotencyMismatch),
        }
    }

    /// The next position in the send order (shared by every message this process accepts).
    pub(crate) fn next_seq(&self) -> i64 {
        self.seq.next()
    }

    /// Registers interest in the outcome of `id` before it is handed to the engine.
    pub(crate) fn expect_outcome(&self, id: &str) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), tx);
        rx
    }

    pub(crate) fn forget_outcome(&self, id: &str) {
        self.acks.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// An acknowledgement from the engine. A dispatcher waiting for it takes it; a late one
    /// (after the dispatcher gave up waiting) still marks the message sent.
    pub(crate) async fn on_outcome(&self, id: &str, outcome: Outcome) -> Option<MessageStatus> {
        let waiting = self.acks.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        match waiting {
            Some(tx) => {
                let _ = tx.send(outcome);
                None
            }
            None if outcome == Outcome::Sent => {
                self.transition(id, MessageStatus::Sent, None).await.then_some(MessageStatus::Sent)
            }
            None => None,
        }
    }

    /// Moves the message forward to `status` when that is a step forward; false otherwise.
    pub(crate) async fn transition(&self, id: &str, status: MessageStatus, reason: Option<&str>) -> bool {
        match self.store.transition_message(id, status, status.reachable_from(), reason).await {
            Ok(moved) => moved,
            Err(err) => {
                tracing::error!(message_id = id, error = %err, "cannot record message status");
                false
            }
        }
    }

    pub async fn message(&self, id: &str) -> Result<MessageRecord, DeliveryError> {
        self.store.message(id).await?.ok_or(DeliveryError::NotFound)
    }

    /// A failed message goes back to the queue, keeping its id.
    pub async fn retry(&self, id: &str) -> Result<MessageRecord, DeliveryError> {
        let message = self.message(id).await?;
        if message.status != MessageStatus::Failed
            || !self.store.requeue_message(id, crate::time::now_ms(), Some("retry requested")).await?
        {
            return Err(DeliveryError::WrongStatus {
                expected: "failed",
                action: "retried",
                actual: message.status,
            });
        }
        self.message(id).await
    }

    /// A queued message is withdrawn before it is sent.
    pub async fn cancel(&self, id: &str) -> Result<MessageRecord, DeliveryError> {
        let message = self.message(id).await?;
        if !self
            .store
            .transition_message(
                id,
                MessageStatus::Canceled,
                &[MessageStatus::Queued],
                Some("canceled by request"),
            )
            .await?
        {
            return Err(DeliveryError::WrongStatus {
                expected: "queued",
                action: "canceled",
                actual: message.status,
            });
        }
        self.message(id).await
    }

    /// Backoff before attempt `attempts + 1`: base · 2^(attempts-1), capped, with ±20 % jitter.
    pub(crate) fn retry_delay_ms(&self, attempts: i64) -> u64 {
        let exponent = attempts.clamp(1, 20) as u32 - 1;
        let delay = self.config.retry_base_ms.saturating_mul(1u64 << exponent).min(self.config.retry_max_ms);
        let jitter = delay / 5;
        if jitter == 0 { delay } else { delay - jitter + rand::random_range(0..=2 * jitter) }
    }
}

/// Several requests' new messages in one multi-row `INSERT`.
fn message_writer(store: Store) -> GroupCommit<MessageRecord, MessageRecord> {
    GroupCommit::start(
        256,
        |_, _| true,
        std::sync::Arc::new(move |records: Vec<MessageRecord>| {
            let store = store.clone();
            Box::pin(async move { store.insert_new_messages(&records).await.map(|()| records) })
        }),
    )
}

#[cfg(test)]
mod tests {
    use wagate_core::{MessageContent, SessionId};
    use wagate_store::NewMessage;

    use super::*;

    fn record(id: &str, session: &SessionId, content: &MessageContent) -> MessageRecord {
        NewMessage {
            id,
            owner_id: "owner",
            session_id: session,
            pool: None,
            seq: 1,
            priority: 0,
            recipient: "+6281234500001",
            content,
            expires_at: None,
            idempotency_key: None,
            request_hash: None,
        }
        .record(now_ms())
    }

    #[tokio::test]
    async fn concurrent_messages_share_writes_and_a_bad_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let writer = message_writer(store.clone());
        let session = SessionId::parse("s1").unwrap();
        let text = MessageContent::Text { body: "hi".into(), mentions: Vec::new(), reply_to: None };

        let inserts = (0..100).map(|n| writer.submit(record(&format!("M{n}"), &session, &text)));
        let stored = futures::future::join_all(inserts).await;
        assert!(stored.iter().all(Result::is_ok));
        for n in [0, 57, 99] {
            assert!(store.message(&format!("M{n}")).await.unwrap().is_some(), "M{n} is committed");
        }

        // The same id twice in one write: the write fails, then each row is tried alone.
        let (first, again, other) = tokio::join!(
            writer.submit(record("DUP", &session, &text)),
            writer.submit(record("DUP", &session, &text)),
            writer.submit(record("OK", &session, &text)),
        );
        assert!(first.is_ok());
        assert!(matches!(again, Err(WriteError::Store(StoreError::Conflict { .. }))), "{again:?}");
        assert!(other.is_ok());
        assert!(store.message("OK").await.unwrap().is_some());
    }
}
