//! Reading messages: one by id, filtered listings, a message's history and queue counts.

use sqlx::Row;
use wagate_core::{MessageStatus, SessionId};

use super::{COLUMNS, MessageEventRecord, MessageFilter, MessageRecord, from_row};
use crate::filter::Where;
use crate::{Result, Store, parse_column};

impl Store {
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
