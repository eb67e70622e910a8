//! Per-phone counters of consecutive failed verifications.

use sqlx::Row;

use super::PhoneFailures;
use crate::{Result, Store, StoreError};

impl Store {
    pub async fn phone_failures(&self, owner_id: &str, phone: &str) -> Result<Option<PhoneFailures>> {
        let row = sqlx::query(self.sql(
            "SELECT failures, last_failure_at FROM otp_phone_failures WHERE owner_id = ? AND phone = ?",
        ))
        .bind(owner_id)
        .bind(phone)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.map(|row| {
            Ok(PhoneFailures {
                failures: row.try_get("failures")?,
                last_failure_at: row.try_get("last_failure_at")?,
            })
        })
        .transpose()
    }

    /// One more consecutive failure for `phone`; returns the new count.
    pub async fn add_phone_failure(&self, owner_id: &str, phone: &str, now: i64) -> Result<i64> {
        for _ in 0..3 {
            let updated = sqlx::query(self.sql(
                "UPDATE otp_phone_failures SET failures = failures + 1, last_failure_at = ? \
                 WHERE owner_id = ? AND phone = ?",
            ))
            .bind(now)
            .bind(owner_id)
            .bind(phone)
            .execute(&mut *self.writer().await?)
            .await?;
            if updated.rows_affected() == 0 {
                let inserted = sqlx::query(self.sql(
                    "INSERT INTO otp_phone_failures (owner_id, phone, failures, last_failure_at) VALUES (?, ?, 1, ?)",
                ))
                .bind(owner_id)
                .bind(phone)
                .bind(now)
                .execute(&mut *self.writer().await?)
                .await
                .map_err(StoreError::conflict_on_unique("failure counter"));
                match inserted {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => continue, // created concurrently: count again
                    Err(other) => return Err(other),
                }
            }
            return Ok(self.phone_failures(owner_id, phone).await?.map_or(1, |f| f.failures));
        }
        Err(StoreError::Conflict { entity: "failure counter" })
    }

    /// A success clears the phone's failures; true when there were any.
    pub async fn clear_phone_failures(&self, owner_id: &str, phone: &str) -> Result<bool> {
        let done = sqlx::query(self.sql("DELETE FROM otp_phone_failures WHERE owner_id = ? AND phone = ?"))
            .bind(owner_id)
            .bind(phone)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
