//! The outbox: accepted messages, their transitions and history.

use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{MessageContent, MessageStatus, SessionId};

use crate::{Result, StoreError, parse_column};

mod claim;
mod insert;
mod listings;
mod transitions;

#[cfg(test)]
pub(crate) use claim::{QUEUE_STATEMENTS, claim_statement};
#[cfg(test)]
pub(crate) use listings::{COUNT_SENT_SINCE, message_listing};

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub id: String,
    pub owner_id: String,
    pub session_id: SessionId,
    pub pool: Option<String>,
    pub seq: i64,
    pub priority: i64,
    pub recipient: String,
    pub content: MessageContent,
    pub status: MessageStatus,
    pub reason: Option<String>,
    pub attempts: i64,
    pub not_before: i64,
    pub expires_at: Option<i64>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub delivered_at: Option<i64>,
    pub read_at: Option<i64>,
    /// When it was first handed to its session (its first `sending` step).
    pub claimed_at: Option<i64>,
}

pub struct NewMessage<'a> {
    pub id: &'a str,
    pub owner_id: &'a str,
    pub session_id: &'a SessionId,
    pub pool: Option<&'a str>,
    pub seq: i64,
    pub priority: i64,
    pub recipient: &'a str,
    pub content: &'a MessageContent,
    pub expires_at: Option<i64>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

impl NewMessage<'_> {
    /// The record as [`Store::insert_message`] stores it at `now`.
    pub fn record(&self, now: i64) -> MessageRecord {
        MessageRecord {
            id: self.id.to_owned(),
            owner_id: self.owner_id.to_owned(),
            session_id: self.session_id.clone(),
            pool: self.pool.map(str::to_owned),
            seq: self.seq,
            priority: self.priority,
            recipient: self.recipient.to_owned(),
            content: self.content.clone(),
            status: MessageStatus::Queued,
            reason: None,
            attempts: 0,
            not_before: now,
            expires_at: self.expires_at,
            idempotency_key: self.idempotency_key.map(str::to_owned),
            request_hash: self.request_hash.map(str::to_owned),
            created_at: now,
            updated_at: now,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            claimed_at: None,
        }
    }
}

pub enum Inserted {
    New(MessageRecord),
    /// A message with the same idempotency key exists already.
    Existing(MessageRecord),
}

/// What the dispatcher of a session should do next.
#[derive(Debug)]
pub enum Claim {
    /// These messages (the session's next ones, in order) are now `sending`, leased until the
    /// given time. `drained`: they were all the queue held when it was read, so there is nothing
    /// more to claim until another message is queued.
    Messages {
        batch: Vec<MessageRecord>,
        drained: bool,
    },
    /// The next message may not go before this time (backoff or pacing).
    WaitUntil(i64),
    /// A message is being sent (by a lease that has not expired yet).
    InFlight,
    Empty,
}

#[derive(Debug, Clone)]
pub struct MessageEventRecord {
    pub status: MessageStatus,
    pub reason: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Default, Clone)]
pub struct MessageFilter {
    pub owner_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<MessageStatus>,
    pub recipient: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Substring of the content, id or failure reason.
    pub search: Option<String>,
    /// Only messages created before this one (by id); for paging.
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

const COLUMNS: &str = "id, owner_id, session_id, pool, seq, priority, recipient, content, status, reason, \
                       attempts, not_before, expires_at, idempotency_key, request_hash, created_at, updated_at, \
                       sent_at, delivered_at, read_at, claimed_at";

fn from_row(row: &AnyRow) -> Result<MessageRecord> {
    let session: String = row.try_get("session_id")?;
    let content: String = row.try_get("content")?;
    Ok(MessageRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        session_id: SessionId::parse(&session)
            .map_err(|_| StoreError::Corrupt { column: "messages.session_id", value: session })?,
        pool: row.try_get("pool")?,
        seq: row.try_get("seq")?,
        priority: row.try_get("priority")?,
        recipient: row.try_get("recipient")?,
        content: serde_json::from_str(&content)
            .map_err(|_| StoreError::Corrupt { column: "messages.content", value: content })?,
        status: parse_column(&row.try_get::<String, _>("status")?, "messages.status")?,
        reason: row.try_get("reason")?,
        attempts: row.try_get("attempts")?,
        not_before: row.try_get("not_before")?,
        expires_at: row.try_get("expires_at")?,
        idempotency_key: row.try_get("idempotency_key")?,
        request_hash: row.try_get("request_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        sent_at: row.try_get("sent_at")?,
        delivered_at: row.try_get("delivered_at")?,
        read_at: row.try_get("read_at")?,
        claimed_at: row.try_get("claimed_at")?,
    })
}
