//! The dispatcher's queue: claiming the next messages, leases, releases and moves between pool sessions.

use sqlx::Row;
use wagate_core::{MessageStatus, SessionId};

use super::{COLUMNS, Claim, MessageRecord, from_row};
use crate::batch::InList;
use crate::{Fence, Result, Store, now_ms};

impl Store {
    /// Takes the session's next messages in order (highest priority first, then oldest), at
    /// most `limit`, leasing them until `lease_until`. Messages are never overtaken: a head that
    /// must wait holds the rest, and a batch ends before the first message that must wait. Only
    /// the head may be a retry; the others are first attempts, so a batch released unsent (see
    /// [`Store::release_messages`]) leaves no trace in their history. `fence`: the session's
    /// lease as the claiming node holds it; nothing is claimed once it lost it.
    pub async fn claim_next_messages(
        &self,
        session: &SessionId,
        fence: &Fence,
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
        self.check_fence(&mut tx, fence, now).await?;
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

    /// Keeps a message leased while its dispatcher paces it.
    pub async fn extend_message_lease(&self, id: &str, lease_until: i64) -> Result<()> {
        sqlx::query(self.sql("UPDATE messages SET lease_until = ? WHERE id = ? AND status = 'sending'"))
            .bind(lease_until)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
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

    /// The session's messages left `sending` by the node that ran it before (which stopped
    /// before its lease ended) go back to the queue.
    pub async fn release_session_message_leases(&self, session: &SessionId) -> Result<u64> {
        let done = sqlx::query(self.sql(
            "UPDATE messages SET status = 'queued', lease_until = NULL, updated_at = ? \
             WHERE session_id = ? AND status = 'sending'",
        ))
        .bind(now_ms())
        .bind(session.as_str())
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
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
