//! Deleting old records in small batches: each call removes at most `limit` of one kind, in one
//! short transaction, so that sends never wait long behind it. A record still in play (a
//! message queued or being sent, a webhook event with a delivery to make) is never deleted.

use sqlx::Row;

use crate::batch::InList;
use crate::{Dialect, Result, Store};

/// What one call removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retained {
    /// Messages that reached a final step (sent, delivered, read, failed, canceled) and their
    /// status history, by creation time.
    Messages,
    /// Messages received, by the time they were sent.
    ReceivedMessages,
    /// Webhook events whose deliveries are all made or given up, with the deliveries and their
    /// attempts, by creation time.
    WebhookEvents,
    /// The sessions' event log, by time.
    SessionEvents,
    /// The activity and audit log, by time.
    ActivityLog,
}

impl Store {
    /// Deletes at most `limit` records of `kind` older than `cutoff` (Unix ms); how many.
    pub async fn delete_old(&self, kind: Retained, cutoff: i64, limit: u32) -> Result<u64> {
        let select = match kind {
            Retained::Messages => {
                "SELECT id FROM messages WHERE created_at < ? \
                 AND status IN ('sent', 'delivered', 'read', 'failed', 'canceled') LIMIT ?"
            }
            Retained::ReceivedMessages => "SELECT id FROM inbound_messages WHERE sent_at < ? LIMIT ?",
            Retained::WebhookEvents => {
                "SELECT e.id FROM webhook_events e WHERE e.created_at < ? AND NOT EXISTS \
                 (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending') LIMIT ?"
            }
            Retained::SessionEvents => "SELECT id FROM session_events WHERE created_at < ? LIMIT ?",
            Retained::ActivityLog => "SELECT id FROM activity_log WHERE created_at < ? LIMIT ?",
        };
        let rows = sqlx::query(self.sql(select))
            .bind(cutoff)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let ids: Vec<String> = rows.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(0);
        }
        let list = InList::new(&ids);
        let marks = list.marks();
        let statements: Vec<String> = match kind {
            Retained::Messages => vec![
                format!("DELETE FROM message_events WHERE message_id IN ({marks})"),
                format!("DELETE FROM messages WHERE id IN ({marks})"),
            ],
            Retained::ReceivedMessages => vec![format!("DELETE FROM inbound_messages WHERE id IN ({marks})")],
            Retained::WebhookEvents => vec![
                format!(
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_deliveries WHERE event_id IN ({marks}))"
                ),
                format!("DELETE FROM webhook_deliveries WHERE event_id IN ({marks})"),
                format!("DELETE FROM webhook_events WHERE id IN ({marks})"),
            ],
            Retained::SessionEvents => vec![format!("DELETE FROM session_events WHERE id IN ({marks})")],
            Retained::ActivityLog => vec![format!("DELETE FROM activity_log WHERE id IN ({marks})")],
        };
        let mut writer = self.writer().await?;
        let mut transaction = sqlx::Connection::begin(&mut *writer).await?;
        let mut deleted = 0;
        for statement in &statements {
            let done = list.bind(sqlx::query(self.sql(statement))).execute(&mut *transaction).await?;
            deleted = done.rows_affected();
        }
        transaction.commit().await?;
        Ok(deleted)
    }

    /// Gives the space of deleted rows back to the file system (SQLite databases created with
    /// incremental auto-vacuum; elsewhere the database does it on its own).
    pub async fn give_back_space(&self) -> Result<()> {
        if self.dialect() == Dialect::Sqlite {
            sqlx::query("PRAGMA incremental_vacuum").execute(&mut *self.writer().await?).await?;
        }
        Ok(())
    }
}
