//! wagate's database.
//!
//! One implementation for every supported database, through sqlx's `Any` driver. SQL is
//! written once with `?` placeholders and portable types; the few dialect differences live in
//! [`dialect`]. Migrations are embedded per dialect and run at start-up.

mod activity_log;
mod api_keys;
mod batch;
mod cache_versions;
mod cluster;
mod connections;
mod dialect;
mod engine_state;
mod error;
mod events;
mod filter;
mod inbound;
#[cfg(test)]
mod listing_plans;
mod messages;
mod otp;
mod partial_indexes;
mod rate_limits;
mod retention;
mod sandbox;
mod session_lists;
mod sessions;
mod settings;
mod snapshot;
mod stats;
mod users;
mod wakeups;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, Row};

pub use activity_log::{ActivityFilter, ActivityRecord};
pub use api_keys::{ApiKeyRecord, NewApiKey};
pub use cache_versions::CacheTopic;
pub use cluster::{Fence, Held, NodeRecord};
use connections::{ACQUIRE_TIMEOUT, Connections, Lent};
pub use dialect::Dialect;
pub use error::{Outage, StoreError};
pub use events::SessionEventRecord;
pub use inbound::{InboundFields, InboundRecord};
pub use messages::{Claim, Inserted, MessageEventRecord, MessageFilter, MessageRecord, NewMessage};
pub use otp::{NewCode, NewOtp, OtpFilter, OtpRecord, OtpTemplateRecord, PhoneFailures};
pub use retention::Retained;
pub use sessions::{LinkedAccount, NewSession, SessionRecord};
pub use snapshot::{is_sqlite_file, snapshot_sqlite};
pub use users::{NewUser, UserRecord};
pub use wakeups::WorkListener;
pub use webhooks::{AttemptRecord, DeliveryRecord, NewWebhook, WebhookEventRecord, WebhookRecord};

/// Read-only SQLite connections beside the writer.
const SQLITE_READERS: u32 = 4;
/// Connections kept for heartbeats and leases on a database server.
const LEASE_CONNECTIONS: u32 = 2;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Writes and transactions. On SQLite a single connection: SQLite has one writer anyway,
    /// and one connection never waits on its own lock.
    writers: Connections,
    /// Plain reads. On SQLite, separate read-only connections that (with WAL) run beside the
    /// writer and see everything it committed; elsewhere the same pool.
    readers: Connections,
    /// The cluster's own writes (node heartbeats, session leases): on a database server a
    /// small pool of their own, so that they never queue behind the traffic they keep alive;
    /// on SQLite the writer.
    leases: Connections,
    dialect: Dialect,
    session_lists: Arc<session_lists::SessionLists>,
    /// Where the database is, for connections of their own (PostgreSQL's listeners).
    url: Option<Arc<str>>,
}

impl Store {
    /// Connects to `url` (`sqlite://path`, `postgres://…`, `mysql://…`).
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        if dialect != Dialect::Sqlite {
            let pool = Connections::Pool(Self::pool(url, dialect.max_connections()).await?);
            let leases = Connections::Pool(Self::pool(url, LEASE_CONNECTIONS).await?);
            return Ok(Store {
                readers: pool.clone(),
                writers: pool,
                leases,
                dialect,
                session_lists: Default::default(),
                url: Some(url.into()),
            });
        }
        let url = if url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
        let mut writer = Self::sqlite_connection(&url, false).await?;
        // Lets retention give deleted rows' space back (`give_back_space`). It takes effect on a
        // new database only; an older one keeps its mode until a full `VACUUM`.
        sqlx::query("PRAGMA auto_vacuum = INCREMENTAL").execute(&mut writer).await?;
        // Persistent per database file: readers no longer block the writer.
        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut writer).await?;
        let mut readers = Vec::new();
        for _ in 0..SQLITE_READERS {
            readers.push(Self::sqlite_connection(&url, true).await?);
        }
        let writers = Connections::held(vec![writer], &url, false);
        Ok(Store {
            leases: writers.clone(),
            writers,
            readers: Connections::held(readers, &url, true),
            dialect,
            session_lists: Default::default(),
            url: None,
        })
    }

    async fn pool(url: &str, connections: u32) -> Result<sqlx::AnyPool> {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect { url: redact(url), source })
    }

    async fn sqlite_connection(url: &str, read_only: bool) -> Result<AnyConnection> {
        connections::open_sqlite(url, read_only)
            .await
            .map_err(|source| StoreError::Connect { url: redact(url), source })
    }

    /// A connection for writes and transactions.
    async fn writer(&self) -> Result<Lent<'_>> {
        Ok(self.writers.lend().await?)
    }

    /// A connection for the cluster's heartbeats and leases.
    async fn lease_writer(&self) -> Result<Lent<'_>> {
        Ok(self.leases.lend().await?)
    }

    /// A connection for plain reads.
    async fn reader(&self) -> Result<Lent<'_>> {
        Ok(self.readers.lend().await?)
    }

    /// The embedded SQLite database inside `data_dir`.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("wagate.db").display())
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        // The migrations use only types and statements all three databases share; the tables
        // that need a type they spell differently are made after them.
        let mut connection = self.writer().await?;
        sqlx::migrate!("./migrations").run(&mut *connection).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::VersionMissing(version) => StoreError::NewerSchema { version },
            other => StoreError::Migrate(other),
        })?;
        drop(connection);
        self.narrow_indexes().await?;
        self.create_engine_state_table().await?;
        self.create_sandbox_tables().await
    }

    /// Runs `sql`, a `CREATE TABLE IF NOT EXISTS` of `table`, for a table the migrations leave
    /// out because the three databases spell part of it differently.
    async fn create_table(&self, table: &str, sql: String) -> Result<()> {
        let created = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *self.writer().await?).await;
        match created {
            Ok(_) => Ok(()),
            // Another node starting at the same moment created it first (PostgreSQL reports
            // the race as a duplicate type even with IF NOT EXISTS).
            Err(err) if self.table_exists(table).await => {
                tracing::debug!(error = %err, table, "created by another node");
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn table_exists(&self, table: &str) -> bool {
        let sql = format!("SELECT 1 FROM {table} WHERE 1 = 0");
        match self.reader().await {
            Ok(mut connection) => {
                sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(&mut *connection).await.is_ok()
            }
            Err(_) => false,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        let row = sqlx::query("SELECT 1").fetch_one(&mut *self.reader().await?).await?;
        let one: i64 = row.try_get(0).or_else(|_| row.try_get::<i32, _>(0).map(i64::from))?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.writers.close().await;
    }

    /// Runs `write` again when the database ended it as a deadlock's victim (MariaDB/MySQL
    /// pick one whenever two writers lock index ranges in opposite orders; PostgreSQL rarely):
    /// a few times, at once, as those databases advise.
    pub(crate) async fn retry_deadlocks<T, F, Fut>(&self, mut write: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut tries = 0;
        loop {
            match write().await {
                Err(err) if err.is_deadlock() && tries < 4 => {
                    tries += 1;
                    tracing::debug!(tries, "write chosen as a deadlock's victim: run again");
                }
                done => return done,
            }
        }
    }

    /// SQL written with `?` placeholders, in this database's dialect.
    fn sql(&self, sql: &str) -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(self.dialect.placeholders(sql).into_owned())
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// The current time in Unix milliseconds, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

fn parse_column<T: FromStr>(value: &str, column: &'static str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt { column, value: value.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://***@db:5432/x");
        assert_eq!(redact("sqlite://data/wagate.db"), "sqlite://data/wagate.db");
    }
}
