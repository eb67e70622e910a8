//! Rate limits counted in the database, for nodes that share it: one theoretical arrival time
//! (GCRA, in milliseconds) per limited key. The arithmetic is in the service; here a hit moves
//! a key's time in one statement, so two nodes counting at once both count.

use sqlx::Row;

use crate::{Result, Store, StoreError};

impl Store {
    /// The key's theoretical arrival time, if it was hit and not cleared or pruned.
    pub async fn rate_arrival(&self, key: &str) -> Result<Option<i64>> {
        let row = sqlx::query(self.sql("SELECT arrival FROM rate_limits WHERE name = ?"))
            .bind(key)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|row| row.try_get("arrival")).transpose()?)
    }

    /// Counts a hit of `key` at `now`: its time moves to `max(time, now) + emission`, at most
    /// `now + window`.
    pub async fn rate_record(&self, key: &str, now: i64, emission: i64, window: i64) -> Result<()> {
        let mut connection = self.writer().await?;
        let cap = now + window;
        let update = self.sql(
            "UPDATE rate_limits SET arrival = CASE \
               WHEN (CASE WHEN arrival > ? THEN arrival ELSE ? END) + ? > ? THEN ? \
               ELSE (CASE WHEN arrival > ? THEN arrival ELSE ? END) + ? END \
             WHERE name = ?",
        );
        let updated = sqlx::query(update)
            .bind(now)
            .bind(now)
            .bind(emission)
            .bind(cap)
            .bind(cap)
            .bind(now)
            .bind(now)
            .bind(emission)
            .bind(key)
            .execute(&mut *connection)
            .await?;
        if updated.rows_affected() > 0 {
            return Ok(());
        }
        let inserted = sqlx::query(self.sql("INSERT INTO rate_limits (name, arrival) VALUES (?, ?)"))
            .bind(key)
            .bind((now + emission).min(cap))
            .execute(&mut *connection)
            .await
            .map_err(StoreError::conflict_on_unique("rate limit"));
        match inserted {
            // MySQL counts only changed rows: the key was there, at its cap already; or another
            // node inserted it just now, and its hit stands for both (the next one counts).
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Gives the key its whole allowance back.
    pub async fn rate_clear(&self, key: &str) -> Result<()> {
        sqlx::query(self.sql("DELETE FROM rate_limits WHERE name = ?"))
            .bind(key)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Forgets keys back at their full allowance at `now`; returns how many.
    pub async fn prune_rate_limits(&self, now: i64) -> Result<u64> {
        let done = sqlx::query(self.sql("DELETE FROM rate_limits WHERE arrival <= ?"))
            .bind(now)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected())
    }
}
