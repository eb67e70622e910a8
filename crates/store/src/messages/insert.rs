//! Accepting messages into the outbox: new rows and their history entries.

use wagate_core::MessageStatus;

use super::{COLUMNS, Inserted, MessageRecord, NewMessage, from_row};
use crate::batch::{MAX_ROWS, row_runs};
use crate::{Result, Store, StoreError, now_ms};

impl Store {
    /// Stores a new `queued` message with its first history entry, atomically.
    pub async fn insert_message(&self, new: NewMessage<'_>) -> Result<Inserted> {
        let now = now_ms();
        let inserted = self
            .retry_deadlocks(|| async {
                self.insert_message_row(&mut *self.writer().await?, &new, now).await
            })
            .await;
        match inserted {
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
        self.retry_deadlocks(|| self.insert_new_messages_once(records)).await
    }

    async fn insert_new_messages_once(&self, records: &[MessageRecord]) -> Result<()> {
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
}
