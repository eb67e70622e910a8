use wagate_core::{Role, Scope, ScopeSet, SessionId};
use wagate_store::SessionRecord;

use crate::error::ApiError;

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
}

impl Principal {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden("missing_scope", format!("this credential lacks the `{scope}` scope")))
        }
    }

    /// Admin users acting with admin rights see every tenant.
    pub fn sees_all(&self) -> bool {
        self.role == Role::Admin && self.scopes.allows(Scope::Admin)
    }

    /// Whether the session is visible to this caller. Invisible sessions answer 404, like
    /// sessions that do not exist, so ids of other tenants do not leak.
    pub fn can_see(&self, session: &SessionRecord) -> bool {
        let tenant_ok = self.sees_all() || session.owner_id == self.user_id;
        let key_ok = self.sessions.as_ref().is_none_or(|allowed| allowed.contains(&session.id));
        tenant_ok && key_ok
    }

    /// The owner filter for listings: `None` for everyone.
    pub fn owner_filter(&self) -> Option<&str> {
        (!self.sees_all()).then_some(self.user_id.as_str())
    }
}
