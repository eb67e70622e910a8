//! Statements sized by a batch, kept to a few sizes so that each text is parsed once per
//! connection and then served from the statement cache. Parsing a statement again for every
//! batch size cost more than running it.
//!
//! - An `IN (…)` list is padded to a power of four by repeating its last value, which selects
//!   nothing more: 1, 4, 16, 64 or 256 placeholders.
//! - Multi-row `INSERT`s go in runs of a power of two rows (at most [`MAX_ROWS`]), largest
//!   first: 13 rows are runs of 8, 4 and 1.

use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::{Result, Store};

/// A query on any of the databases.
pub(crate) type AnyQuery<'q> = Query<'q, sqlx::Any, AnyArguments>;

/// The most rows one `INSERT` carries.
pub(crate) const MAX_ROWS: usize = 128;

/// The values of an `IN (…)` list and the padded length its statement is written for.
pub(crate) struct InList<'v, T> {
    values: &'v [T],
    len: usize,
}

impl<'v, T> InList<'v, T> {
    /// `values` must not be empty (`IN ()` is not SQL).
    pub(crate) fn new(values: &'v [T]) -> Self {
        assert!(!values.is_empty(), "an IN list needs a value");
        let mut len = 1;
        while len < values.len() {
            len *= 4;
        }
        InList { values, len }
    }

    /// The placeholders, e.g. `?, ?, ?, ?`.
    pub(crate) fn marks(&self) -> String {
        placeholders(self.len)
    }

    /// Binds the values, then the last one again up to the padded length.
    pub(crate) fn bind<'q>(
        &self,
        mut query: Query<'q, sqlx::Any, AnyArguments>,
    ) -> Query<'q, sqlx::Any, AnyArguments>
    where
        T: sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Clone + Send + 'q,
    {
        let last = &self.values[self.values.len() - 1];
        let padding = std::iter::repeat_n(last, self.len - self.values.len());
        for value in self.values.iter().chain(padding) {
            query = query.bind(value.clone());
        }
        query
    }
}

impl Store {
    /// `UPDATE {table} SET {set} WHERE id IN (ids) AND {condition}`; returns the ids of the
    /// rows it changed. One `UPDATE … RETURNING` where the database has it; elsewhere the rows
    /// are selected and locked first, in one transaction. `bind_set` and `bind_condition` bind
    /// the placeholders of `set` and `condition`.
    pub(crate) async fn update_ids(
        &self,
        table: &str,
        set: &str,
        ids: &[&str],
        condition: &str,
        bind_set: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
        bind_condition: impl for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    ) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids_of = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<String>> {
            Ok(rows.iter().map(|row| row.try_get("id")).collect::<Result<_, _>>()?)
        };
        let list = InList::new(ids);
        let selected = format!("id IN ({}) AND {condition}", list.marks());
        if self.dialect.update_returning() {
            let update =
                sqlx::query(self.sql(&format!("UPDATE {table} SET {set} WHERE {selected} RETURNING id")));
            let update = bind_condition(list.bind(bind_set(update)));
            return ids_of(update.fetch_all(&mut *self.writer().await?).await?);
        }
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        let select = sqlx::query(
            self.sql(&format!("SELECT id FROM {table} WHERE {selected}{}", self.dialect.lock_rows())),
        );
        let changed = ids_of(bind_condition(list.bind(select)).fetch_all(&mut *tx).await?)?;
        if !changed.is_empty() {
            let locked: Vec<&str> = changed.iter().map(String::as_str).collect();
            let locked = InList::new(&locked);
            let update =
                sqlx::query(self.sql(&format!("UPDATE {table} SET {set} WHERE id IN ({})", locked.marks())));
            locked.bind(bind_set(update)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// `n` comma-separated `?`.
pub(crate) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Splits `rows` into runs of a power of two (at most [`MAX_ROWS`]), largest first.
pub(crate) fn row_runs<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let len = MAX_ROWS.min(1 << rows.len().ilog2());
        let (run, rest) = rows.split_at(len);
        rows = rest;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_are_padded_to_a_power_of_four() {
        let lens: Vec<usize> =
            [1, 2, 4, 5, 16, 17, 64, 65, 128].iter().map(|&n| InList::new(&vec![0; n]).len).collect();
        assert_eq!(lens, [1, 4, 4, 16, 16, 64, 64, 256, 256]);
        assert_eq!(InList::new(&[1, 2]).marks(), "?, ?, ?, ?");
    }

    #[test]
    fn rows_go_in_runs_of_a_power_of_two() {
        let runs = |n: usize| row_runs(&vec![0; n]).map(<[i32]>::len).collect::<Vec<_>>();
        assert_eq!(runs(1), [1]);
        assert_eq!(runs(13), [8, 4, 1]);
        assert_eq!(runs(128), [128]);
        assert_eq!(runs(300), [128, 128, 32, 8, 4]);
        assert!(runs(0).is_empty());
    }
}
