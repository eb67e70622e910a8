//! Status transitions of stored messages (sent, delivered, read, failed, re-queued).

use wagate_core::MessageStatus;

use crate::{Result, Store, StoreError, now_ms};

impl Store {
    /// Moves many messages to `to` (`sent`, `delivered` or `read`) where that is a step
    /// forward, in one statement; returns the ids that moved.
    pub async fn transition_messages(&self, ids: &[&str], to: MessageStatus) -> Result<Vec<String>> {
        self.retry_deadlocks(|| self.transition_messages_once(ids, to)).await
    }

    async fn transition_messages_once(&self, ids: &[&str], to: MessageStatus) -> Result<Vec<String>> {
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
        // PostgreSQL refuses a column assigned twice: only the steps with a time of their own
        // add one.
        let stamp = match to {
            MessageStatus::Sent => ", sent_at = COALESCE(sent_at, ?)",
            MessageStatus::Delivered => ", delivered_at = COALESCE(delivered_at, ?)",
            MessageStatus::Read => ", read_at = COALESCE(read_at, ?)",
            _ => "",
        };
        let allowed = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "UPDATE messages SET status = ?, reason = ?, lease_until = NULL, updated_at = ?{stamp} \
             WHERE id = ? AND status IN ({allowed})"
        );
        let query = sqlx::query(self.sql(&sql)).bind(to.as_str()).bind(reason).bind(now);
        let query = if stamp.is_empty() { query } else { query.bind(now) }.bind(id);
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
}
