//! What an engine keeps for a session (a linked device's credentials, Signal keys, app-state
//! versions …; see [`wagate_core::engine_state`]), so that any node sharing the database can run
//! the session.

use sqlx::Row;
use wagate_core::{STATE_KEY_MAX, SessionId, StateChange, StateEntry, StateRows};

use crate::{Dialect, Fence, Result, Store, StoreError, now_ms};

/// Rows per multi-row statement.
const CHUNK: usize = 200;

impl Store {
    /// The entries of `names` in one scope (those that exist).
    pub async fn state_get(
        &self,
        session: &SessionId,
        space: &str,
        scope: &str,
        names: &[&str],
    ) -> Result<Vec<StateEntry>> {
        let mut found = Vec::with_capacity(names.len());
        for chunk in names.chunks(CHUNK) {
            let sql = format!(
                "SELECT scope, name, value, stamp FROM engine_state \
                 WHERE session_id = ? AND space = ? AND scope = ? AND name IN ({})",
                marks(chunk.len())
            );
            let mut query = sqlx::query(self.sql(&sql)).bind(session.as_str()).bind(space).bind(scope);
            for name in chunk {
                query = query.bind(*name);
            }
            let rows = query.fetch_all(&mut *self.reader().await?).await?;
            for row in &rows {
                found.push(entry(space, row)?);
            }
        }
        Ok(found)
    }

    /// Every entry of a space, or of one scope of it.
    pub async fn state_list(
        &self,
        session: &SessionId,
        space: &str,
        scope: Option<&str>,
    ) -> Result<Vec<StateEntry>> {
        let mut sql = "SELECT scope, name, value, stamp FROM engine_state WHERE session_id = ? AND space = ?"
            .to_owned();
        if scope.is_some() {
            sql.push_str(" AND scope = ?");
        }
        let mut query = sqlx::query(self.sql(&sql)).bind(session.as_str()).bind(space);
        if let Some(scope) = scope {
            query = query.bind(scope);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(|row| entry(space, row)).collect()
    }

    /// The greatest name of a space (names that are numbers are stored zero-padded to compare).
    pub async fn state_max_name(&self, session: &SessionId, space: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            self.sql("SELECT MAX(name) AS name FROM engine_state WHERE session_id = ? AND space = ?"),
        )
        .bind(session.as_str())
        .bind(space)
        .fetch_one(&mut *self.reader().await?)
        .await?;
        Ok(row.try_get::<Option<String>, _>("name")?)
    }

    /// Applies `changes` in one transaction, after checking `fence` in it when there is one:
    /// a node that lost the session's lease changes nothing. Returns the rows changed by each.
    pub async fn state_change(
        &self,
        session: &SessionId,
        fence: Option<&Fence>,
        changes: &[StateChange],
    ) -> Result<Vec<u64>> {
        check_keys(changes)?;
        self.retry_deadlocks(|| async {
            let mut connection = self.writer().await?;
            let mut tx = connection.begin().await?;
            if let Some(fence) = fence {
                self.check_fence(&mut tx, fence, now_ms()).await?;
            }
            let mut counts = Vec::with_capacity(changes.len());
            for change in changes {
                counts.push(self.apply(&mut tx, session, change).await?);
            }
            tx.commit().await?;
            Ok(counts)
        })
        .await
    }

    /// Removes the entry and returns it, in one transaction (a value to be used once).
    pub async fn state_take(
        &self,
        session: &SessionId,
        fence: Option<&Fence>,
        space: &str,
        scope: &str,
        name: &str,
    ) -> Result<Option<StateEntry>> {
        self.retry_deadlocks(|| async {
            let mut connection = self.writer().await?;
            let mut tx = connection.begin().await?;
            if let Some(fence) = fence {
                self.check_fence(&mut tx, fence, now_ms()).await?;
            }
            let row = sqlx::query(self.sql(&format!(
                "SELECT scope, name, value, stamp FROM engine_state \
                 WHERE session_id = ? AND space = ? AND scope = ? AND name = ?{}",
                self.dialect.lock_rows()
            )))
            .bind(session.as_str())
            .bind(space)
            .bind(scope)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let taken = entry(space, &row)?;
            let rows =
                StateRows { space: space.into(), scope: Some(scope.into()), names: Some(vec![name.into()]) };
            self.apply(&mut tx, session, &StateChange::Delete(rows)).await?;
            tx.commit().await?;
            Ok(Some(taken))
        })
        .await
    }

    /// Deletes everything an engine kept for the session.
    pub async fn state_forget(&self, session: &SessionId) -> Result<u64> {
        let done = sqlx::query(self.sql("DELETE FROM engine_state WHERE session_id = ?"))
            .bind(session.as_str())
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    /// Whether a name of one of `spaces` starts with one of `prefixes`, which must not contain
    /// `%`, `_` or `\\` (they would match more than themselves).
    pub async fn state_any_prefixed(
        &self,
        session: &SessionId,
        spaces: &[&str],
        prefixes: &[&str],
    ) -> Result<bool> {
        if let Some(bad) = prefixes.iter().find(|prefix| prefix.contains(['%', '_', '\\'])) {
            return Err(StoreError::Invalid(format!("`{bad}` cannot be looked up as a prefix")));
        }
        if spaces.is_empty() || prefixes.is_empty() {
            return Ok(false);
        }
        let like = vec!["name LIKE ?"; prefixes.len()].join(" OR ");
        let sql = format!(
            "SELECT 1 FROM engine_state WHERE session_id = ? AND space IN ({}) AND ({like}) LIMIT 1",
            marks(spaces.len())
        );
        let mut query = sqlx::query(self.sql(&sql)).bind(session.as_str());
        for space in spaces {
            query = query.bind(*space);
        }
        for prefix in prefixes {
            query = query.bind(format!("{prefix}%"));
        }
        Ok(query.fetch_optional(&mut *self.reader().await?).await?.is_some())
    }

    /// Whether anything is kept for the session.
    pub async fn state_exists(&self, session: &SessionId) -> Result<bool> {
        let row = sqlx::query(self.sql("SELECT 1 FROM engine_state WHERE session_id = ? LIMIT 1"))
            .bind(session.as_str())
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.is_some())
    }

    async fn apply(
        &self,
        tx: &mut sqlx::AnyConnection,
        session: &SessionId,
        change: &StateChange,
    ) -> Result<u64> {
        match change {
            StateChange::Put(entries) => {
                // One row per key, the last written: PostgreSQL refuses to update a row twice
                // in one statement.
                let mut last = std::collections::HashMap::with_capacity(entries.len());
                for (at, entry) in entries.iter().enumerate() {
                    last.insert((&entry.space, &entry.scope, &entry.name), at);
                }
                let deduplicated: Option<Vec<StateEntry>> = (last.len() < entries.len()).then(|| {
                    let kept = |(at, e): &(usize, &StateEntry)| last[&(&e.space, &e.scope, &e.name)] == *at;
                    entries.iter().enumerate().filter(kept).map(|(_, e)| e.clone()).collect()
                });
                let entries = deduplicated.as_deref().unwrap_or(entries);
                let mut changed = 0;
                for chunk in entries.chunks(CHUNK) {
                    changed += self.put_rows(tx, session, chunk).await?;
                }
                Ok(changed)
            }
            StateChange::Delete(rows) => {
                self.for_rows(tx, session, "DELETE FROM engine_state", rows, None).await
            }
            StateChange::Restamp { rows, stamp } => {
                self.for_rows(tx, session, "UPDATE engine_state SET stamp = ?", rows, Some(*stamp)).await
            }
            StateChange::DeleteStamped { space, from, below } => {
                let done = sqlx::query(self.sql(
                    "DELETE FROM engine_state WHERE session_id = ? AND space = ? AND stamp >= ? AND stamp < ?",
                ))
                .bind(session.as_str())
                .bind(space.as_str())
                .bind(*from)
                .bind(*below)
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected())
            }
        }
    }

    async fn put_rows(
        &self,
        tx: &mut sqlx::AnyConnection,
        session: &SessionId,
        rows: &[StateEntry],
    ) -> Result<u64> {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
        let insert = format!(
            "INSERT INTO engine_state (session_id, space, scope, name, value, stamp) VALUES {values}"
        );
        let sql = match self.dialect {
            Dialect::MySql => {
                format!("{insert} ON DUPLICATE KEY UPDATE value = VALUES(value), stamp = VALUES(stamp)")
            }
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{insert} ON CONFLICT (session_id, space, scope, name) \
                 DO UPDATE SET value = excluded.value, stamp = excluded.stamp"
            ),
        };
        let mut query = sqlx::query(self.sql(&sql));
        for row in rows {
            query = query
                .bind(session.as_str())
                .bind(row.space.as_str())
                .bind(row.scope.as_str())
                .bind(row.name.as_str())
                .bind(row.value.as_slice())
                .bind(row.stamp);
        }
        Ok(query.execute(&mut *tx).await?.rows_affected())
    }

    /// Runs `statement` (a `DELETE` or an `UPDATE … SET stamp = ?`) on the rows `rows` names.
    async fn for_rows(
        &self,
        tx: &mut sqlx::AnyConnection,
        session: &SessionId,
        statement: &str,
        rows: &StateRows,
        stamp: Option<i64>,
    ) -> Result<u64> {
        let names: Vec<Option<&[String]>> = match &rows.names {
            None => vec![None],
            Some(names) if names.is_empty() => return Ok(0),
            Some(names) => names.chunks(CHUNK).map(Some).collect(),
        };
        let mut changed = 0;
        for chunk in names {
            let mut sql = format!("{statement} WHERE session_id = ? AND space = ?");
            if rows.scope.is_some() {
                sql.push_str(" AND scope = ?");
            }
            if let Some(chunk) = chunk {
                sql.push_str(&format!(" AND name IN ({})", marks(chunk.len())));
            }
            let mut query = sqlx::query(self.sql(&sql));
            if let Some(stamp) = stamp {
                query = query.bind(stamp);
            }
            query = query.bind(session.as_str()).bind(rows.space.as_str());
            if let Some(scope) = &rows.scope {
                query = query.bind(scope.as_str());
            }
            for name in chunk.into_iter().flatten() {
                query = query.bind(name.as_str());
            }
            changed += query.execute(&mut *tx).await?.rows_affected();
        }
        Ok(changed)
    }

    /// Creates the table of engine state. Its value column's type is the one thing of the schema
    /// the three databases spell differently (`BLOB`, `BYTEA`, `LONGBLOB`), so it is made here,
    /// after the shared migrations, rather than in them.
    pub(crate) async fn create_engine_state_table(&self) -> Result<()> {
        let (bytes, keys) = match self.dialect {
            Dialect::Sqlite => ("BLOB", "VARCHAR(255)"),
            // Compared byte by byte, as SQLite does (names that are numbers are zero-padded).
            Dialect::Postgres => ("BYTEA", "VARCHAR(255) COLLATE \"C\""),
            // Case-sensitive and byte by byte, as the other two compare.
            Dialect::MySql => ("LONGBLOB", "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS engine_state (\
               session_id VARCHAR(64) NOT NULL, \
               space VARCHAR(32) NOT NULL, \
               scope {keys} NOT NULL, \
               name {keys} NOT NULL, \
               value {bytes} NOT NULL, \
               stamp BIGINT NOT NULL, \
               PRIMARY KEY (session_id, space, scope, name))"
        );
        self.create_table("engine_state", sql).await
    }
}

fn entry(space: &str, row: &sqlx::any::AnyRow) -> Result<StateEntry> {
    Ok(StateEntry {
        space: space.to_owned(),
        scope: row.try_get("scope")?,
        name: row.try_get("name")?,
        value: row.try_get("value")?,
        stamp: row.try_get("stamp")?,
    })
}

fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn check_keys(changes: &[StateChange]) -> Result<()> {
    let too_long = |key: &str| key.len() > STATE_KEY_MAX;
    for change in changes {
        if let StateChange::Put(entries) = change
            && let Some(bad) = entries.iter().find(|entry| too_long(&entry.scope) || too_long(&entry.name))
        {
            return Err(StoreError::Invalid(format!(
                "engine state key longer than {STATE_KEY_MAX} bytes in {}: {}/{}",
                bad.space, bad.scope, bad.name
            )));
        }
    }
    Ok(())
}
