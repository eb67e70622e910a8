//! Who may do what: user roles and API-key scopes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sees and manages every tenant's resources and the users.
    Admin,
    /// Sees and manages only what it owns.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(format!("unknown role `{other}` (expected admin or user)")),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send messages.
    Send,
    /// Send and verify one-time passwords.
    Otp,
    /// Create, change, link and delete sessions.
    Sessions,
    /// Read sessions, messages and events.
    Read,
    /// Everything, across tenants (only for admin users).
    Admin,
    /// Read `GET /metrics`, the whole server's figures (only for admin users).
    Metrics,
}

impl Scope {
    pub const ALL: [Scope; 6] =
        [Scope::Send, Scope::Otp, Scope::Sessions, Scope::Read, Scope::Admin, Scope::Metrics];

    /// Scopes only admin users' credentials may carry: they see every tenant.
    pub fn admin_only(self) -> bool {
        matches!(self, Scope::Admin | Scope::Metrics)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Otp => "otp",
            Scope::Sessions => "sessions",
            Scope::Read => "read",
            Scope::Admin => "admin",
            Scope::Metrics => "metrics",
        }
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            format!("unknown scope `{s}` (expected one of send, otp, sessions, read, admin, metrics)")
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes; `admin` implies every other scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn new(scopes: impl IntoIterator<Item = Scope>) -> Self {
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort();
        scopes.dedup();
        ScopeSet(scopes)
    }

    pub fn all() -> Self {
        ScopeSet::new(Scope::ALL)
    }

    pub fn allows(&self, scope: Scope) -> bool {
        self.0.contains(&scope) || self.0.contains(&Scope::Admin)
    }

    pub fn contains_exactly(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Comma-separated form used in storage and on the command line.
    pub fn to_csv(&self) -> String {
        self.0.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    }

    pub fn parse_csv(csv: &str) -> Result<Self, String> {
        csv.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Scope::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map(ScopeSet::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_scope_implies_the_others() {
        let admin = ScopeSet::new([Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let send = ScopeSet::new([Scope::Send]);
        assert!(send.allows(Scope::Send));
        assert!(!send.allows(Scope::Sessions));
    }

    #[test]
    fn csv_round_trip_sorts_and_dedups() {
        let set = ScopeSet::parse_csv("read, send,read").unwrap();
        assert_eq!(set.to_csv(), "send,read");
        assert_eq!(ScopeSet::parse_csv(&set.to_csv()).unwrap(), set);
        assert!(ScopeSet::parse_csv("send,root").unwrap_err().contains("root"));
    }
}
