//! `WHERE` clauses of the listings, built from optional filters, with their bound values.

use sqlx::any::AnyArguments;
use sqlx::query::Query;

#[derive(Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// Conditions joined with `AND`; each brings its values for the `?` it contains.
#[derive(Default)]
pub(crate) struct Where {
    clauses: Vec<std::borrow::Cow<'static, str>>,
    binds: Vec<Bind>,
}

impl Where {
    /// `column = value` when the value is given.
    pub(crate) fn text(&mut self, clause: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.clauses.push(clause.into());
            self.binds.push(Bind::Text(value.to_owned()));
        }
        self
    }

    pub(crate) fn int(&mut self, clause: &'static str, value: Option<i64>) -> &mut Self {
        if let Some(value) = value {
            self.clauses.push(clause.into());
            self.binds.push(Bind::Int(value));
        }
        self
    }

    /// Newest-first paging: rows created before `(created_at, id)`. Said as a range of
    /// `created_at` first, so an index on it reads from the cursor on rather than every row.
    pub(crate) fn before(&mut self, cursor: Option<&(i64, String)>) -> &mut Self {
        self.cursor("created_at <= ? AND (created_at < ? OR id < ?)", cursor)
    }

    /// The same paging for rows found through another index and sorted afterwards: `+` keeps
    /// the database from taking the range as the way in.
    pub(crate) fn before_sorted_after(&mut self, cursor: Option<&(i64, String)>) -> &mut Self {
        self.cursor("+created_at <= ? AND (+created_at < ? OR id < ?)", cursor)
    }

    fn cursor(&mut self, clause: &'static str, cursor: Option<&(i64, String)>) -> &mut Self {
        if let Some((created_at, id)) = cursor {
            self.clauses.push(clause.into());
            self.binds.extend([Bind::Int(*created_at), Bind::Int(*created_at), Bind::Text(id.clone())]);
        }
        self
    }

    /// A clause with several values of its own.
    pub(crate) fn texts(&mut self, clause: &'static str, values: Vec<String>) -> &mut Self {
        self.clauses.push(clause.into());
        self.binds.extend(values.into_iter().map(Bind::Text));
        self
    }

    /// `column IN (…)`: one of `values` (none matches an empty list).
    pub(crate) fn any_of(&mut self, column: &'static str, values: Vec<String>) -> &mut Self {
        if values.is_empty() {
            self.clauses.push("1 = 0".into());
            return self;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.clauses.push(format!("{column} IN ({marks})").into());
        self.binds.extend(values.into_iter().map(Bind::Text));
        self
    }

    /// `WHERE …`, or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) }
    }

    pub(crate) fn bind<'q>(
        &self,
        mut query: Query<'q, sqlx::Any, AnyArguments>,
    ) -> Query<'q, sqlx::Any, AnyArguments> {
        for bind in &self.binds {
            query = match bind {
                Bind::Text(text) => query.bind(text.clone()),
                Bind::Int(n) => query.bind(*n),
            };
        }
        query
    }
}
