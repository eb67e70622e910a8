use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::SessionId;

use crate::{Result, Store, now_ms};

/// One line of a session's activity log.
#[derive(Debug, Clone)]
pub struct SessionEventRecord {
    pub id: String,
    pub session_id: String,
    pub kind: String,
    /// JSON.
    pub detail: Option<String>,
    pub created_at: i64,
}

fn from_row(row: &AnyRow) -> Result<SessionEventRecord> {
    Ok(SessionEventRecord {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        kind: row.try_get("kind")?,
        detail: row.try_get("detail")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    pub async fn insert_session_event(
        &self,
        session: &SessionId,
        kind: &str,
        detail: Option<&serde_json::Value>,
    ) -> Result<SessionEventRecord> {
        let record = SessionEventRecord {
            id: wagate_core::new_id(),
            session_id: session.as_str().to_owned(),
            kind: kind.to_owned(),
            detail: detail.map(serde_json::Value::to_string),
            created_at: now_ms(),
        };
        sqlx::query(self.sql(
            "INSERT INTO session_events (id, session_id, kind, detail, created_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(&record.id)
        .bind(&record.session_id)
        .bind(&record.kind)
        .bind(&record.detail)
        .bind(record.created_at)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(record)
    }

    /// Newest first; `before` is the id of the last event of the previous page.
    pub async fn session_events(
        &self,
        session: &SessionId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionEventRecord>> {
        let columns = "id, session_id, kind, detail, created_at";
        let rows = match before {
            Some(before) => {
                let sql = format!(
                    "SELECT {columns} FROM session_events WHERE session_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
                );
                sqlx::query(self.sql(&sql))
                    .bind(session.as_str())
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.reader().await?)
                    .await?
            }
            None => {
                let sql = format!(
                    "SELECT {columns} FROM session_events WHERE session_id = ? ORDER BY id DESC LIMIT ?"
                );
                sqlx::query(self.sql(&sql))
                    .bind(session.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&mut *self.reader().await?)
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }
}
