//! Finding the sending session, and reading, retrying or cancelling messages, as a caller
//! may see them.

use wagate_store::{MessageEventRecord, MessageFilter, MessageRecord, SessionRecord};

use super::{MessageError, Messages};
use crate::auth::Principal;
use crate::sessions::PoolStrategy;

impl Messages {
    /// The caller's session linked to `phone` (any accepted format).
    pub async fn session_by_phone(
        &self,
        principal: &Principal,
        phone: &str,
    ) -> Result<SessionRecord, MessageError> {
        let phone = self.phones.read_for_caller(phone, principal).await?;
        let record = self.store.session_by_phone(principal.owner_filter(), phone.e164()).await?;
        record
            .filter(|r| principal.can_see(r))
            .ok_or_else(|| MessageError::NoSessionForPhone(phone.e164().to_owned()))
    }

    /// A healthy session of the caller's pool, picked by `strategy`.
    pub async fn session_from_pool(
        &self,
        principal: &Principal,
        pool: &str,
        strategy: PoolStrategy,
    ) -> Result<SessionRecord, MessageError> {
        let chosen = self.sessions.pick_from_pool(&principal.user_id, pool, strategy).await?;
        if principal.can_see(&chosen) { Ok(chosen) } else { Err(MessageError::PoolNotFound(pool.to_owned())) }
    }

    /// The message if the caller may see it; [`MessageError::NotFound`] otherwise.
    pub async fn visible_message(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<MessageRecord, MessageError> {
        if id.len() > 64 {
            return Err(MessageError::NotFound);
        }
        let message = self.sessions.outbox().message(id).await.map_err(|_| MessageError::NotFound)?;
        if principal.may_access(&message.owner_id, Some(message.session_id.as_str())) {
            Ok(message)
        } else {
            Err(MessageError::NotFound)
        }
    }

    /// [`Self::visible_message`] with every status change, oldest first.
    pub async fn message_with_history(
        &self,
        principal: &Principal,
        id: &str,
    ) -> Result<(MessageRecord, Vec<MessageEventRecord>), MessageError> {
        let message = self.visible_message(principal, id).await?;
        let history = self.store.message_history(&message.id).await?;
        Ok((message, history))
    }

    /// Queues a failed message again (same id) and wakes its session's dispatcher.
    pub async fn retry(&self, principal: &Principal, id: &str) -> Result<MessageRecord, MessageError> {
        let message = self.visible_message(principal, id).await?;
        let message = self.sessions.outbox().retry(&message.id).await?;
        if let Ok(session) = self.sessions.get(&message.session_id).await {
            self.sessions.notify_work(&session);
        }
        Ok(message)
    }

    /// Cancels a queued message.
    pub async fn cancel(&self, principal: &Principal, id: &str) -> Result<MessageRecord, MessageError> {
        let message = self.visible_message(principal, id).await?;
        Ok(self.sessions.outbox().cancel(&message.id).await?)
    }

    /// A page of messages matching `filter`, newest first, without those of sessions an API
    /// key is not limited to, and the cursor of the next page (`created_at:id`; taken before
    /// that last step, so pages stay stable).
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &MessageFilter,
    ) -> Result<(Vec<MessageRecord>, Option<String>), MessageError> {
        let visible: Option<Vec<String>> = match &principal.sessions {
            Some(_) => {
                let records = self.sessions.list(principal.owner_filter()).await?;
                Some(records.into_iter().filter(|r| principal.can_see(r)).map(|s| s.id.to_string()).collect())
            }
            None => None,
        };
        let mut records = self.store.messages(filter).await?;
        let next_cursor = (records.len() as u32 == filter.limit)
            .then(|| records.last().map(|m| format!("{}:{}", m.created_at, m.id)))
            .flatten();
        if let Some(visible) = visible {
            records.retain(|m| visible.contains(&m.session_id.to_string()));
        }
        Ok((records, next_cursor))
    }
}
