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

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use sqlx::{AnyConnection, Connection as _};
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
    /// How to open a replacement for a connection whose transaction state went astray.
    url: String,
    read_only: bool,
}

/// A connection on loan; it goes back when dropped.
pub(crate) enum Lent<'a> {
    Pooled(PoolConnection<Any>),
    Held { connection: Option<AnyConnection>, from: &'a Held, _permit: SemaphorePermit<'a> },
}

impl Connections {
    /// SQLite connections to `url`, opened with [`open_sqlite`] and `read_only` as given.
    pub(crate) fn held(connections: Vec<AnyConnection>, url: &str, read_only: bool) -> Connections {
        let free = Semaphore::new(connections.len());
        Connections::Held(Arc::new(Held {
            idle: Mutex::new(connections),
            free,
            url: url.to_owned(),
            read_only,
        }))
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
    /// Begins a transaction. On SQLite's writer it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads first and writes later (a fence check, then the
    /// write) would otherwise fail at once with `SQLITE_BUSY` when another process sharing the
    /// file wrote in between, where waiting for the lock is what is wanted.
    pub(crate) async fn begin(&mut self) -> Result<sqlx::Transaction<'_, Any>, sqlx::Error> {
        let mut immediate = false;
        if let Lent::Held { connection, from, .. } = self {
            let connection = connection.as_mut().expect("a lent connection is present until dropped");
            if sqlx::Connection::is_in_transaction(connection) {
                Held::repair(connection, from).await?;
            }
            immediate = !from.read_only;
        }
        if immediate {
            sqlx::Connection::begin_with(&mut **self, "BEGIN IMMEDIATE").await
        } else {
            sqlx::Connection::begin(&mut **self).await
        }
    }
}

impl Held {
    /// sqlx counts the transactions it opened on a connection and issues a `SAVEPOINT` instead
    /// of `BEGIN` while it counts one open. When SQLite ends a transaction by itself (it may
    /// roll back on `SQLITE_FULL` or an I/O error), the `ROLLBACK` that follows fails and the
    /// count stays at one: every later "transaction" on the connection would be a savepoint,
    /// and a savepoint rolled back leaves a transaction open that swallows whatever comes
    /// after it, answered as written but never committed. So before a transaction, a count
    /// above zero is checked: a rollback still queued by a dropped transaction is let through
    /// first, and if the count is still above zero, the connection is replaced (closing it
    /// rolls back anything it still holds).
    async fn repair(connection: &mut AnyConnection, from: &Held) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&mut *connection).await?;
        if !sqlx::Connection::is_in_transaction(connection) {
            return Ok(());
        }
        tracing::warn!("replacing a database connection whose transaction state went astray");
        let fresh = open_sqlite(&from.url, from.read_only).await?;
        let stale = std::mem::replace(connection, fresh);
        let _ = sqlx::Connection::close(stale).await;
        Ok(())
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<AnyConnection>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An embedded SQLite connection as the store uses it.
pub(crate) async fn open_sqlite(url: &str, read_only: bool) -> Result<AnyConnection, sqlx::Error> {
    let mut connection = AnyConnection::connect(url).await?;
    // With WAL, NORMAL survives any crash of the process (only a power cut can lose the last
    // commits) and avoids an fsync per commit.
    sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut connection).await?;
    if read_only {
        sqlx::query("PRAGMA query_only = ON").execute(&mut connection).await?;
        // A reader's page cache is emptied whenever a write happened since its last read (the
        // write-ahead log's rule), so under traffic it holds no more than one read's pages; at
        // SQLite's default size (2 MiB each) the readers' caches only grew the memory with the
        // database. Pages read again come from the system's file cache.
        sqlx::query("PRAGMA cache_size = -256").execute(&mut connection).await?;
    }
    Ok(connection)
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
        let connections = Connections::held(vec![memory_connection().await], "sqlite::memory:", false);
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
        let connections = Connections::held(vec![memory_connection().await], "sqlite::memory:", false);
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
    async fn a_transaction_sqlite_ended_by_itself_does_not_turn_later_ones_into_savepoints() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let connections = Connections::held(vec![open_sqlite(&url, false).await.unwrap()], &url, false);
        let mut checker = AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)").execute(&mut checker).await.unwrap();
        {
            // SQLite ends the transaction under sqlx's feet, as it may on SQLITE_FULL: sqlx's
            // COMMIT and its ROLLBACK both fail, and it still counts a transaction open.
            let mut connection = connections.lend().await.unwrap();
            let mut tx = connection.begin().await.unwrap();
            sqlx::query("COMMIT").execute(&mut *tx).await.unwrap();
            assert!(tx.commit().await.is_err());
        }
        {
            let mut connection = connections.lend().await.unwrap();
            let mut tx = connection.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)").execute(&mut *tx).await.unwrap();
            // Rolled back: with a savepoint instead of BEGIN, this would leave a transaction open.
        }
        {
            let mut connection = connections.lend().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (2)").execute(&mut *connection).await.unwrap();
        }
        let committed =
            sqlx::query("SELECT COUNT(*) FROM t WHERE n = 2").fetch_one(&mut checker).await.unwrap();
        assert_eq!(committed.try_get::<i64, _>(0).unwrap(), 1, "the write after the fault is committed");
        let rolled_back =
            sqlx::query("SELECT COUNT(*) FROM t WHERE n = 1").fetch_one(&mut checker).await.unwrap();
        assert_eq!(rolled_back.try_get::<i64, _>(0).unwrap(), 0);
    }

    #[tokio::test]
    async fn a_closed_set_lends_nothing() {
        let connections = Connections::held(vec![memory_connection().await], "sqlite::memory:", false);
        connections.close().await;
        assert!(matches!(connections.lend().await, Err(sqlx::Error::PoolClosed)));
    }
}
