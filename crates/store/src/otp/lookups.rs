//! Reading verifications: by id, by phone, by message, filtered listings and counts.

use sqlx::Row;
use wagate_core::OtpStatus;

use super::{COLUMNS, OtpFilter, OtpRecord, PhoneFailures, from_row};
use crate::filter::Where;
use crate::{Result, Store, parse_column};

impl Store {
    pub async fn otp(&self, id: &str) -> Result<Option<OtpRecord>> {
        let row = sqlx::query(self.sql(&format!("SELECT {COLUMNS} FROM otp_verifications WHERE id = ?")))
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A verification with its phone's consecutive failures, in one read (verify by id).
    pub async fn otp_with_phone_failures(
        &self,
        id: &str,
    ) -> Result<Option<(OtpRecord, Option<PhoneFailures>)>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS}, \
             (SELECT f.failures FROM otp_phone_failures f \
              WHERE f.owner_id = otp_verifications.owner_id AND f.phone = otp_verifications.phone) AS phone_failures, \
             (SELECT f.last_failure_at FROM otp_phone_failures f \
              WHERE f.owner_id = otp_verifications.owner_id AND f.phone = otp_verifications.phone) AS phone_failed_at \
             FROM otp_verifications WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let failures = match (row.try_get("phone_failures")?, row.try_get("phone_failed_at")?) {
            (Some(failures), Some(last_failure_at)) => Some(PhoneFailures { failures, last_failure_at }),
            _ => None,
        };
        Ok(Some((from_row(&row)?, failures)))
    }

    /// The tenant's pending verification of `phone` (there is at most one).
    pub async fn pending_otp(&self, owner_id: &str, phone: &str) -> Result<Option<OtpRecord>> {
        let row = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS} FROM otp_verifications WHERE owner_id = ? AND phone = ? AND status = 'pending' \
             ORDER BY created_at DESC LIMIT 1"
        )))
        .bind(owner_id)
        .bind(phone)
        .fetch_optional(&mut *self.reader().await?)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The pending inbound-mode verifications of `phone` whose code is to arrive at `session`.
    pub async fn pending_inbound_otps(&self, session_id: &str, phone: &str) -> Result<Vec<OtpRecord>> {
        let rows = sqlx::query(self.sql(&format!(
            "SELECT {COLUMNS} FROM otp_verifications WHERE phone = ? AND session_id = ? AND status = 'pending' \
             AND mode = 'inbound'"
        )))
        .bind(phone)
        .bind(session_id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn otp_by_message(&self, message_id: &str) -> Result<Option<OtpRecord>> {
        let row =
            sqlx::query(self.sql(&format!("SELECT {COLUMNS} FROM otp_verifications WHERE message_id = ?")))
                .bind(message_id)
                .fetch_optional(&mut *self.reader().await?)
                .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Newest first.
    pub async fn otps(&self, filter: &OtpFilter) -> Result<Vec<OtpRecord>> {
        let (sql, conditions) = otp_listing(filter);
        let query = conditions.bind(sqlx::query(self.sql(&sql)));
        let rows = query.bind(i64::from(filter.limit)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }

    /// Counts by status of the verifications created since `since` (all tenants with `None`).
    pub async fn otp_counts(&self, owner_id: Option<&str>, since: i64) -> Result<Vec<(OtpStatus, i64)>> {
        let sql = match owner_id {
            Some(_) => {
                "SELECT status, COUNT(*) AS n FROM otp_verifications WHERE created_at >= ? AND owner_id = ? GROUP BY status"
            }
            None => {
                "SELECT status, COUNT(*) AS n FROM otp_verifications WHERE created_at >= ? GROUP BY status"
            }
        };
        let mut query = sqlx::query(self.sql(sql)).bind(since);
        if let Some(owner) = owner_id {
            query = query.bind(owner);
        }
        let rows = query.fetch_all(&mut *self.reader().await?).await?;
        rows.iter()
            .map(|row| {
                let status = parse_column(&row.try_get::<String, _>("status")?, "otp.status")?;
                Ok((status, row.try_get("n")?))
            })
            .collect()
    }
}

/// The listing's statement (its last `?` the limit) and the conditions whose values it binds.
pub(crate) fn otp_listing(filter: &OtpFilter) -> (String, Where) {
    let mut conditions = Where::default();
    conditions
        .text("owner_id = ?", filter.owner_id.as_deref())
        .text("phone = ?", filter.phone.as_deref())
        .text("status = ?", filter.status.map(OtpStatus::as_str))
        .int("created_at >= ?", filter.since)
        .int("created_at < ?", filter.until)
        .before(filter.before.as_ref());
    let sql = format!(
        "SELECT {COLUMNS} FROM otp_verifications {} ORDER BY created_at DESC, id DESC LIMIT ?",
        conditions.sql()
    );
    (sql, conditions)
}
