//! Consistent copies of SQLite database files while they are in use.

use std::path::Path;

use sqlx::any::install_default_drivers;
use sqlx::{AnyConnection, Connection};

use crate::{Result, StoreError, redact};

/// Whether `path` holds an SQLite database (by its header).
pub fn is_sqlite_file(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header)).is_ok()
        && &header == b"SQLite format 3\0"
}

/// Writes a consistent copy of the SQLite database `source` to `target` (which must not
/// exist yet) with `VACUUM INTO`: one read transaction, so writers of other connections go on
/// meanwhile and the copy holds every transaction committed before it began, and none after.
pub async fn snapshot_sqlite(source: &Path, target: &Path) -> Result<()> {
    install_default_drivers();
    let url = format!("sqlite://{}?mode=rw", source.display());
    let mut connection = AnyConnection::connect(&url)
        .await
        .map_err(|source| StoreError::Connect { url: redact(&url), source })?;
    sqlx::query("VACUUM INTO ?").bind(target.display().to_string()).execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewUser, Store};

    #[tokio::test]
    async fn a_snapshot_of_a_database_in_use_holds_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let role = wagate_core::Role::User;
        store.insert_user(NewUser { username: "before", password_hash: "-", role }).await.unwrap();

        let copy = dir.path().join("copy.db");
        snapshot_sqlite(&dir.path().join("wagate.db"), &copy).await.unwrap();
        store.insert_user(NewUser { username: "after", password_hash: "-", role }).await.unwrap();
        assert!(is_sqlite_file(&copy) && !is_sqlite_file(&dir.path().join("nothing")));

        let restored = Store::connect(&format!("sqlite://{}", copy.display())).await.unwrap();
        assert!(restored.user_by_username("before").await.unwrap().is_some());
        assert!(restored.user_by_username("after").await.unwrap().is_none());
        assert!(snapshot_sqlite(&dir.path().join("wagate.db"), &copy).await.is_err(), "never overwrites");
    }
}
