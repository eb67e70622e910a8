//! Webhook endpoints, events and their deliveries.

use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::SessionId;

use crate::{CacheTopic, Result, Store, StoreError, now_ms};

#[derive(Debug, Clone)]
pub struct WebhookRecord {
    pub id: String,
    pub owner_id: String,
    pub session_id: Option<SessionId>,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub enabled: bool,
    pub from_session_url: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl WebhookRecord {
    /// Whether this endpoint wants `event_type` for `session` (`*` and `prefix.*` match).
    pub fn wants(&self, event_type: &str, session: Option<&str>) -> bool {
        let session_ok = match (&self.session_id, session) {
            (None, _) => true,
            (Some(own), Some(session)) => own.as_str() == session,
            (Some(_), None) => false,
        };
        let type_ok = self.events.iter().any(|pattern| {
            pattern == "*"
                || pattern == event_type
                || pattern
                    .strip_suffix(".*")
                    .is_some_and(|prefix| event_type.starts_with(&format!("{prefix}.")))
        });
        self.enabled && session_ok && type_ok
    }
}

pub struct NewWebhook<'a> {
    pub owner_id: &'a str,
    pub session_id: Option<&'a SessionId>,
    pub url: &'a str,
    pub events: &'a [String],
    pub secret: &'a str,
    pub from_session_url: bool,
}

#[derive(Debug, Clone)]
pub struct WebhookEventRecord {
    pub id: String,
    pub owner_id: String,
    pub session_id: Option<String>,
    pub event_type: String,
    pub payload: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: i64,
}

const COLUMNS: &str =
    "id, owner_id, session_id, url, events, secret, enabled, from_session_url, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<WebhookRecord> {
    let session: Option<String> = row.try_get("session_id")?;
    let events: String = row.try_get("events")?;
    Ok(WebhookRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        session_id: session
            .map(|s| {
                SessionId::parse(&s)
                    .map_err(|_| StoreError::Corrupt { column: "webhooks.session_id", value: s })
            })
            .transpose()?,
        url: row.try_get("url")?,
        events: events.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
        secret: row.try_get("secret")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        from_session_url: row.try_get::<i64, _>("from_session_url")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event_id, e.type, e.payload, d.status, d.attempts, \
                                d.next_attempt_at, d.last_status, d.last_error, d.created_at, d.finished_at";

fn delivery_from_row(row: &AnyRow) -> Result<DeliveryRecord> {
    Ok(DeliveryRecord {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("type")?,
        payload: row.try_get("payload")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    pub async fn insert_webhook(&self, new: NewWebhook<'_>) -> Result<WebhookRecord> {
        let id = wagate_core::new_id();
        let now = now_ms();
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO webhooks (id, owner_id, session_id, url, events, secret, enabled, from_session_url, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        ))
        .bind(&id)
        .bind(new.owner_id)
        .bind(new.session_id.map(|s| s.as_str().to_owned()))
        .bind(new.url)
        .bind(new.events.join(","))
        .bind(new.secret)
        .bind(i64::from(new.from_session_url))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.raise_version(&mut tx, CacheTopic::Webhooks).await?;
        tx.commit().await?;
        drop(connection);
        Ok(self.webhook(&id).await?.expect("just inserted"))
    }

    pub async fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = ?");
        let row = sqlx::query(self.sql(&sql)).bind(id).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Endpoints of one owner, or of everyone with `None`; oldest first.
    pub async fn webhooks(&self, owner_id: Option<&str>) -> Result<Vec<WebhookRecord>> {
        let rows = match owner_id {
            Some(owner) => {
                let sql =
                    format!("SELECT {COLUMNS} FROM webhooks WHERE owner_id = ? ORDER BY created_at, id");
                sqlx::query(self.sql(&sql)).bind(owner).fetch_all(&mut *self.reader().await?).await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id");
                sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    pub async fn update_webhook(
        &self,
        id: &str,
        url: &str,
        events: &[String],
        enabled: bool,
    ) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done = sqlx::query(
            self.sql("UPDATE webhooks SET url = ?, events = ?, enabled = ?, updated_at = ? WHERE id = ?"),
        )
        .bind(url)
        .bind(events.join(","))
        .bind(i64::from(enabled))
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.raise_version(&mut tx, CacheTopic::Webhooks).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the endpoint and its pending deliveries.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM webhook_deliveries WHERE webhook_id = ? AND status = 'pending'"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done =
            sqlx::query(self.sql("DELETE FROM webhooks WHERE id = ?")).bind(id).execute(&mut *tx).await?;
        self.raise_version(&mut tx, CacheTopic::Webhooks).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records an event and a pending delivery for each endpoint, atomically.
    pub async fn insert_webhook_event(
        &self,
        event: &WebhookEventRecord,
        endpoints: &[&str],
        seq: i64,
    ) -> Result<()> {
        self.retry_deadlocks(|| self.insert_webhook_event_once(event, endpoints, seq)).await
    }

    async fn insert_webhook_event_once(
        &self,
        event: &WebhookEventRecord,
        endpoints: &[&str],
        seq: i64,
    ) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO webhook_events (id, owner_id, session_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(&event.id)
        .bind(&event.owner_id)
        .bind(&event.session_id)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(event.created_at)
        .execute(&mut *tx)
        .await?;
        for endpoint in endpoints {
            self.insert_delivery(&mut tx, endpoint, &event.id, seq, event.created_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_delivery(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        webhook_id: &str,
        event_id: &str,
        seq: i64,
        now: i64,
    ) -> Result<String> {
        let id = format!("msg_{}", wagate_core::new_id().replace('-', ""));
        sqlx::query(self.sql(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_id, seq, status, attempts, next_attempt_at, created_at) \
             VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
        ))
        .bind(&id)
        .bind(webhook_id)
        .bind(event_id)
        .bind(seq)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    /// Queues the given events again for one endpoint (replay); returns how many.
    pub async fn replay_webhook_events(
        &self,
        webhook_id: &str,
        event_ids: &[String],
        seq: i64,
    ) -> Result<usize> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let now = now_ms();
        for (n, event_id) in event_ids.iter().enumerate() {
            self.insert_delivery(&mut tx, webhook_id, event_id, seq + n as i64, now).await?;
        }
        tx.commit().await?;
        Ok(event_ids.len())
    }

    pub async fn webhook_event(&self, id: &str) -> Result<Option<WebhookEventRecord>> {
        let row = sqlx::query(self.sql(
            "SELECT id, owner_id, session_id, type, payload, created_at FROM webhook_events WHERE id = ?",
        ))
        .bind(id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.map(|row| {
            Ok(WebhookEventRecord {
                id: row.try_get("id")?,
                owner_id: row.try_get("owner_id")?,
                session_id: row.try_get("session_id")?,
                event_type: row.try_get("type")?,
                payload: row.try_get("payload")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    /// Ids of the events once delivered (or attempted) to this endpoint in `[since, until)`.
    pub async fn webhook_event_ids(&self, webhook_id: &str, since: i64, until: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(self.sql(
            "SELECT DISTINCT e.id, e.created_at FROM webhook_events e JOIN webhook_deliveries d ON d.event_id = e.id \
             WHERE d.webhook_id = ? AND e.created_at >= ? AND e.created_at < ? ORDER BY e.created_at, e.id",
        ))
        .bind(webhook_id)
        .bind(since)
        .bind(until)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// The oldest pending delivery of every endpoint that has one: deliveries to one endpoint
    /// go strictly in order, so only heads are ever attempted.
    pub async fn webhook_delivery_heads(&self) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.status = 'pending' AND d.seq = (SELECT MIN(seq) FROM webhook_deliveries p \
             WHERE p.webhook_id = d.webhook_id AND p.status = 'pending')"
        );
        let rows = sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Records one attempt and the delivery's new state.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_webhook_attempt(
        &self,
        delivery: &DeliveryRecord,
        status_code: Option<u16>,
        error: Option<&str>,
        duration_ms: i64,
        outcome: &str,
        next_attempt_at: i64,
    ) -> Result<()> {
        self.retry_deadlocks(|| {
            self.record_webhook_attempt_once(
                delivery,
                status_code,
                error,
                duration_ms,
                outcome,
                next_attempt_at,
            )
        })
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_webhook_attempt_once(
        &self,
        delivery: &DeliveryRecord,
        status_code: Option<u16>,
        error: Option<&str>,
        duration_ms: i64,
        outcome: &str,
        next_attempt_at: i64,
    ) -> Result<()> {
        let now = now_ms();
        let attempt = delivery.attempts + 1;
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO webhook_attempts (id, delivery_id, attempt, status_code, error, duration_ms, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(wagate_core::new_id())
        .bind(&delivery.id)
        .bind(attempt)
        .bind(status_code.map(i64::from))
        .bind(error)
        .bind(duration_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let finished = (outcome != "pending").then_some(now);
        sqlx::query(self.sql(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status = ?, last_error = ?, \
             finished_at = ? WHERE id = ?",
        ))
        .bind(outcome)
        .bind(attempt)
        .bind(next_attempt_at)
        .bind(status_code.map(i64::from))
        .bind(error)
        .bind(finished)
        .bind(&delivery.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>> {
        let (filter, status) = match status {
            Some(status) => ("AND d.status = ?", Some(status.to_owned())),
            None => ("", None),
        };
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.webhook_id = ? {filter} ORDER BY d.seq DESC LIMIT ?"
        );
        let mut query = sqlx::query(self.sql(&sql)).bind(webhook_id);
        if let Some(status) = status {
            query = query.bind(status);
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    pub async fn webhook_attempts(&self, delivery_id: &str) -> Result<Vec<AttemptRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT attempt, status_code, error, duration_ms, created_at FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt",
        ))
        .bind(delivery_id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AttemptRecord {
                    attempt: row.try_get("attempt")?,
                    status_code: row.try_get("status_code")?,
                    error: row.try_get("error")?,
                    duration_ms: row.try_get("duration_ms")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Removes the endpoints bound to a session (`only_from_url`: just the one its
    /// `webhook_url` created).
    pub async fn delete_session_webhooks(&self, session: &SessionId, only_from_url: bool) -> Result<u64> {
        let extra = if only_from_url { " AND from_session_url = 1" } else { "" };
        let ids: Vec<String> =
            sqlx::query(self.sql(&format!("SELECT id FROM webhooks WHERE session_id = ?{extra}")))
                .bind(session.as_str())
                .fetch_all(&mut *self.reader().await?)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
        for id in &ids {
            self.delete_webhook(id).await?;
        }
        Ok(ids.len() as u64)
    }
}
