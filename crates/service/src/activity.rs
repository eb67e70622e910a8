//! What happened on a session: its activity log and the messages it received in a chat.

use wagate_core::SessionId;
use wagate_store::{InboundRecord, SessionEventRecord, Store, StoreError};

#[derive(Clone)]
pub struct Activity {
    store: Store,
}

impl Activity {
    pub fn new(store: Store) -> Self {
        Activity { store }
    }

    /// The session's events, newest first, before the event `before` if given.
    pub async fn session_events(
        &self,
        session: &SessionId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<Vec<SessionEventRecord>, StoreError> {
        self.store.session_events(session, before, limit).await
    }

    /// Messages the session received in `chat` (a JID), newest first, sent before `before`
    /// (unix ms) if given.
    pub async fn chat_messages(
        &self,
        session: &SessionId,
        chat: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundRecord>, StoreError> {
        self.store.inbound_messages(session, chat, before, limit).await
    }
}
