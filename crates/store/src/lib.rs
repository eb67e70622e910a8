//! wagate's database.
//!
//! One implementation for every supported database, through sqlx's `Any` driver. SQL is
//! written once with `?` placeholders and portable types; the few dialect differences live in
//! [`dialect`]. Migrations are embedded per dialect and run at start-up.

mod api_keys;
mod batch;
mod dialect;
mod error;
mod events;
mod filter;
mod inbound;
mod messages;
mod otp;
mod session_lists;
mod sessions;
mod settings;
mod stats;
mod users;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

pub use api_keys::{ApiKeyRecord, NewApiKey};
pub use dialect::Dialect;
pub use error::StoreError;
pub use events::SessionEventRecord;
pub use inbound::{InboundFields, InboundRecord};
pub use messages::{Claim, Inserted, MessageEventRecord, MessageFilter, MessageRecord, NewMessage};
pub use otp::{NewCode, NewOtp, OtpFilter, OtpRecord, OtpTemplateRecord, PhoneFailures};
pub use sessions::{LinkedAccount, NewSession, SessionRecord};
pub use users::{NewUser, UserRecord};
pub use webhooks::{AttemptRecord, DeliveryRecord, NewWebhook, WebhookEventRecord, WebhookRecord};

/// Read-only SQLite connections beside the writer.
const SQLITE_READERS: u32 = 4;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Writes and transactions. On SQLite a single connection: SQLite has one writer anyway,
    /// and one connection never waits on its own lock.
    pool: AnyPool,
    /// Plain reads. On SQLite, separate read-only connections that (with WAL) run beside the
    /// writer and see everything it committed; elsewhere the same pool.
    readers: AnyPool,
    dialect: Dialect,
    session_lists: Arc<session_lists::SessionLists>,
}

impl Store {
    /// Connects to `url` (`sqlite://path`, `postgres://…`, `mysql://…`).
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let url = match dialect {
            Dialect::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let pool = Self::pool(dialect, &url, dialect.max_connections(), false).await?;
        if dialect != Dialect::Sqlite {
            return Ok(Store { readers: pool.clone(), pool, dialect, session_lists: Default::default() });
        }
        // Persistent per database file: readers no longer block the writer.
        sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        let readers = Self::pool(dialect, &url, SQLITE_READERS, true).await?;
        Ok(Store { pool, readers, dialect, session_lists: Default::default() })
    }

    async fn pool(dialect: Dialect, url: &str, connections: u32, read_only: bool) -> Result<AnyPool> {
        AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(10))
            // An embedded database cannot drop a connection: pinging it before each use would
            // only cost a round trip to its worker thread.
            .test_before_acquire(dialect != Dialect::Sqlite)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        // With WAL, NORMAL survives any crash of the process (only a power cut
                        // can lose the last commits) and avoids an fsync per commit.
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
                        if read_only {
                            sqlx::Executor::execute(&mut *conn, "PRAGMA query_only = ON").await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect { url: redact(url), source })
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
        // The schema uses only types and statements all three databases share.
        sqlx::migrate!("./migrations").run(&self.pool).await.map_err(StoreError::Migrate)
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        let row = sqlx::query("SELECT 1").fetch_one(&self.readers).await?;
        let one: i64 = row.try_get(0).or_else(|_| row.try_get::<i32, _>(0).map(i64::from))?;
        debug_assert_eq!(one, 1);
        Ok(())
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
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
