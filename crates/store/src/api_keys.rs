use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{ScopeSet, SessionId};

use crate::{CacheTopic, Result, Store, StoreError, now_ms};

/// A stored API key. The key itself is never stored, only its keyed hash.
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    pub scopes: ScopeSet,
    /// `None`: every session of the owner.
    pub sessions: Option<Vec<SessionId>>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewApiKey<'a> {
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: &'a str,
    pub scopes: &'a ScopeSet,
    pub sessions: Option<&'a [SessionId]>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, name, prefix, scopes, sessions, created_at, expires_at, last_used_at, revoked_at";

fn from_row(row: &AnyRow) -> Result<ApiKeyRecord> {
    let scopes: String = row.try_get("scopes")?;
    let sessions: Option<String> = row.try_get("sessions")?;
    Ok(ApiKeyRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        scopes: ScopeSet::parse_csv(&scopes)
            .map_err(|_| StoreError::Corrupt { column: "api_keys.scopes", value: scopes.clone() })?,
        sessions: sessions.map(|csv| parse_session_list(&csv)).transpose()?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn parse_session_list(csv: &str) -> Result<Vec<SessionId>> {
    csv.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            SessionId::parse(s)
                .map_err(|_| StoreError::Corrupt { column: "api_keys.sessions", value: s.into() })
        })
        .collect()
}

impl Store {
    pub async fn insert_api_key(&self, key: NewApiKey<'_>) -> Result<ApiKeyRecord> {
        let id = wagate_core::new_id();
        let now = now_ms();
        let sessions =
            key.sessions.map(|ids| ids.iter().map(SessionId::as_str).collect::<Vec<_>>().join(","));
        sqlx::query(self.sql(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, scopes, sessions, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(&id)
        .bind(key.user_id)
        .bind(key.name)
        .bind(key.prefix)
        .bind(key.key_hash)
        .bind(key.scopes.to_csv())
        .bind(sessions)
        .bind(now)
        .bind(key.expires_at)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(StoreError::conflict_on_unique("api key"))?;
        Ok(ApiKeyRecord {
            id,
            user_id: key.user_id.to_owned(),
            name: key.name.to_owned(),
            prefix: key.prefix.to_owned(),
            scopes: key.scopes.clone(),
            sessions: key.sessions.map(<[SessionId]>::to_vec),
            created_at: now,
            expires_at: key.expires_at,
            last_used_at: None,
            revoked_at: None,
        })
    }

    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE key_hash = ?");
        let row =
            sqlx::query(self.sql(&sql)).bind(key_hash).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?");
        let row = sqlx::query(self.sql(&sql)).bind(id).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Keys of one user, or of everyone with `None`; newest first.
    pub async fn api_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKeyRecord>> {
        let rows = match user_id {
            Some(user_id) => {
                let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id DESC");
                sqlx::query(self.sql(&sql)).bind(user_id).fetch_all(&mut *self.reader().await?).await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM api_keys ORDER BY id DESC");
                sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Returns false when the key does not exist or was already revoked.
    /// Every node's copy of the keys in use is dropped ([`CacheTopic::Users`]).
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done =
            sqlx::query(self.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"))
                .bind(now_ms())
                .bind(id)
                .execute(&mut *tx)
                .await?;
        self.raise_version(&mut tx, CacheTopic::Users).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn touch_api_key(&self, id: &str) -> Result<()> {
        sqlx::query(self.sql("UPDATE api_keys SET last_used_at = ? WHERE id = ?"))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }
}
