//! The sandbox's simulated network when nodes share the database: every delivery (what the
//! inboxes show, and which message ids reached which number) and the groups. Values are the
//! engine's JSON; the store keeps and orders them.

use sqlx::Row;

use crate::{Dialect, Result, Store, StoreError, now_ms};

impl Store {
    /// Records a delivery of `message_id` to `to`; `false` when that id already reached `to`.
    pub async fn sandbox_record(&self, to: &str, message_id: &str, delivery: &str) -> Result<bool> {
        let inserted = sqlx::query(self.sql(
            "INSERT INTO sandbox_deliveries (to_phone, message_id, delivery, recorded_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(to)
        .bind(message_id)
        .bind(delivery)
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await
        .map_err(StoreError::conflict_on_unique("sandbox delivery"));
        match inserted {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The kept deliveries to `to`, oldest first.
    pub async fn sandbox_inbox(&self, to: &str) -> Result<Vec<String>> {
        let rows =
            sqlx::query(self.sql("SELECT delivery FROM sandbox_deliveries WHERE to_phone = ? ORDER BY seq"))
                .bind(to)
                .fetch_all(&mut *self.reader().await?)
                .await?;
        rows.iter().map(|row| Ok(row.try_get("delivery")?)).collect()
    }

    /// Deliveries recorded after `cursor` (their `seq`), oldest first.
    pub async fn sandbox_since(&self, cursor: i64, limit: u32) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(
            self.sql("SELECT seq, delivery FROM sandbox_deliveries WHERE seq > ? ORDER BY seq LIMIT ?"),
        )
        .bind(cursor)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("seq")?, row.try_get("delivery")?))).collect()
    }

    /// The greatest `seq` so far; 0 when there is none.
    pub async fn sandbox_latest(&self) -> Result<i64> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM sandbox_deliveries")
            .fetch_one(&mut *self.reader().await?)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("seq")?.unwrap_or(0))
    }

    /// Forgets all but about the latest `keep` deliveries.
    pub async fn sandbox_keep_latest(&self, keep: u64) -> Result<u64> {
        let below = self.sandbox_latest().await? - i64::try_from(keep).unwrap_or(i64::MAX);
        if below <= 0 {
            return Ok(0);
        }
        let done = sqlx::query(self.sql("DELETE FROM sandbox_deliveries WHERE seq <= ?"))
            .bind(below)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn sandbox_put_group(&self, jid: &str, group: &str) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM sandbox_groups WHERE jid = ?")).bind(jid).execute(&mut *tx).await?;
        sqlx::query(self.sql("INSERT INTO sandbox_groups (jid, grp) VALUES (?, ?)"))
            .bind(jid)
            .bind(group)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn sandbox_group(&self, jid: &str) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT grp FROM sandbox_groups WHERE jid = ?"))
            .bind(jid)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|row| row.try_get("grp")).transpose()?)
    }

    /// Every group: (JID, the engine's JSON).
    pub async fn sandbox_groups(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT jid, grp FROM sandbox_groups ORDER BY jid")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("jid")?, row.try_get("grp")?))).collect()
    }

    /// Creates the sandbox's tables; the deliveries' sequence is the part each database spells
    /// its own way.
    pub(crate) async fn create_sandbox_tables(&self) -> Result<()> {
        let (seq, text) = match self.dialect {
            Dialect::Sqlite => ("seq INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
            Dialect::Postgres => ("seq BIGSERIAL PRIMARY KEY", "TEXT"),
            Dialect::MySql => ("seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", "MEDIUMTEXT"),
        };
        let deliveries = format!(
            "CREATE TABLE IF NOT EXISTS sandbox_deliveries (\
               {seq}, \
               to_phone VARCHAR(32) NOT NULL, \
               message_id VARCHAR(255) NOT NULL, \
               delivery {text} NOT NULL, \
               recorded_at BIGINT NOT NULL, \
               UNIQUE (to_phone, message_id))"
        );
        self.create_table("sandbox_deliveries", deliveries).await?;
        let groups = format!(
            "CREATE TABLE IF NOT EXISTS sandbox_groups (jid VARCHAR(64) PRIMARY KEY, grp {text} NOT NULL)"
        );
        self.create_table("sandbox_groups", groups).await
    }
}
