use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::{EngineKind, Pacing, SessionId, SessionStatus};

use crate::{CacheTopic, Result, Store, StoreError, now_ms, parse_column};

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: SessionId,
    pub owner_id: String,
    pub name: String,
    pub engine: EngineKind,
    pub status: SessionStatus,
    pub status_reason: Option<String>,
    pub auto_connect: bool,
    pub account: Option<LinkedAccount>,
    pub webhook_url: Option<String>,
    /// Overrides the engine's default pacing.
    pub pacing: Option<Pacing>,
    /// The pool this session sends for.
    pub pool: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub connected_at: Option<i64>,
}

/// The WhatsApp account a session is linked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// E.164.
    pub phone: String,
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub owner_id: &'a str,
    pub name: &'a str,
    pub engine: EngineKind,
    pub webhook_url: Option<&'a str>,
}

const COLUMNS: &str = "id, owner_id, name, engine, status, status_reason, auto_connect, phone, lid, \
                       push_name, webhook_url, pacing, pool, created_at, updated_at, connected_at";

fn from_row(row: &AnyRow) -> Result<SessionRecord> {
    let id: String = row.try_get("id")?;
    let phone: Option<String> = row.try_get("phone")?;
    Ok(SessionRecord {
        id: SessionId::parse(&id).map_err(|_| StoreError::Corrupt { column: "sessions.id", value: id })?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        engine: parse_column(&row.try_get::<String, _>("engine")?, "sessions.engine")?,
        status: parse_column(&row.try_get::<String, _>("status")?, "sessions.status")?,
        status_reason: row.try_get("status_reason")?,
        auto_connect: row.try_get::<i64, _>("auto_connect")? != 0,
        account: match phone {
            Some(phone) => {
                Some(LinkedAccount { phone, lid: row.try_get("lid")?, push_name: row.try_get("push_name")? })
            }
            None => None,
        },
        webhook_url: row.try_get("webhook_url")?,
        pacing: match row.try_get::<Option<String>, _>("pacing")? {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|_| StoreError::Corrupt { column: "sessions.pacing", value: json })?,
            ),
            None => None,
        },
        pool: row.try_get("pool")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        connected_at: row.try_get("connected_at")?,
    })
}

impl Store {
    /// Fails with [`StoreError::Conflict`] when the id is taken.
    pub async fn insert_session(&self, new: NewSession<'_>) -> Result<SessionRecord> {
        let now = now_ms();
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql(
            "INSERT INTO sessions (id, owner_id, name, engine, status, auto_connect, webhook_url, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
        ))
        .bind(new.id.as_str())
        .bind(new.owner_id)
        .bind(new.name)
        .bind(new.engine.as_str())
        .bind(SessionStatus::Created.as_str())
        .bind(new.webhook_url)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on_unique("session"))?;
        self.raise_version(&mut tx, CacheTopic::Sessions).await?;
        tx.commit().await?;
        self.session_lists.forget();
        Ok(SessionRecord {
            id: new.id.clone(),
            owner_id: new.owner_id.to_owned(),
            name: new.name.to_owned(),
            engine: new.engine,
            status: SessionStatus::Created,
            status_reason: None,
            auto_connect: false,
            account: None,
            webhook_url: new.webhook_url.map(str::to_owned),
            pacing: None,
            pool: None,
            created_at: now,
            updated_at: now,
            connected_at: None,
        })
    }

    pub async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = ?");
        let row =
            sqlx::query(self.sql(&sql)).bind(id.as_str()).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Sessions of one owner, or of everyone with `None`, oldest first.
    pub async fn sessions(&self, owner_id: Option<&str>) -> Result<Vec<SessionRecord>> {
        let rows = match owner_id {
            Some(owner) => {
                let sql =
                    format!("SELECT {COLUMNS} FROM sessions WHERE owner_id = ? ORDER BY created_at, id");
                sqlx::query(self.sql(&sql)).bind(owner).fetch_all(&mut *self.reader().await?).await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM sessions ORDER BY created_at, id");
                sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Sessions that should be online: reconnected when the server starts.
    pub async fn auto_connect_sessions(&self) -> Result<Vec<SessionRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE auto_connect = 1 ORDER BY created_at, id");
        let rows = sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn rename_session(&self, id: &SessionId, name: &str) -> Result<bool> {
        self.update_session(id, "name = ?", |q| q.bind(name.to_owned())).await
    }

    pub async fn set_session_webhook(&self, id: &SessionId, url: Option<&str>) -> Result<bool> {
        self.update_session(id, "webhook_url = ?", |q| q.bind(url.map(str::to_owned))).await
    }

    pub async fn set_session_pacing(&self, id: &SessionId, pacing: Option<&Pacing>) -> Result<bool> {
        let json = pacing.map(|p| serde_json::to_string(p).expect("pacing serializes"));
        self.update_session(id, "pacing = ?", |q| q.bind(json)).await
    }

    pub async fn set_session_pool(&self, id: &SessionId, pool: Option<&str>) -> Result<bool> {
        self.update_session(id, "pool = ?", |q| q.bind(pool.map(str::to_owned))).await
    }

    /// The owner's session linked to this phone number (E.164), if any.
    pub async fn session_by_phone(
        &self,
        owner_id: Option<&str>,
        phone: &str,
    ) -> Result<Option<SessionRecord>> {
        let rows = match owner_id {
            Some(owner) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM sessions WHERE owner_id = ? AND phone = ? ORDER BY created_at"
                );
                sqlx::query(self.sql(&sql))
                    .bind(owner)
                    .bind(phone)
                    .fetch_all(&mut *self.reader().await?)
                    .await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM sessions WHERE phone = ? ORDER BY created_at");
                sqlx::query(self.sql(&sql)).bind(phone).fetch_all(&mut *self.reader().await?).await?
            }
        };
        rows.first().map(from_row).transpose()
    }

    pub async fn set_session_auto_connect(&self, id: &SessionId, auto_connect: bool) -> Result<bool> {
        self.update_session(id, "auto_connect = ?", |q| q.bind(i64::from(auto_connect))).await
    }

    pub async fn set_session_status(
        &self,
        id: &SessionId,
        status: SessionStatus,
        reason: Option<&str>,
    ) -> Result<bool> {
        let connected_at = (status == SessionStatus::Connected).then(now_ms);
        self.update_session(
            id,
            "status = ?, status_reason = ?, connected_at = COALESCE(?, connected_at)",
            |q| q.bind(status.as_str()).bind(reason.map(str::to_owned)).bind(connected_at),
        )
        .await
    }

    /// Records the linked account, or forgets it with `None` (after a logout).
    pub async fn set_session_account(&self, id: &SessionId, account: Option<&LinkedAccount>) -> Result<bool> {
        let (phone, lid, push_name) = match account {
            Some(a) => (Some(a.phone.clone()), a.lid.clone(), a.push_name.clone()),
            None => (None, None, None),
        };
        self.update_session(id, "phone = ?, lid = ?, push_name = ?", |q| {
            q.bind(phone).bind(lid).bind(push_name)
        })
        .await
    }

    /// Deletes the session and its activity log; returns false when it did not exist.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        sqlx::query(self.sql("DELETE FROM session_events WHERE session_id = ?"))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(self.sql("DELETE FROM sessions WHERE id = ?"))
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        self.raise_version(&mut tx, CacheTopic::Sessions).await?;
        tx.commit().await?;
        self.session_lists.forget();
        Ok(done.rows_affected() > 0)
    }

    async fn update_session<'q>(
        &self,
        id: &SessionId,
        assignments: &str,
        bind: impl FnOnce(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<bool> {
        let sql = format!("UPDATE sessions SET {assignments}, updated_at = ? WHERE id = ?");
        let query = sqlx::query(self.sql(&sql));
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done = bind(query).bind(now_ms()).bind(id.as_str().to_owned()).execute(&mut *tx).await?;
        self.raise_version(&mut tx, CacheTopic::Sessions).await?;
        tx.commit().await?;
        self.session_lists.forget();
        Ok(done.rows_affected() > 0)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;
