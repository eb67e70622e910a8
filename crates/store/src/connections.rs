//! The connections a [`crate::Store`] lends to its statements.
//!
//! PostgreSQL and MySQL use sqlx's pool, which checks a connection with a round trip whenever
//! one comes back to it: a server can drop a connection at any time. An embedded SQLite
//! connection cannot be dropped, and that check (a message to the connection's thread and
//! back) cost as much as the statement it followed, so SQLite's few connections are opened
//! once and lent without it. Statements on one connection run in the order they were sent,
//! so one that a cancelled caller left behind (or the rollback of its transaction) finishes
//! before the next borrower's first statement.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a statement waits for a free connection before giving up.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub(crate) enum Connections {
    Pool(AnyPool),
    Held(Arc<Held>),
}

/// Connections opened once; each is lent to one borrower at a time.
pub(crate) struct Held {
    idle: Mutex<Vec<AnyConnection>>,
    free: Semaphore,
}

/// A connection on loan; it goes back when dropped.
pub(crate) enum Lent<'a> {
    Pooled(PoolConnection<Any>),
    Held { connection: Option<AnyConnection>, from: &'a Held, _permit: SemaphorePermit<'a> },
}

impl Connections {
    pub(crate) fn held(connections: Vec<AnyConnection>) -> Connections {
        let free = Semaphore::new(connections.len());
        Connections::Held(Arc::new(Held { idle: Mutex::new(connections), free }))
    }

    /// A free connection, waiting up to [`ACQUIRE_TIMEOUT`] for one.
    pub(crate) async fn lend(&self) -> Result<Lent<'_>, sqlx::Error> {
        match self {
            Connections::Pool(pool) => Ok(Lent::Pooled(pool.acquire().await?)),
            Connections::Held(held) => {
                let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, held.free.acquire())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?
                    .map_err(|_| sqlx::Error::PoolClosed)?;
                let connection = held.idle().pop().ok_or(sqlx::Error::PoolClosed)?;
                Ok(Lent::Held { connection: Some(connection), from: held, _permit: permit })
            }
        }
    }

    /// Closes the idle connections and refuses new loans; a connection still on loan closes
    /// when its borrower is done with it.
    pub(crate) async fn close(&self) {
        match self {
            Connections::Pool(pool) => pool.close().await,
            Connections::Held(held) => {
                held.free.close();
                let idle = std::mem::take(&mut *held.idle());
                for connection in idle {
                    let _ = sqlx::Connection::close(connection).await;
                }
            }
        }
    }
}

impl Lent<'_> {
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>, sqlx::Error> {
        sqlx::Connection::begin(&mut **self).await
    }
}

impl Held {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<AnyConnection>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Deref for Lent<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Lent::Pooled(connection) => connection,
            Lent::Held { connection, .. } => {
                connection.as_ref().expect("a lent connection is present until dropped")
            }
        }
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Lent::Pooled(connection) => connection,
            Lent::Held { connection, .. } => {
                connection.as_mut().expect("a lent connection is present until dropped")
            }
        }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        // The connection is back before the permit (a field, dropped after this) lets the next
        // borrower in.
        if let Lent::Held { connection, from, .. } = self
            && let Some(connection) = connection.take()
            && !from.free.is_closed()
        {
            from.idle().push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Row};

    use super::*;

    async fn memory_connection() -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect("sqlite::memory:").await.unwrap()
    }

    #[tokio::test]
    async fn a_held_connection_is_lent_to_one_borrower_at_a_time() {
        let connections = Connections::held(vec![memory_connection().await]);
        let mut first = connections.lend().await.unwrap();
        sqlx::query("CREATE TEMP TABLE t (n INTEGER)").execute(&mut *first).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), connections.lend()).await;
        assert!(waiting.is_err(), "the only connection was lent twice");
        drop(first);
        // The same connection comes back: it still has the temporary table.
        let mut again = connections.lend().await.unwrap();
        let rows = sqlx::query("SELECT COUNT(*) FROM t").fetch_one(&mut *again).await.unwrap();
        assert_eq!(rows.try_get::<i64, _>(0).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_the_next_loan() {
        let connections = Connections::held(vec![memory_connection().await]);
        {
            let mut connection = connections.lend().await.unwrap();
            sqlx::query("CREATE TEMP TABLE t (n INTEGER)").execute(&mut *connection).await.unwrap();
            let mut tx = connection.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
            // Dropped without commit, as when the caller's future is cancelled.
        }
        let mut connection = connections.lend().await.unwrap();
        let row = sqlx::query("SELECT COUNT(*) FROM t").fetch_one(&mut *connection).await.unwrap();
        assert_eq!(row.try_get::<i64, _>(0).unwrap(), 0);
        let mut tx = connection.begin().await.expect("no transaction is left open");
        sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn a_closed_set_lends_nothing() {
        let connections = Connections::held(vec![memory_connection().await]);
        connections.close().await;
        assert!(matches!(connections.lend().await, Err(sqlx::Error::PoolClosed)));
    }
}
