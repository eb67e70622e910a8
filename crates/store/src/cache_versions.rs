//! A version per kind of data that nodes keep in memory (see [`CacheTopic`]): every change of it
//! raises the version in the same transaction, and each node drops its copy when it sees a
//! version it has not seen.

use sqlx::{AnyConnection, Row};

use crate::{Result, Store};

/// Kinds of data that nodes keep copies of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheTopic {
    /// Users and API keys as requests see them (disabled or revoked or not, their role).
    Users,
    /// The webhook endpoints events are queued for.
    Webhooks,
    /// Each owner's sessions as routing sees them (pools, status).
    Sessions,
    /// Each owner's OTP settings and message templates.
    OtpSettings,
}

impl CacheTopic {
    pub const ALL: [CacheTopic; 4] =
        [CacheTopic::Users, CacheTopic::Webhooks, CacheTopic::Sessions, CacheTopic::OtpSettings];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheTopic::Users => "users",
            CacheTopic::Webhooks => "webhooks",
            CacheTopic::Sessions => "sessions",
            CacheTopic::OtpSettings => "otp_settings",
        }
    }

    fn parse(topic: &str) -> Option<CacheTopic> {
        CacheTopic::ALL.into_iter().find(|known| known.as_str() == topic)
    }
}

impl Store {
    /// Raises the topic's version, inside the transaction that changes its data (so no node
    /// can see the change without the new version, nor the version without the change).
    pub(crate) async fn raise_version(
        &self,
        connection: &mut AnyConnection,
        topic: CacheTopic,
    ) -> Result<()> {
        sqlx::query(self.sql("UPDATE cache_versions SET version = version + 1 WHERE topic = ?"))
            .bind(topic.as_str())
            .execute(connection)
            .await?;
        Ok(())
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
