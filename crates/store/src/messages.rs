//! The outbox: accepted messages, their transitions and history.

use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{MessageContent, MessageStatus, SessionId};

use crate::batch::{InList, MAX_ROWS, row_runs};
use crate::filter::Where;
use crate::{Result, Store, StoreError, now_ms, parse_column};

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
pub enum Claim {
    /// These messages (the session's next ones, in order) are now `sending`, leased until the
    /// given time.
    Messages(Vec<MessageRecord>),
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

impl Store {
    /// Stores a new `queued` message with its first history entry, atomically.
    pub async fn insert_message(&self, new: NewMessage<'_>) -> Result<Inserted> {
        let now = now_ms();
        match self.insert_message_row(&mut *self.writer().await?, &new, now).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) if new.idempotency_key.is_some() => {
                let sql =
                    format!("SELECT {COLUMNS} FROM messages WHERE owner_id = ? AND idempotency_key = ?");
                let row = sqlx::query(self.sql(&sql))
                    .bind(new.owner_id)
                    .bind(new.idempotency_key)
                    .fetch_one(&mut *self.reader().await?)
                    .await?;
                return Ok(Inserted::Existing(from_row(&row)?));
            }
            Err(other) => return Err(other),
        }
        Ok(Inserted::New(new.record(now)))
    }

    /// New `queued` messages (records made by [`NewMessage::record`]), in one statement. For
    /// messages without an idempotency key: several requests' messages share one write.
    pub async fn insert_new_messages(&self, records: &[MessageRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if records.len().is_power_of_two() && records.len() <= MAX_ROWS {
            return self.insert_message_run(&mut *self.writer().await?, records).await; // one statement: no transaction
        }
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        self.insert_message_rows(&mut tx, records).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `INSERT` of a new `queued` message, on the pool or inside a transaction. One
    /// statement: the `queued` step of the history is the row's `created_at`.
    pub(crate) async fn insert_message_row<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        &self,
        executor: E,
        new: &NewMessage<'_>,
        now: i64,
    ) -> Result<()> {
        self.insert_message_run(executor, &[new.record(now)]).await
    }

    /// Several new messages inside a transaction, in runs of cached statements (see [`crate::batch`]).
    pub(crate) async fn insert_message_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        records: &[MessageRecord],
    ) -> Result<()> {
        for run in row_runs(records) {
            self.insert_message_run(&mut **tx, run).await?;
        }
        Ok(())
    }

    /// One `INSERT` of `records`; their number should be one of [`row_runs`]'s sizes.
    async fn insert_message_run<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        &self,
        executor: E,
        records: &[MessageRecord],
    ) -> Result<()> {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"; records.len()].join(", ");
        let sql = format!(
            "INSERT INTO messages (id, owner_id, session_id, pool, seq, priority, recipient, kind, content, status, \
             attempts, not_before, expires_at, idempotency_key, request_hash, created_at, updated_at) VALUES {rows}"
        );
        let mut insert = sqlx::query(self.sql(&sql));
        for record in records {
            let content = serde_json::to_string(&record.content).expect("content serializes");
            insert = insert
                .bind(record.id.as_str())
                .bind(record.owner_id.as_str())
                .bind(record.session_id.as_str())
                .bind(record.pool.as_deref())
                .bind(record.seq)
                .bind(record.priority)
                .bind(record.recipient.as_str())
                .bind(record.content.kind())
                .bind(content)
                .bind(MessageStatus::Queued.as_str())
                .bind(record.not_before)
                .bind(record.expires_at)
                .bind(record.idempotency_key.as_deref())
                .bind(record.request_hash.as_deref())
                .bind(record.created_at)
                .bind(record.updated_at);
        }
        insert.execute(executor).await.map_err(StoreError::conflict_on_unique("message"))?;
        Ok(())
    }

    pub(crate) async fn insert_event<'e, E: sqlx::Executor<'e, Database = sqlx::Any>>(
        &self,
        executor: E,
        message_id: &str,
        status: MessageStatus,
        reason: Option<&str>,
        at: i64,
    ) -> Result<()> {
        sqlx::query(self.sql(
            "INSERT INTO message_events (id, message_id, status, reason, created_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(wagate_core::new_id())
        .bind(message_id)
        .bind(status.as_str())
        .bind(reason)
        .bind(at)
        .execute(executor)
        .await?;
        Ok(())
    }

    pub async fn message(&self, id: &str) -> Result<Option<MessageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = ?");
        let row = sqlx::query(self.sql(&sql)).bind(id).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Newest first.
    pub async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>> {
        let mut conditions = Where::default();
        conditions
            .text("owner_id = ?", filter.owner_id.as_deref())
            .text("session_id = ?", filter.session_id.as_deref())
            .text("status = ?", filter.status.map(MessageStatus::as_str))
            .text("recipient = ?", filter.recipient.as_deref())
            .int("created_at >= ?", filter.since)
            .int("created_at < ?", filter.until);
        if let Some(search) = &filter.search {
            let pattern = format!("%{}%", search.replace(['%', '_'], ""));
            conditions.texts(
                "(id = ? OR recipient LIKE ? OR content LIKE ? OR reason LIKE ?)",
                vec![search.clone(), pattern.clone(), pattern.clone(), pattern],
            );
        }
        conditions.before(filter.before.as_ref());
        let sql = format!(
            "SELECT {COLUMNS} FROM messages {} ORDER BY created_at DESC, id DESC LIMIT ?",
            conditions.sql()
        );
        let query = conditions.bind(sqlx::query(self.sql(&sql)));
        let rows = query.bind(i64::from(filter.limit)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }

    /// Every step of a message, oldest first: `queued`, `sent`, `delivered` and `read` come
    /// from the message's own timestamps, attempts, failures and re-queues from its events.
    pub async fn message_history(&self, id: &str) -> Result<Vec<MessageEventRecord>> {
        let Some(message) = self.message(id).await? else { return Ok(Vec::new()) };
        let rows = sqlx::query(self.sql(
            "SELECT status, reason, created_at FROM message_events WHERE message_id = ? ORDER BY created_at, id",
        ))
        .bind(id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        let mut history = vec![MessageEventRecord {
            status: MessageStatus::Queued,
            reason: None,
            created_at: message.created_at,
        }];
        if let Some(at) = message.claimed_at {
            history.push(MessageEventRecord { status: MessageStatus::Sending, reason: None, created_at: at });
        }
        for row in &rows {
            history.push(MessageEventRecord {
                status: parse_column(&row.try_get::<String, _>("status")?, "message_events.status")?,
                reason: row.try_get("reason")?,
                created_at: row.try_get("created_at")?,
            });
        }
        for (status, at) in [
            (MessageStatus::Sent, message.sent_at),
            (MessageStatus::Delivered, message.delivered_at),
            (MessageStatus::Read, message.read_at),
        ] {
            if let Some(at) = at {
                history.push(MessageEventRecord { status, reason: None, created_at: at });
            }
        }
        // Stable: equal times keep the order above (queued, first attempt, later attempts, sent,
        // delivered, read).
        history.sort_by_key(|event| event.created_at);
        Ok(history)
    }

    /// Takes the session's next messages in order (highest priority first, then oldest), at
    /// most `limit`, leasing them until `lease_until`. Messages are never overtaken: a head that
    /// must wait holds the rest, and a batch ends before the first message that must wait. Only
    /// the head may be a retry; the others are first attempts, so a batch released unsent (see
    /// [`Store::release_messages`]) leaves no trace in their history.
    pub async fn claim_next_messages(
        &self,
        session: &SessionId,
        now: i64,
        lease_until: i64,
        limit: usize,
    ) -> Result<Claim> {
        // The limit is written out: SQLite plans `LIMIT ?` with its bound value and so prepares
        // the statement again every time one is bound. Dispatchers use one or two limits.
        let sql = format!(
            "SELECT {COLUMNS}, lease_until FROM messages WHERE session_id = ? AND status IN ('queued', 'sending') \
             ORDER BY priority DESC, seq ASC LIMIT {}",
            limit.max(1)
        );
        let rows =
            sqlx::query(self.sql(&sql)).bind(session.as_str()).fetch_all(&mut *self.reader().await?).await?;
        let mut batch = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = from_row(row)?;
            let leased_until: Option<i64> = row.try_get("lease_until")?;
            let in_flight =
                message.status == MessageStatus::Sending && leased_until.is_some_and(|until| until > now);
            let head = batch.is_empty();
            if head && in_flight {
                return Ok(Claim::InFlight);
            }
            if head && message.not_before > now {
                return Ok(Claim::WaitUntil(message.not_before));
            }
            if !head && (in_flight || message.not_before > now || message.attempts > 0) {
                break;
            }
            batch.push(message);
        }
        if batch.is_empty() {
            return Ok(Claim::Empty);
        }
        let ids: Vec<&str> = batch.iter().map(|message| message.id.as_str()).collect();
        let ids = InList::new(&ids);
        let claim = sqlx::query(self.sql(&format!(
            "UPDATE messages SET status = 'sending', lease_until = ?, attempts = attempts + 1, updated_at = ?, \
             claimed_at = COALESCE(claimed_at, ?) \
             WHERE id IN ({}) AND status IN ('queued', 'sending') AND (lease_until IS NULL OR lease_until <= ?)",
            ids.marks()
        )))
        .bind(lease_until)
        .bind(now)
        .bind(now);
        let claim = ids.bind(claim).bind(now);
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        if claim.execute(&mut *tx).await?.rows_affected() != batch.len() as u64 {
            return Ok(Claim::InFlight); // another worker was faster (the transaction rolls back)
        }
        // Every attempt is in the history: the first one as the row's `claimed_at`, later ones as
        // lines of their own.
        let head = &batch[0];
        if head.attempts > 0 {
            self.insert_event(&mut *tx, &head.id, MessageStatus::Sending, None, now).await?;
        }
        tx.commit().await?;
        Ok(Claim::Messages(
            batch
                .into_iter()
                .map(|message| MessageRecord {
                    status: MessageStatus::Sending,
                    attempts: message.attempts + 1,
                    updated_at: now,
                    claimed_at: message.claimed_at.or(Some(now)),
                    ..message
                })
                .collect(),
        ))
    }

    /// Gives claimed first attempts back to the queue unsent (the rest of a batch whose earlier
    /// message could not go): as if they had never been claimed.
    pub async fn release_messages(&self, ids: &[&str]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = InList::new(ids);
        // `claimed_at` first: MySQL assigns left to right, with `attempts` still the old value.
        let release = sqlx::query(self.sql(&format!(
            "UPDATE messages SET claimed_at = CASE WHEN attempts <= 1 THEN NULL ELSE claimed_at END, \
             attempts = attempts - 1, status = 'queued', lease_until = NULL, updated_at = ? \
             WHERE id IN ({}) AND status = 'sending'",
            ids.marks()
        )))
        .bind(now_ms());
        ids.bind(release).execute(&mut *self.writer().await?).await?;
        Ok(())
    }

    /// Moves many messages to `to` (`sent`, `delivered` or `read`) where that is a step
    /// forward, in one statement; returns the ids that moved.
    pub async fn transition_messages(&self, ids: &[&str], to: MessageStatus) -> Result<Vec<String>> {
        // A receipt also tells what the server's acknowledgement would have: the message was
        // sent (and, for a read receipt, delivered), even when the receipt arrives first.
        let stamps = match to {
            MessageStatus::Sent => "sent_at = COALESCE(sent_at, ?)",
            MessageStatus::Delivered => {
                "delivered_at = COALESCE(delivered_at, ?), sent_at = COALESCE(sent_at, ?)"
            }
            MessageStatus::Read => {
                "read_at = COALESCE(read_at, ?), delivered_at = COALESCE(delivered_at, ?), \
                 sent_at = COALESCE(sent_at, ?)"
            }
            _ => return Err(StoreError::Corrupt { column: "messages.status", value: to.to_string() }),
        };
        let allowed =
            to.reachable_from().iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let now = now_ms();
        let stamp_count = stamps.matches('?').count();
        self.update_ids(
            "messages",
            &format!("status = ?, reason = NULL, lease_until = NULL, updated_at = ?, {stamps}"),
            ids,
            &format!("status IN ({allowed})"),
            |query| {
                let query = query.bind(to.as_str()).bind(now);
                (0..stamp_count).fold(query, |query, _| query.bind(now))
            },
            |query| query,
        )
        .await
    }

    /// Moves a message to `to` if it is in one of `from`; records the transition. Returns
    /// false (and changes nothing) otherwise.
    pub async fn transition_message(
        &self,
        id: &str,
        to: MessageStatus,
        from: &[MessageStatus],
        reason: Option<&str>,
    ) -> Result<bool> {
        if from.is_empty() {
            return Ok(false);
        }
        let now = now_ms();
        let stamp = match to {
            MessageStatus::Sent => ", sent_at = COALESCE(sent_at, ?)",
            MessageStatus::Delivered => ", delivered_at = COALESCE(delivered_at, ?)",
            MessageStatus::Read => ", read_at = COALESCE(read_at, ?)",
            _ => ", updated_at = ?",
        };
        let allowed = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE messages SET status = ?, reason = ?, lease_until = NULL, updated_at = ?{stamp} \
             WHERE id = ? AND status IN ({allowed})"
        );
        let query = sqlx::query(self.sql(&sql)).bind(to.as_str()).bind(reason).bind(now).bind(now).bind(id);
        if matches!(to, MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read) {
            // The hot path: one statement; the step's time is its `…_at` column.
            return Ok(query.execute(&mut *self.writer().await?).await?.rows_affected() > 0);
        }
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        self.insert_event(&mut *tx, id, to, reason, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A `sending` or `failed` message goes back to the queue, not before `not_before`.
    pub async fn requeue_message(&self, id: &str, not_before: i64, reason: Option<&str>) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done = sqlx::query(self.sql(
            "UPDATE messages SET status = 'queued', reason = ?, lease_until = NULL, not_before = ?, updated_at = ? \
             WHERE id = ? AND status IN ('sending', 'failed')",
        ))
        .bind(reason)
        .bind(not_before)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        self.insert_event(&mut *tx, id, MessageStatus::Queued, reason, now_ms()).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// At start-up: leases of a stopped process return their messages to the queue (the same
    /// message id is sent again, which WhatsApp deduplicates).
    pub async fn release_message_leases(&self) -> Result<u64> {
        let done = sqlx::query(self.sql(
            "UPDATE messages SET status = 'queued', lease_until = NULL, updated_at = ? WHERE status = 'sending'",
        ))
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    /// Sessions with messages waiting, so their dispatchers can start.
    pub async fn sessions_with_queued_messages(&self) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT session_id FROM messages WHERE status IN ('queued', 'sending')")
                .fetch_all(&mut *self.reader().await?)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("session_id")?)).collect()
    }

    /// How many messages the session sent since `since` (for hourly and daily caps).
    pub async fn count_sent_since(&self, session: &SessionId, since: i64) -> Result<i64> {
        let row =
            sqlx::query(self.sql("SELECT COUNT(*) AS n FROM messages WHERE session_id = ? AND sent_at >= ?"))
                .bind(session.as_str())
                .bind(since)
                .fetch_one(&mut *self.reader().await?)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Moves the queued pool messages of `from` to `to` (when `from` cannot send).
    pub async fn move_pool_messages(&self, from: &SessionId, to: &SessionId) -> Result<u64> {
        let done = sqlx::query(self.sql(
            "UPDATE messages SET session_id = ?, updated_at = ? WHERE session_id = ? AND status = 'queued' AND pool IS NOT NULL",
        ))
        .bind(to.as_str())
        .bind(now_ms())
        .bind(from.as_str())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

impl Store {
    /// Keeps a message leased while its dispatcher paces it.
    pub async fn extend_message_lease(&self, id: &str, lease_until: i64) -> Result<()> {
        sqlx::query(self.sql("UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'sending'"))
            .bind(lease_until)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Messages waiting in a session's queue.
    pub async fn count_queued(&self, session: &SessionId) -> Result<i64> {
        let row = sqlx::query(self.sql(
            "SELECT COUNT(*) AS n FROM messages WHERE session_id = ? AND status IN ('queued', 'sending')",
        ))
        .bind(session.as_str())
        .fetch_one(&mut *self.reader().await?)
        .await?;
        Ok(row.try_get("n")?)
    }
}
