//! The queue's index holds only the messages still waiting, where the database can leave rows
//! out of an index (SQLite, PostgreSQL). Migration `0002` made it over every message, so it
//! grew with the history and every message moved in it four times after it was sent
//! (`sent`, `delivered`, `read`); held to what waits, it stays as small as the queue. Its key
//! is the claim's order (`priority DESC, seq`), so a claim reads the first messages of the
//! queue instead of sorting all of it. MySQL has no partial indexes and keeps the full one
//! (`messages_queue`).

use crate::dialect::Dialect;
use crate::{Result, Store};

/// The statuses of a message still waiting: the condition of the index, which every statement
/// meant to use it repeats word for word.
pub(crate) const WAITING: &str = "status IN ('queued', 'sending')";

impl Store {
    /// Replaces the full queue index with `messages_waiting` (once; a no-op afterwards). The
    /// new index is made before the old one goes, so the queue is never without one.
    pub(crate) async fn narrow_queue_index(&self) -> Result<()> {
        if self.dialect == Dialect::MySql {
            return Ok(());
        }
        let create = format!(
            "CREATE INDEX IF NOT EXISTS messages_waiting ON messages (session_id, priority DESC, seq) WHERE {WAITING}"
        );
        self.schema_change(create).await?;
        self.schema_change("DROP INDEX IF EXISTS messages_queue".to_owned()).await
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
