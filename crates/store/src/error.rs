#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("unsupported database URL `{0}` (expected sqlite://, postgres:// or mysql://)")]
    UnsupportedUrl(String),
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "the database was migrated by a newer wagate (it has migration {version}, which this version \
         does not know): run that version or a later one, or restore a backup taken before the upgrade"
    )]
    NewerSchema { version: i64 },
    #[error("{entity} already exists")]
    Conflict { entity: &'static str },
    #[error("stored value `{value}` in column `{column}` is not valid")]
    Corrupt { column: &'static str, value: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A value the database cannot hold (e.g. a key longer than its column).
    #[error("{0}")]
    Invalid(String),
    /// A write on behalf of a lease that the writer no longer holds (another node took it, or
    /// it ran out): refused, so that a node cut off from the cluster cannot act for it.
    #[error("the lease `{lease}` is no longer held by this node")]
    Fenced { lease: String },
    /// An outage seen by a write that others waited on; each of them gets its own copy.
    #[error("{detail}")]
    Outage { kind: Outage, detail: String },
}

impl StoreError {
    /// Maps a unique-constraint violation to [`StoreError::Conflict`].
    pub(crate) fn conflict_on_unique(entity: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |err| match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { entity },
            _ => StoreError::Database(err),
        }
    }
}

/// Why the database cannot take work right now. Both pass: the request may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The disk (or the database's quota) is full.
    StorageFull,
    /// The database is locked by someone else, unreachable, restarting or out of connections.
    Unavailable,
}

impl StoreError {
    /// Whether the database chose this transaction as the victim of a deadlock (or a
    /// serialization failure): nothing of it was kept, and running it again is expected to work.
    pub fn is_deadlock(&self) -> bool {
        let StoreError::Database(sqlx::Error::Database(db)) = self else { return false };
        if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            return matches!(pg.code(), "40001" | "40P01");
        }
        if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            return mysql.number() == 1213;
        }
        false
    }
}

impl StoreError {
    /// Whether this error means the database is out of reach or out of space for now, rather
    /// than that the request or the data is wrong.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            StoreError::Connect { .. } => Some(Outage::Unavailable),
            StoreError::Outage { kind, .. } => Some(*kind),
            StoreError::Database(err) => sqlx_outage(err),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(err)) => sqlx_outage(err),
            _ => None,
        }
    }
}

fn sqlx_outage(err: &sqlx::Error) -> Option<Outage> {
    use sqlx::Error;
    use sqlx::error::DatabaseError as _;
    match err {
        Error::Io(_) | Error::Tls(_) | Error::PoolTimedOut | Error::PoolClosed | Error::WorkerCrashed => {
            Some(Outage::Unavailable)
        }
        Error::Database(db) => {
            if let Some(sqlite) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
                let code = sqlite.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or_default();
                // Primary result codes: SQLITE_BUSY 5, SQLITE_LOCKED 6, SQLITE_FULL 13; and
                // SQLITE_IOERR_SHMSIZE (the WAL index could not grow: no space for it).
                return match code & 0xff {
                    _ if code == 4874 => Some(Outage::StorageFull),
                    13 => Some(Outage::StorageFull),
                    5 | 6 => Some(Outage::Unavailable),
                    _ => None,
                };
            }
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                let state = pg.code();
                return match state {
                    "53100" => Some(Outage::StorageFull),
                    // Insufficient resources, connection exceptions, the server shutting down
                    // or starting, lock timeouts, serialization failures and deadlocks.
                    _ if state.starts_with("53") || state.starts_with("08") || state.starts_with("57P") => {
                        Some(Outage::Unavailable)
                    }
                    "55P03" | "40001" | "40P01" => Some(Outage::Unavailable),
                    _ => None,
                };
            }
            if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                return match mysql.number() {
                    // ER_DISK_FULL, ER_RECORD_FILE_FULL
                    1021 | 1114 => Some(Outage::StorageFull),
                    // Too many connections, lock wait timeout, deadlock, server shutting down,
                    // read-only mode
                    1040 | 1205 | 1213 | 1053 | 1290 | 1836 => Some(Outage::Unavailable),
                    _ => None,
                };
            }
            None
        }
        _ => None,
    }
}
