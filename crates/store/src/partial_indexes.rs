//! Indexes that leave out the rows they are never asked for, where the database can (SQLite,
//! PostgreSQL; MySQL has no partial indexes and keeps the full ones of the migrations). Each
//! replaces an index over every message, which grew with the history and was written for
//! messages it never serves:
//!
//! - `messages_waiting` (was `messages_queue`): the messages still `queued` or `sending`,
//!   keyed in the claim's order (`priority DESC, seq`). It stays as small as the queue, a
//!   claim reads the head of the queue instead of sorting all of it, and a message leaves it
//!   when sent instead of moving in it at every receipt (`sent`, `delivered`, `read`).
//! - `messages_idempotency_keys` (was `messages_idempotency`): only messages sent with an
//!   idempotency key, which are the only ones it is asked for.
//! - `messages_session_sent_at` (was `messages_session_sent`): only messages that were sent,
//!   the only ones a sending cap counts.
//!
//! A database uses a partial index only for a query that says it wants nothing the index
//! leaves out, so statements meant for `messages_waiting` repeat its condition word for word
//! ([`WAITING`]); the other two are implied by any comparison of their column.

use crate::dialect::Dialect;
use crate::{Result, Store};

/// The statuses of a message still waiting: the condition of the queue's index.
pub(crate) const WAITING: &str = "status IN ('queued', 'sending')";

/// (the full index of the migrations, the partial one that replaces it)
const REPLACEMENTS: [(&str, &str); 3] = [
    (
        "messages_queue",
        "CREATE INDEX IF NOT EXISTS messages_waiting ON messages (session_id, priority DESC, seq) \
         WHERE status IN ('queued', 'sending')",
    ),
    (
        "messages_idempotency",
        "CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency_keys ON messages (owner_id, idempotency_key) \
         WHERE idempotency_key IS NOT NULL",
    ),
    (
        "messages_session_sent",
        "CREATE INDEX IF NOT EXISTS messages_session_sent_at ON messages (session_id, sent_at) \
         WHERE sent_at IS NOT NULL",
    ),
];

impl Store {
    /// Replaces the full indexes with the partial ones (once; a no-op afterwards). Each new
    /// index is made before the old one goes, so no query is ever without one.
    pub(crate) async fn narrow_indexes(&self) -> Result<()> {
        if self.dialect == Dialect::MySql {
            return Ok(());
        }
        for (full, partial) in REPLACEMENTS {
            self.schema_change(partial.to_owned()).await?;
            self.schema_change(format!("DROP INDEX IF EXISTS {full}")).await?;
        }
        Ok(())
    }

    /// Runs a schema change that another node starting at the same moment may be making too:
    /// PostgreSQL can report that race as an error even with `IF [NOT] EXISTS`, and a second
    /// try then finds the work done.
    async fn schema_change(&self, sql: String) -> Result<()> {
        let run = || async {
            let mut connection = self.writer().await?;
            sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(&mut *connection).await?;
            Ok::<_, crate::StoreError>(())
        };
        match run().await {
            Ok(()) => Ok(()),
            Err(err) => {
                tracing::debug!(error = %err, sql, "schema change raced another node; trying again");
                run().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_statements_repeat_the_index_condition() {
        assert!(REPLACEMENTS[0].1.ends_with(WAITING), "{}", REPLACEMENTS[0].1);
    }
}
