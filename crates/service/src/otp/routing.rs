//! Which session sends a code: the one named, else a connected member of the pool (or of all
//! the caller's sessions) in turn; and the code itself (fixed on test numbers of some
//! engines).

use wagate_core::otp::OtpCode;
use wagate_core::{OtpMode, Phone, SessionId, SessionStatus};
use wagate_store::SessionRecord;

use super::{OtpError, OtpService};
use crate::auth::Principal;
use crate::sessions::SessionError;

impl OtpService {
    /// The caller's session `id` (not found when it is another's).
    pub(super) async fn visible_session(
        &self,
        principal: &Principal,
        id: &SessionId,
    ) -> Result<SessionRecord, OtpError> {
        let session = self.sessions.get(id).await?;
        if !principal.can_see(&session) {
            return Err(SessionError::NotFound.into());
        }
        Ok(session)
    }

    /// The session that sends: the one named, else a connected member of the pool (or of all
    /// the caller's sessions), preferring members WhatsApp does not restrict right now.
    pub(super) async fn route(
        &self,
        principal: &Principal,
        explicit: Option<SessionRecord>,
        pool: Option<&str>,
        mode: OtpMode,
    ) -> Result<SessionRecord, OtpError> {
        if let Some(session) = explicit {
            if session.status != SessionStatus::Connected {
                return Err(SessionError::Engine(wagate_engine::EngineError::NotConnected).into());
            }
            return Ok(session);
        }
        let candidates: Vec<SessionRecord> = match pool {
            Some(pool) => {
                let members = self.store.pool_sessions(&principal.user_id, pool).await?;
                let members: Vec<_> = members.into_iter().filter(|s| principal.can_see(s)).collect();
                if members.is_empty() {
                    return Err(SessionError::UnknownPool(pool.to_owned()).into());
                }
                members
            }
            None => self
                .store
                .owner_sessions(&principal.user_id)
                .await?
                .into_iter()
                .filter(|s| principal.can_see(s))
                .collect(),
        };
        let connected: Vec<&SessionRecord> =
            candidates.iter().filter(|s| s.status == SessionStatus::Connected).collect();
        let unrestricted: Vec<&SessionRecord> =
            connected.iter().copied().filter(|s| !self.sessions.is_restricted(s)).collect();
        let choices =
            if unrestricted.is_empty() || mode == OtpMode::Inbound { &connected } else { &unrestricted };
        match self.turn.pick(choices) {
            Some(session) => Ok((*session).clone()),
            None => {
                let scope = pool.map_or("of yours".to_owned(), |p| format!("in pool `{p}`"));
                Err(OtpError::NoSession(format!("no session {scope} is connected")))
            }
        }
    }

    /// A code from the OS generator, unless the session's engine has a fixed code for test
    /// numbers.
    pub(super) fn new_code(&self, session: &SessionRecord, phone: &Phone, length: usize) -> OtpCode {
        self.sessions.fixed_test_code(session, phone, length).unwrap_or_else(|| OtpCode::generate(length))
    }
}
