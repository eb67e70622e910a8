//! The dispatcher's queue: claiming the next messages, leases, releases and moves between pool sessions.

use sqlx::Row;
use wagate_core::{MessageStatus, SessionId};

use super::{COLUMNS, Claim, MessageRecord, from_row};
use crate::batch::InList;
use crate::{Dialect, Fence, Result, Store, now_ms};

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
        let sql = claim_statement(limit);
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
        let claimed = if self.dialect == Dialect::Sqlite && batch[0].attempts == 0 {
            self.claim_in_one_statement(&ids, fence, now, lease_until).await?
        } else {
            self.claim_in_transaction(&ids, batch[0].attempts > 0, fence, now, lease_until).await?
        };
        if !claimed {
            return Ok(Claim::InFlight); // another worker was faster
        }
        let drained = batch.len() == rows.len() && rows.len() < limit.max(1);
        Ok(Claim::Messages {
            drained,
            batch: batch
                .into_iter()
                .map(|message| MessageRecord {
                    status: MessageStatus::Sending,
                    attempts: message.attempts + 1,
                    updated_at: now,
                    claimed_at: message.claimed_at.or(Some(now)),
                    ..message
                })
                .collect(),
        })
    }

    /// The claim's `UPDATE` of `ids`, to which `condition` adds.
    fn claim_sql(&self, ids: &InList<'_, &str>, condition: &str) -> sqlx::AssertSqlSafe<String> {
        self.sql(&format!(
            "UPDATE messages SET status = 'sending', lease_until = ?, attempts = attempts + 1, updated_at = ?, \
             claimed_at = COALESCE(claimed_at, ?) \
             WHERE id IN ({}) AND status IN ('queued', 'sending') AND (lease_until IS NULL OR lease_until <= ?){condition}",
            ids.marks()
        ))
    }

    /// Claims `ids` with a check of the fence in one transaction that keeps the lease from
    /// changing hands until it commits; a retried head gets a line of its own in the history
    /// (a first attempt's is the row's `claimed_at`). False when another worker was faster.
    async fn claim_in_transaction(
        &self,
        ids: &[&str],
        head_is_retry: bool,
        fence: &Fence,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let list = InList::new(ids);
        let sql = self.claim_sql(&list, "");
        let claim = sqlx::query(sql).bind(lease_until).bind(now).bind(now);
        let claim = list.bind(claim).bind(now);
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        self.check_fence(&mut tx, fence, now).await?;
        if claim.execute(&mut *tx).await?.rows_affected() != ids.len() as u64 {
            return Ok(false); // the transaction rolls back
        }
        if head_is_retry {
            self.insert_event(&mut *tx, ids[0], MessageStatus::Sending, None, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// SQLite, first attempts only: the claim and the fence's check in one statement, without a
    /// transaction around it (one statement is atomic, and SQLite writes one at a time, so the
    /// lease cannot change hands in between). This is the busiest write of the outbox, and a
    /// transaction would be three more round trips to the database's thread. False when another
    /// worker was faster; then what this claim took of `ids` is given back.
    async fn claim_in_one_statement(
        &self,
        ids: &[&str],
        fence: &Fence,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        let list = InList::new(ids);
        let sql = self.claim_sql(
            &list,
            " AND EXISTS (SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ?)",
        );
        let claim = sqlx::query(sql).bind(lease_until).bind(now).bind(now);
        let claim =
            list.bind(claim).bind(now).bind(&fence.lease).bind(&fence.holder).bind(fence.epoch).bind(now);
        let mut connection = self.writer().await?;
        let claimed = claim.execute(&mut *connection).await?.rows_affected();
        if claimed == ids.len() as u64 {
            return Ok(true);
        }
        if claimed == 0 {
            self.check_fence(&mut connection, fence, now).await?;
            return Ok(false);
        }
        drop(connection);
        self.release_claimed(ids, Some(lease_until)).await?;
        Ok(false)
    }

    /// Gives claimed first attempts back to the queue unsent (the rest of a batch whose earlier
    /// message could not go): as if they had never been claimed.
    pub async fn release_messages(&self, ids: &[&str]) -> Result<()> {
        self.release_claimed(ids, None).await
    }

    /// Releases `ids` as [`Store::release_messages`] does; with `lease_until`, only those leased
    /// until then (one claim's).
    async fn release_claimed(&self, ids: &[&str], lease_until: Option<i64>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = InList::new(ids);
        let one_claim = if lease_until.is_some() { " AND lease_until = ?" } else { "" };
        // `claimed_at` first: MySQL assigns left to right, with `attempts` still the old value.
        let release = sqlx::query(self.sql(&format!(
            "UPDATE messages SET claimed_at = CASE WHEN attempts <= 1 THEN NULL ELSE claimed_at END, \
             attempts = attempts - 1, status = 'queued', lease_until = NULL, updated_at = ? \
             WHERE id IN ({}) AND status = 'sending'{one_claim}",
            ids.marks()
        )))
        .bind(now_ms());
        let release = ids.bind(release);
        let release = match lease_until {
            Some(until) => release.bind(until),
            None => release,
        };
        release.execute(&mut *self.writer().await?).await?;
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
        let done =
            sqlx::query(self.sql(RELEASE_ALL)).bind(now_ms()).execute(&mut *self.writer().await?).await?;
        Ok(done.rows_affected())
    }

    /// The session's messages left `sending` by the node that ran it before (which stopped
    /// before its lease ended) go back to the queue.
    pub async fn release_session_message_leases(&self, session: &SessionId) -> Result<u64> {
        let done = sqlx::query(self.sql(RELEASE_SESSION))
            .bind(now_ms())
            .bind(session.as_str())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Moves the queued pool messages of `from` to `to` (when `from` cannot send).
    pub async fn move_pool_messages(&self, from: &SessionId, to: &SessionId) -> Result<u64> {
        let done = sqlx::query(self.sql(MOVE_POOL))
            .bind(to.as_str())
            .bind(now_ms())
            .bind(from.as_str())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }
}

/// The next messages of a session's queue (one `?`: the session). The limit is written out:
/// SQLite plans `LIMIT ?` with its bound value and so prepares the statement again every time
/// one is bound. Dispatchers use one or two limits.
pub(crate) fn claim_statement(limit: usize) -> String {
    format!(
        "SELECT {COLUMNS}, lease_until FROM messages WHERE session_id = ? AND status IN ('queued', 'sending') \
         ORDER BY priority DESC, seq ASC LIMIT {}",
        limit.max(1)
    )
}

// Statements on the queue say `status IN ('queued', 'sending')` even when they want one of the
// two: that is the condition of the queue's index (`partial_indexes.rs`), which holds no other
// message, and a database uses it only for a query that says so.
const RELEASE_ALL: &str = "UPDATE messages SET status = 'queued', lease_until = NULL, updated_at = ? \
     WHERE status IN ('queued', 'sending') AND status = 'sending'";
const RELEASE_SESSION: &str = "UPDATE messages SET status = 'queued', lease_until = NULL, updated_at = ? \
     WHERE session_id = ? AND status IN ('queued', 'sending') AND status = 'sending'";
const MOVE_POOL: &str = "UPDATE messages SET session_id = ?, updated_at = ? \
     WHERE session_id = ? AND status IN ('queued', 'sending') AND status = 'queued' AND pool IS NOT NULL";

/// The statements that look for messages in the queue other than the claim.
#[cfg(test)]
pub(crate) const QUEUE_STATEMENTS: [&str; 3] = [RELEASE_ALL, RELEASE_SESSION, MOVE_POOL];

#[cfg(test)]
mod tests {
    use wagate_core::{EngineKind, MessageContent, Role};

    use super::*;
    use crate::{NewMessage, NewSession, NewUser, StoreError};

    async fn store_with_queue(ids: &[&str]) -> (tempfile::TempDir, Store, SessionId, Fence) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let owner =
            store.insert_user(NewUser { username: "u", password_hash: "h", role: Role::User }).await.unwrap();
        let owner = owner.id.as_str();
        let session = SessionId::parse("s1").unwrap();
        let new = NewSession {
            id: &session,
            owner_id: owner,
            name: "s",
            engine: EngineKind::Sandbox,
            webhook_url: None,
        };
        store.insert_session(new).await.unwrap();
        let text = MessageContent::Text { body: "hi".into(), mentions: vec![], reply_to: None };
        for (seq, id) in ids.iter().enumerate() {
            let message = NewMessage {
                id,
                owner_id: owner,
                session_id: &session,
                pool: None,
                seq: seq as i64,
                priority: 0,
                recipient: "+6281234560001",
                content: &text,
                expires_at: None,
                idempotency_key: None,
                request_hash: None,
            };
            store.insert_message(message).await.unwrap();
        }
        let now = now_ms();
        let held = store.take_lease("session:s1", "node-a", now, now + 60_000).await.unwrap().unwrap();
        let fence = Fence { lease: "session:s1".into(), holder: "node-a".into(), epoch: held.epoch };
        (dir, store, session, fence)
    }

    #[tokio::test]
    async fn a_claim_says_whether_it_took_all_the_queue_held() {
        let (_dir, store, session, fence) = store_with_queue(&["a", "b", "c"]).await;
        let now = now_ms();
        let claim = store.claim_next_messages(&session, &fence, now, now + 60_000, 2).await.unwrap();
        assert!(
            matches!(claim, Claim::Messages { ref batch, drained: false } if batch.len() == 2),
            "{claim:?}"
        );
        store.release_messages(&["a", "b"]).await.unwrap();
        let claim = store.claim_next_messages(&session, &fence, now, now + 60_000, 8).await.unwrap();
        assert!(
            matches!(claim, Claim::Messages { ref batch, drained: true } if batch.len() == 3),
            "{claim:?}"
        );
    }

    #[tokio::test]
    async fn a_one_statement_claim_that_lost_part_of_its_batch_gives_back_what_it_took() {
        let (_dir, store, session, fence) = store_with_queue(&["a", "b"]).await;
        let now = now_ms();
        // Another worker took "a" since the batch was read.
        let claim = store.claim_next_messages(&session, &fence, now, now + 60_000, 1).await.unwrap();
        assert!(matches!(claim, Claim::Messages { ref batch, .. } if batch[0].id == "a"), "{claim:?}");

        assert!(!store.claim_in_one_statement(&["a", "b"], &fence, now, now + 30_000).await.unwrap());
        let a = store.message("a").await.unwrap().unwrap();
        let b = store.message("b").await.unwrap().unwrap();
        assert_eq!((a.status, a.attempts), (MessageStatus::Sending, 1), "the other worker's claim stands");
        assert_eq!((b.status, b.attempts, b.claimed_at), (MessageStatus::Queued, 0, None), "given back");

        // Nothing taken and the lease lost: the fence's refusal, not a lost race.
        store.release_lease("session:s1", "node-a", now).await.unwrap();
        let refused = store.claim_in_one_statement(&["b"], &fence, now, now + 30_000).await;
        assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
        assert_eq!(store.message("b").await.unwrap().unwrap().status, MessageStatus::Queued);
    }
}
