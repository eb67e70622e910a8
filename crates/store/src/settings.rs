//! Server-wide values kept in the database (e.g. the signing secret shared by all nodes).

use sqlx::Row;

use crate::{Result, Store, StoreError};

impl Store {
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query(self.sql("SELECT value FROM settings WHERE name = ?"))
            .bind(name)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Stores `value` unless the setting exists; returns the value that is stored now.
    /// Two nodes starting at once therefore agree on one value.
    pub async fn setting_or_insert(&self, name: &str, value: &str) -> Result<String> {
        let inserted = sqlx::query(self.sql("INSERT INTO settings (name, value) VALUES (?, ?)"))
            .bind(name)
            .bind(value)
            .execute(&mut *self.writer().await?)
            .await
            .map_err(StoreError::conflict_on_unique("setting"));
        match inserted {
            Ok(_) | Err(StoreError::Conflict { .. }) => {}
            Err(other) => return Err(other),
        }
        self.setting(name).await?.ok_or(StoreError::Corrupt { column: "settings.value", value: name.into() })
    }
}
