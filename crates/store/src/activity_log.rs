//! The activity and audit log: sign-ins, session changes, keys, users, settings, failures.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::filter::Where;
use crate::{Result, Store};

/// One line of the log.
#[derive(Debug, Clone)]
pub struct ActivityRecord {
    pub id: String,
    pub owner_id: Option<String>,
    pub actor_id: Option<String>,
    pub actor: String,
    pub kind: String,
    pub level: String,
    pub session_id: Option<String>,
    pub ip: Option<String>,
    /// JSON.
    pub detail: Option<String>,
    pub created_at: i64,
}

/// Which lines a listing returns, newest first.
#[derive(Debug, Default, Clone)]
pub struct ActivityFilter {
    /// `None`: every tenant's and the server's own.
    pub owner_id: Option<String>,
    /// Only lines of these sessions (an API key limited to some sessions).
    pub sessions: Option<Vec<String>>,
    pub session_id: Option<String>,
    pub kind: Option<String>,
    /// Only lines of these levels.
    pub levels: Option<Vec<String>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub before: Option<(i64, String)>,
    pub limit: u32,
}

const COLUMNS: &str = "id, owner_id, actor_id, actor, kind, level, session_id, ip, detail, created_at";

fn from_row(row: &AnyRow) -> Result<ActivityRecord> {
    Ok(ActivityRecord {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        actor_id: row.try_get("actor_id")?,
        actor: row.try_get("actor")?,
        kind: row.try_get("kind")?,
        level: row.try_get("level")?,
        session_id: row.try_get("session_id")?,
        ip: row.try_get("ip")?,
        detail: row.try_get("detail")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn insert_activity(&self, record: &ActivityRecord) -> Result<()> {
        let sql = format!("INSERT INTO activity_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlx::query(self.sql(&sql))
            .bind(&record.id)
            .bind(&record.owner_id)
            .bind(&record.actor_id)
            .bind(&record.actor)
            .bind(&record.kind)
            .bind(&record.level)
            .bind(&record.session_id)
            .bind(&record.ip)
            .bind(&record.detail)
            .bind(record.created_at)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn activity(&self, filter: &ActivityFilter) -> Result<Vec<ActivityRecord>> {
        let mut conditions = Where::default();
        conditions
            .text("owner_id = ?", filter.owner_id.as_deref())
            .text("session_id = ?", filter.session_id.as_deref())
            .text("kind = ?", filter.kind.as_deref())
            .int("created_at >= ?", filter.since)
            .int("created_at < ?", filter.until)
            .before(filter.before.as_ref());
        if let Some(sessions) = &filter.sessions {
            conditions.any_of("session_id", sessions.clone());
        }
        if let Some(levels) = &filter.levels {
            conditions.any_of("level", levels.clone());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM activity_log {} ORDER BY created_at DESC, id DESC LIMIT ?",
            conditions.sql()
        );
        let query = conditions.bind(sqlx::query(self.sql(&sql)));
        let rows = query.bind(i64::from(filter.limit)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }
}
