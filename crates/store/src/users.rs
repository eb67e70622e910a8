use sqlx::Row;
use sqlx::any::AnyRow;
use wagate_core::Role;

use crate::{CacheTopic, Result, Store, StoreError, now_ms, parse_column};

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

const COLUMNS: &str = "id, username, password_hash, role, disabled, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<UserRecord> {
    Ok(UserRecord {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: parse_column(&row.try_get::<String, _>("role")?, "users.role")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    pub async fn insert_user(&self, user: NewUser<'_>) -> Result<UserRecord> {
        let now = now_ms();
        let id = wagate_core::new_id();
        sqlx::query(self.sql(
            "INSERT INTO users (id, username, password_hash, role, disabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, 0, ?, ?)",
        ))
        .bind(&id)
        .bind(user.username)
        .bind(user.password_hash)
        .bind(user.role.as_str())
        .bind(now)
        .bind(now)
        .execute(&mut *self.writer().await?)
        .await
        .map_err(StoreError::conflict_on_unique("user"))?;
        Ok(UserRecord {
            id,
            username: user.username.to_owned(),
            password_hash: user.password_hash.to_owned(),
            role: user.role,
            disabled: false,
            created_at: now,
            updated_at: now,
        })
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = ?");
        let row =
            sqlx::query(self.sql(&sql)).bind(username).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(self.sql(&sql)).bind(id).fetch_optional(&mut *self.reader().await?).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY username");
        let rows = sqlx::query(self.sql(&sql)).fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn count_users(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&mut *self.reader().await?).await?;
        Ok(row.try_get("n")?)
    }

    /// Returns false when no such user exists.
    pub async fn set_user_password(&self, id: &str, password_hash: &str) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done = sqlx::query(self.sql("UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?"))
            .bind(password_hash)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.raise_version(&mut tx, CacheTopic::Users).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Returns false when no such user exists.
    pub async fn set_user_disabled(&self, id: &str, disabled: bool) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let done = sqlx::query(self.sql("UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?"))
            .bind(i64::from(disabled))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.raise_version(&mut tx, CacheTopic::Users).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
