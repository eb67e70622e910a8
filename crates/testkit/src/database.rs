//! The database a test runs on. `WAGATE_TEST_DATABASE` picks it for a whole test run:
//! `sqlite` (the default: a file in the test's data directory), `postgres` or `mysql` (the local
//! servers scripts/test.sh starts; their URLs overridable with `WAGATE_TEST_POSTGRES_URL` and
//! `WAGATE_TEST_MYSQL_URL`). On a server, every test gets a schema (PostgreSQL) or database
//! (MySQL/MariaDB) of its own, dropped when the test's [`TestDatabase`] goes.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
    Mysql,
}

impl DatabaseKind {
    /// The database `WAGATE_TEST_DATABASE` names (SQLite when unset). An unknown name stops the
    /// test rather than quietly running on SQLite.
    pub fn selected() -> DatabaseKind {
        match std::env::var("WAGATE_TEST_DATABASE").as_deref() {
            Err(_) | Ok("") | Ok("sqlite") => DatabaseKind::Sqlite,
            Ok("postgres") | Ok("postgresql") => DatabaseKind::Postgres,
            Ok("mysql") | Ok("mariadb") => DatabaseKind::Mysql,
            Ok(other) => panic!("WAGATE_TEST_DATABASE={other}: expected sqlite, postgres or mysql"),
        }
    }
}

pub fn postgres_server_url() -> String {
    std::env::var("WAGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn mysql_server_url() -> String {
    std::env::var("WAGATE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into())
}

/// A fresh, empty schema or database on a server, dropped with this value.
pub struct TestDatabase {
    kind: DatabaseKind,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A fresh schema (PostgreSQL) or database (MySQL); `None` for SQLite, whose file lives in
    /// the test's data directory.
    pub async fn create(kind: DatabaseKind) -> Option<TestDatabase> {
        let name = unique_name();
        let url = match kind {
            DatabaseKind::Sqlite => return None,
            DatabaseKind::Postgres => {
                let server = postgres_server_url();
                execute(kind, &server, &format!("CREATE SCHEMA {name}")).await;
                let separator = if server.contains('?') { '&' } else { '?' };
                // Named after the schema, so the drop can end this test's connections first.
                format!("{server}{separator}options=-c%20search_path%3D{name}&application_name={name}")
            }
            DatabaseKind::Mysql => {
                let server = mysql_server_url();
                execute(kind, &server, &format!("CREATE DATABASE {name}")).await;
                let base =
                    server.rsplit_once('/').map(|(base, _)| base).expect("a MySQL URL names a database");
                format!("{base}/{name}")
            }
        };
        Some(TestDatabase { kind, name, url })
    }

    /// A fresh database of the kind this run selected (see [`DatabaseKind::selected`]).
    pub async fn selected() -> Option<TestDatabase> {
        Self::create(DatabaseKind::selected()).await
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The server under test may still hold connections here, some in the middle of a
        // transaction that nothing will finish (its tasks stop with the test's runtime, which
        // is busy dropping this): they are ended first, and the drop waits for locks only so
        // long, so a test never hangs on its clean-up.
        let statements = match self.kind {
            DatabaseKind::Postgres => vec![
                format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = '{name}' AND pid <> pg_backend_pid()"
                ),
                "SET lock_timeout = '30s'".to_owned(),
                format!("DROP SCHEMA IF EXISTS {name} CASCADE"),
            ],
            DatabaseKind::Mysql => vec![
                "SET SESSION lock_wait_timeout = 30".to_owned(),
                format!("DROP DATABASE IF EXISTS {name}"),
            ],
            DatabaseKind::Sqlite => return,
        };
        let kind = self.kind;
        // Drop runs inside the test's runtime, which cannot be blocked on: a runtime of its own
        // on a thread of its own does the dropping.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if kind == DatabaseKind::Mysql {
                    kill_mysql_connections(&name).await;
                }
                // One connection for all, so that its lock timeout holds for the drop.
                let server = match kind {
                    DatabaseKind::Postgres => postgres_server_url(),
                    _ => mysql_server_url(),
                };
                if let Err(err) = try_execute(kind, &server, &statements.join("; ")).await {
                    eprintln!("test database {name} not dropped: {err}");
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Ends every connection to the MySQL database `name` (their transactions roll back).
async fn kill_mysql_connections(name: &str) {
    let Ok(mut admin) = sqlx::MySqlConnection::connect(&mysql_server_url()).await else { return };
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
    )
    .bind(name)
    .fetch_all(&mut admin)
    .await
    .unwrap_or_default();
    for id in ids {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL {id}"))).execute(&mut admin).await;
    }
}

/// Runs `statement` on the server, stopping the test with a hint when the server is not there.
async fn execute(kind: DatabaseKind, server: &str, statement: &str) {
    try_execute(kind, server, statement).await.unwrap_or_else(|e| {
        panic!("{kind:?} at {server} (scripts/test.sh starts it): {e}");
    });
}

/// Runs `statement` (one or several, separated by `;`) on a connection of its own.
async fn try_execute(kind: DatabaseKind, server: &str, statement: &str) -> Result<(), sqlx::Error> {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    match kind {
        DatabaseKind::Postgres => {
            sqlx::raw_sql(statement).execute(&mut sqlx::PgConnection::connect(server).await?).await?;
        }
        DatabaseKind::Mysql => {
            sqlx::raw_sql(statement).execute(&mut sqlx::MySqlConnection::connect(server).await?).await?;
        }
        DatabaseKind::Sqlite => {}
    }
    Ok(())
}

fn unique_name() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("wagate_test_{:x}{:x}_{}", nanos, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
