//! Per-tenant OTP message templates and settings.

use sqlx::Row;

use super::OtpTemplateRecord;
use crate::{CacheTopic, Result, Store, StoreError, now_ms};

impl Store {
    pub async fn otp_templates(&self, owner_id: &str) -> Result<Vec<OtpTemplateRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT name, locale, body, updated_at FROM otp_templates WHERE owner_id = ? ORDER BY name, locale",
        ))
        .bind(owner_id)
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OtpTemplateRecord {
                    name: row.try_get("name")?,
                    locale: row.try_get("locale")?,
                    body: row.try_get("body")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Creates or replaces a template.
    pub async fn put_otp_template(&self, owner_id: &str, name: &str, locale: &str, body: &str) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM otp_templates WHERE owner_id = ? AND name = ? AND locale = ?"))
            .bind(owner_id)
            .bind(name)
            .bind(locale)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql(
            "INSERT INTO otp_templates (owner_id, name, locale, body, updated_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(owner_id)
        .bind(name)
        .bind(locale)
        .bind(body)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on_unique("template"))?;
        self.raise_version(&mut tx, CacheTopic::OtpSettings).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_otp_template(&self, owner_id: &str, name: &str, locale: &str) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done =
            sqlx::query(self.sql("DELETE FROM otp_templates WHERE owner_id = ? AND name = ? AND locale = ?"))
                .bind(owner_id)
                .bind(name)
                .bind(locale)
                .execute(&mut *tx)
                .await?;
        self.raise_version(&mut tx, CacheTopic::OtpSettings).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The tenant's OTP settings as stored (JSON), if any.
    pub async fn otp_settings(&self, owner_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT settings FROM otp_settings WHERE owner_id = ?"))
            .bind(owner_id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|r| r.try_get("settings")).transpose()?)
    }

    pub async fn put_otp_settings(&self, owner_id: &str, settings: &str) -> Result<()> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM otp_settings WHERE owner_id = ?"))
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql("INSERT INTO otp_settings (owner_id, settings, updated_at) VALUES (?, ?, ?)"))
            .bind(owner_id)
            .bind(settings)
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::conflict_on_unique("settings"))?;
        self.raise_version(&mut tx, CacheTopic::OtpSettings).await?;
        tx.commit().await?;
        Ok(())
    }
}
