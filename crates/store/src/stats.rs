//! Counts for the dashboard's overview and the metrics.

use sqlx::Row;

use crate::{Result, Store};

impl Store {
    /// Messages by status (all tenants with `None`).
    pub async fn message_counts(&self, owner_id: Option<&str>) -> Result<Vec<(String, i64)>> {
        let sql = match owner_id {
            Some(_) => "SELECT status, COUNT(*) AS n FROM messages WHERE owner_id = ? GROUP BY status",
            None => "SELECT status, COUNT(*) AS n FROM messages GROUP BY status",
        };
        let mut query = sqlx::query(self.sql(sql));
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| Ok((row.try_get("status")?, row.try_get("n")?))).collect()
    }

    /// Messages created since `since`, by status and kind (all tenants with `None`).
    pub async fn message_counts_since(
        &self,
        owner_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<(String, String, i64)>> {
        let owner = if owner_id.is_some() { " AND owner_id = ?" } else { "" };
        let sql = format!(
            "SELECT status, kind, COUNT(*) AS n FROM messages WHERE created_at >= ?{owner} GROUP BY status, kind"
        );
        let mut query = sqlx::query(self.sql(&sql)).bind(since);
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| Ok((row.try_get("status")?, row.try_get("kind")?, row.try_get("n")?))).collect()
    }

    /// A session's messages created since `since`, per day (start of the UTC day in Unix ms)
    /// and status.
    pub async fn session_messages_per_day(
        &self,
        session_id: &str,
        since: i64,
    ) -> Result<Vec<(i64, String, i64)>> {
        let sql = "SELECT created_at - (created_at % 86400000) AS day, status, COUNT(*) AS n FROM messages \
                   WHERE session_id = ? AND created_at >= ? \
                   GROUP BY created_at - (created_at % 86400000), status ORDER BY day";
        let rows = sqlx::query(self.sql(sql))
            .bind(session_id)
            .bind(since)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("day")?, row.try_get("status")?, row.try_get("n")?))).collect()
    }

    /// Messages a session received since `since` (by the time they were sent), per day.
    pub async fn session_received_per_day(&self, session_id: &str, since: i64) -> Result<Vec<(i64, i64)>> {
        let sql = "SELECT sent_at - (sent_at % 86400000) AS day, COUNT(*) AS n FROM inbound_messages \
                   WHERE session_id = ? AND sent_at >= ? GROUP BY sent_at - (sent_at % 86400000) ORDER BY day";
        let rows = sqlx::query(self.sql(sql))
            .bind(session_id)
            .bind(since)
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("day")?, row.try_get("n")?))).collect()
    }

    /// Messages created per hour since `since`: (start of the hour in Unix ms, count).
    pub async fn messages_per_hour(&self, owner_id: Option<&str>, since: i64) -> Result<Vec<(i64, i64)>> {
        let owner = if owner_id.is_some() { " AND owner_id = ?" } else { "" };
        let sql = format!(
            "SELECT created_at - (created_at % 3600000) AS hour, COUNT(*) AS n FROM messages \
             WHERE created_at >= ?{owner} GROUP BY created_at - (created_at % 3600000) ORDER BY hour"
        );
        let mut query = sqlx::query(self.sql(&sql)).bind(since);
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| Ok((row.try_get("hour")?, row.try_get("n")?))).collect()
    }

    /// Webhook deliveries that gave up (dead letters).
    pub async fn dead_webhook_deliveries(&self, owner_id: Option<&str>) -> Result<i64> {
        let sql = match owner_id {
            Some(_) => {
                "SELECT COUNT(*) AS n FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.status = 'dead' AND w.owner_id = ?"
            }
            None => "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'dead'",
        };
        let mut query = sqlx::query(self.sql(sql));
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        Ok(query.fetch_one(&mut *self.reader().await?).await?.try_get("n")?)
    }

    /// Sessions by status, all tenants.
    pub async fn session_counts(&self) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT status, COUNT(*) AS n FROM sessions GROUP BY status";
        let rows = sqlx::query(self.sql(sql)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| Ok((row.try_get("status")?, row.try_get("n")?))).collect()
    }

    /// Messages queued or being sent, all tenants. Read session by session through the queue
    /// index, so the cost follows the backlog, not the history.
    pub async fn outbox_depth(&self) -> Result<i64> {
        Ok(sqlx::query(self.sql(OUTBOX_DEPTH)).fetch_one(&mut *self.reader().await?).await?.try_get("n")?)
    }

    /// Per session with queued messages: (session id, the oldest one's creation time).
    pub async fn oldest_queued_per_session(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(self.sql(OLDEST_QUEUED)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| Ok((row.try_get("session_id")?, row.try_get("since")?))).collect()
    }

    /// Per webhook with dead letters: (webhook id, owner, URL, how many).
    pub async fn dead_deliveries_per_webhook(&self) -> Result<Vec<(String, String, String, i64)>> {
        let sql = "SELECT w.id AS id, w.owner_id AS owner_id, w.url AS url, COUNT(*) AS n FROM webhooks w \
                   JOIN webhook_deliveries d ON d.webhook_id = w.id WHERE d.status = 'dead' \
                   GROUP BY w.id, w.owner_id, w.url";
        let rows = sqlx::query(self.sql(sql)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter()
            .map(|row| {
                Ok((row.try_get("id")?, row.try_get("owner_id")?, row.try_get("url")?, row.try_get("n")?))
            })
            .collect()
    }

    /// When the oldest webhook delivery still to be made was created (Unix ms), if any.
    pub async fn oldest_pending_webhook_delivery(&self) -> Result<Option<i64>> {
        let sql = "SELECT MIN(d.created_at) AS since FROM webhooks w \
                   JOIN webhook_deliveries d ON d.webhook_id = w.id WHERE d.status = 'pending'";
        Ok(sqlx::query(self.sql(sql)).fetch_one(&mut *self.reader().await?).await?.try_get("since")?)
    }
}

// Read session by session through the queue's index, whose condition they repeat
// (`partial_indexes.rs`).
pub(crate) const OUTBOX_DEPTH: &str = "SELECT COUNT(*) AS n FROM sessions s JOIN messages m ON m.session_id = s.id \
     WHERE m.status IN ('queued', 'sending')";
pub(crate) const OLDEST_QUEUED: &str = "SELECT m.session_id AS session_id, MIN(m.created_at) AS since \
     FROM sessions s JOIN messages m ON m.session_id = s.id \
     WHERE m.status IN ('queued', 'sending') AND m.status = 'queued' GROUP BY m.session_id";
