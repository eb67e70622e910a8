//! A version per kind of data that nodes keep in memory (see [`CacheTopic`]): every change of it
//! raises the version, and each node drops its copy when it sees a version it has not seen.

use sqlx::Row;

use crate::{Result, Store, StoreError};

/// Kinds of data that nodes keep copies of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheTopic {
    /// Users as signed-in requests see them (disabled or not, their role).
    Users,
    /// The webhook endpoints events are queued for.
    Webhooks,
}

impl CacheTopic {
    pub const ALL: [CacheTopic; 2] = [CacheTopic::Users, CacheTopic::Webhooks];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheTopic::Users => "users",
            CacheTopic::Webhooks => "webhooks",
        }
    }

    fn parse(topic: &str) -> Option<CacheTopic> {
        CacheTopic::ALL.into_iter().find(|known| known.as_str() == topic)
    }
}

impl Store {
    /// Raises the topic's version after a change of its data.
    pub(crate) async fn changed(&self, topic: CacheTopic) -> Result<()> {
        let mut connection = self.writer().await?;
        let raised = sqlx::query(self.sql("UPDATE cache_versions SET version = version + 1 WHERE topic = ?"))
            .bind(topic.as_str())
            .execute(&mut *connection)
            .await?;
        if raised.rows_affected() > 0 {
            return Ok(());
        }
        let inserted = sqlx::query(self.sql("INSERT INTO cache_versions (topic, version) VALUES (?, 1)"))
            .bind(topic.as_str())
            .execute(&mut *connection)
            .await
            .map_err(StoreError::conflict_on_unique("cache version"));
        match inserted {
            Ok(_) => Ok(()),
            // Another node inserted it at the same moment: raise it past that.
            Err(StoreError::Conflict { .. }) => {
                sqlx::query(self.sql("UPDATE cache_versions SET version = version + 1 WHERE topic = ?"))
                    .bind(topic.as_str())
                    .execute(&mut *connection)
                    .await?;
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Every topic's version (topics never changed are absent).
    pub async fn cache_versions(&self) -> Result<Vec<(CacheTopic, i64)>> {
        let rows = sqlx::query("SELECT topic, version FROM cache_versions")
            .fetch_all(&mut *self.reader().await?)
            .await?;
        let mut versions = Vec::with_capacity(rows.len());
        for row in &rows {
            let topic: String = row.try_get("topic")?;
            if let Some(topic) = CacheTopic::parse(&topic) {
                versions.push((topic, row.try_get("version")?));
            }
        }
        Ok(versions)
    }
}
