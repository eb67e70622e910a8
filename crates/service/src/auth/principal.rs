use wagate_core::{Role, Scope, ScopeSet, SessionId};
use wagate_store::SessionRecord;

/// The credential lacks a scope the operation needs.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("this credential lacks the `{0}` scope")]
pub struct MissingScope(pub Scope);

/// Who is calling, and with which rights.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub role: Role,
    pub scopes: ScopeSet,
    /// Sessions an API key is limited to (`None`: all of the user's).
    pub sessions: Option<Vec<SessionId>>,
    pub api_key_id: Option<String>,
    /// The client's address, for the audit log (set by the server for requests).
    pub ip: Option<String>,
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), MissingScope> {
        if self.scopes.allows(scope) { Ok(()) } else { Err(MissingScope(scope)) }
    }

    /// Admin users acting with admin rights see every tenant.
    pub fn sees_all(&self) -> bool {
        self.role == Role::Admin && self.scopes.allows(Scope::Admin)
    }

    /// Whether the session is visible to this caller. Invisible sessions answer 404, like
    /// sessions that do not exist, so ids of other tenants do not leak.
    pub fn can_see(&self, session: &SessionRecord) -> bool {
        self.may_access(&session.owner_id, Some(session.id.as_str()))
    }

    /// Whether something of `owner_id` is this caller's: its own, or any when acting as admin.
    pub fn owns(&self, owner_id: &str) -> bool {
        self.sees_all() || owner_id == self.user_id
    }

    /// Whether a record of `owner_id`, tied to `session_id` (or to no session), is visible to
    /// this caller: it owns it, and an API key limited to some sessions sees only what is tied
    /// to one of them. The one rule behind every visibility check.
    pub fn may_access(&self, owner_id: &str, session_id: Option<&str>) -> bool {
        let key_ok = match (&self.sessions, session_id) {
            (None, _) => true,
            (Some(allowed), Some(session)) => allowed.iter().any(|s| s.as_str() == session),
            (Some(_), None) => false,
        };
        self.owns(owner_id) && key_ok
    }

    /// The owner filter for listings: `None` for everyone.
    pub fn owner_filter(&self) -> Option<&str> {
        (!self.sees_all()).then_some(self.user_id.as_str())
    }
}
