//! Reading messages: one by id, filtered listings, a message's history and queue counts.

use sqlx::Row;
use wagate_core::{MessageStatus, SessionId};

use super::{COLUMNS, MessageEventRecord, MessageFilter, MessageRecord, from_row};
use crate::filter::Where;
use crate::partial_indexes::WAITING;
use crate::{Result, Store, parse_column};

impl Store {
    pub async fn message(&self, id: &str) -> Result<Option<MessageRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = ?");
        let row = sqlx::query(self.sql(&sql)).bind(id).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Newest first.
    pub async fn messages(&self, filter: &MessageFilter) -> Result<Vec<MessageRecord>> {
        let (sql, conditions) = message_listing(filter);
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

    /// How many messages the session sent since `since`, counted up to `at_most` (for hourly
    /// and daily caps: a count past the cap changes nothing, and stopping there keeps a busy
    /// session's check from reading its whole day).
    pub async fn count_sent_since(&self, session: &SessionId, since: i64, at_most: i64) -> Result<i64> {
        let row = sqlx::query(self.sql(COUNT_SENT_SINCE))
            .bind(session.as_str())
            .bind(since)
            .bind(at_most)
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// The ids of a session's messages not yet sent (`queued` or `sending`), in sending order.
    pub async fn pending_message_ids(&self, session: &SessionId) -> Result<Vec<String>> {
        let rows = sqlx::query(self.sql(
            "SELECT id FROM messages WHERE session_id = ? AND status IN ('queued', 'sending') \
             ORDER BY priority DESC, seq",
        ))
        .bind(session.as_str())
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
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

pub(crate) const COUNT_SENT_SINCE: &str = "SELECT COUNT(*) AS n FROM \
    (SELECT 1 AS one FROM messages WHERE session_id = ? AND sent_at >= ? LIMIT ?) recent";

/// The listing's statement (its last `?` the limit) and the conditions whose values it binds.
pub(crate) fn message_listing(filter: &MessageFilter) -> (String, Where) {
    let mut conditions = Where::default();
    // What is still waiting is found through the queue's index, session by session: the queue
    // is as long as what waits, the history as long as everything ever sent. A message's tenant
    // is its session's (sessions do not change hands), and a deleted session leaves nothing
    // waiting (its queue moves to its pool or fails).
    let waiting = matches!(filter.status, Some(MessageStatus::Queued | MessageStatus::Sending));
    match (filter.owner_id.as_deref(), filter.session_id.as_deref()) {
        // A session has one owner: asked of the session's row, the tenant's condition leaves
        // the session's own index to serve the listing.
        (Some(owner), Some(session)) => conditions.texts(
            "session_id = (SELECT id FROM sessions WHERE id = ? AND owner_id = ?)",
            vec![session.to_owned(), owner.to_owned()],
        ),
        (Some(owner), None) if waiting => {
            conditions.text("session_id IN (SELECT id FROM sessions WHERE owner_id = ?)", Some(owner))
        }
        (None, None) if waiting => conditions.texts("session_id IN (SELECT id FROM sessions)", Vec::new()),
        (owner, session) => conditions.text("owner_id = ?", owner).text("session_id = ?", session),
    };
    if waiting {
        // The queue index's own condition, word for word (`partial_indexes.rs`).
        conditions.texts(WAITING, Vec::new());
    }
    conditions
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
    // The queue's matches are few and sorted afterwards; `+` keeps a database from reading a
    // session's whole history through an index already in this order instead.
    let order = if waiting {
        conditions.before_sorted_after(filter.before.as_ref());
        "+created_at DESC, id DESC"
    } else {
        conditions.before(filter.before.as_ref());
        "created_at DESC, id DESC"
    };
    let sql = format!("SELECT {COLUMNS} FROM messages {} ORDER BY {order} LIMIT ?", conditions.sql());
    (sql, conditions)
}
