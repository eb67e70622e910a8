//! JSON shapes of the designed API (`/api/v1`).

use serde::Serialize;
use utoipa::ToSchema;
use wagate_core::{EngineKind, Role, SessionStatus};
use wagate_store::{ApiKeyRecord, SessionRecord, UserRecord};

use wagate_service::sessions::AccountView;
use wagate_service::time::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub name: String,
    #[schema(value_type = String, example = "sandbox")]
    pub engine: EngineKind,
    #[schema(value_type = String, example = "connected")]
    pub status: SessionStatus,
    /// Why the session is in this status (e.g. `qr_codes_exhausted`).
    pub status_reason: Option<String>,
    /// The linked WhatsApp account, once paired.
    #[schema(value_type = Option<super::schemas::AccountViewSchema>)]
    pub account: Option<AccountView>,
    /// Whether the session reconnects by itself (after `connect`, until `disconnect`/`logout`).
    pub auto_connect: bool,
    pub webhook_url: Option<String>,
    /// The session's own pacing (absent: its engine's default).
    #[schema(value_type = Option<Object>)]
    pub pacing: Option<wagate_core::Pacing>,
    pub pool: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub connected_at: Option<String>,
    /// The cluster node that runs the session's connection right now (absent: none does).
    pub node: Option<String>,
}

impl SessionView {
    pub fn on_node(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }
}

impl From<&SessionRecord> for SessionView {
    fn from(r: &SessionRecord) -> Self {
        SessionView {
            id: r.id.to_string(),
            name: r.name.clone(),
            engine: r.engine,
            status: r.status,
            status_reason: r.status_reason.clone(),
            account: r.account.as_ref().map(AccountView::from),
            auto_connect: r.auto_connect,
            webhook_url: r.webhook_url.clone(),
            pacing: r.pacing,
            pool: r.pool.clone(),
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            connected_at: r.connected_at.map(rfc3339),
            node: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            role: u.role,
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// Sessions the key is limited to; absent: all of its owner's sessions.
    pub sessions: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&ApiKeyRecord> for ApiKeyView {
    fn from(k: &ApiKeyRecord) -> Self {
        ApiKeyView {
            id: k.id.clone(),
            user_id: k.user_id.clone(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            scopes: k.scopes.iter().map(|s| s.to_string()).collect(),
            sessions: k.sessions.as_ref().map(|ids| ids.iter().map(ToString::to_string).collect()),
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            revoked_at: k.revoked_at.map(rfc3339),
        }
    }
}
