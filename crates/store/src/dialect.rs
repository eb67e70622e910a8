//! The differences between the supported databases, kept in one place.

use std::borrow::Cow;

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    MySql,
}

impl Dialect {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme).unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            _ => Err(StoreError::UnsupportedUrl(url.to_owned())),
        }
    }

    /// SQLite serialises writers anyway; a few connections serve concurrent readers.
    pub(crate) fn max_connections(self) -> u32 {
        match self {
            Dialect::Sqlite => 1,
            Dialect::Postgres | Dialect::MySql => 16,
        }
    }

    /// The suffix of a `SELECT` inside a transaction that keeps the rows it read from changing
    /// until the commit. SQLite has one writer connection, whose transaction excludes all others.
    pub(crate) fn lock_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::MySql => " FOR UPDATE",
        }
    }

    /// The suffix of a `SELECT` inside a transaction that keeps the rows it read from being
    /// changed by others until the commit, while letting others read and share-lock them.
    pub(crate) fn share_rows(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
            Dialect::MySql => " LOCK IN SHARE MODE",
        }
    }

    /// Whether `UPDATE … RETURNING` exists (MySQL and MariaDB have none).
    pub(crate) fn update_returning(self) -> bool {
        self != Dialect::MySql
    }

    /// Rewrites `?` placeholders to `$1, $2, …` for PostgreSQL. Queries never contain `?`
    /// inside string literals (values are always bound), so a plain scan is enough.
    pub(crate) fn placeholders(self, sql: &str) -> Cow<'_, str> {
        if self != Dialect::Postgres || !sql.contains('?') {
            return Cow::Borrowed(sql);
        }
        let mut out = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for ch in sql.chars() {
            if ch == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(ch);
            }
        }
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_numbered_placeholders() {
        let sql = "UPDATE t SET a = ?, b = ? WHERE id = ?";
        assert_eq!(Dialect::Postgres.placeholders(sql), "UPDATE t SET a = $1, b = $2 WHERE id = $3");
        assert_eq!(Dialect::Sqlite.placeholders(sql), sql);
        assert_eq!(Dialect::MySql.placeholders(sql), sql);
    }

    #[test]
    fn dialect_from_url() {
        assert_eq!(Dialect::from_url("sqlite://x.db").unwrap(), Dialect::Sqlite);
        assert_eq!(Dialect::from_url("postgresql://h/db").unwrap(), Dialect::Postgres);
        assert_eq!(Dialect::from_url("mariadb://h/db").unwrap(), Dialect::MySql);
        assert!(Dialect::from_url("redis://h").is_err());
    }
}
