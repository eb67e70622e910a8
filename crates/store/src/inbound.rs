//! Messages that arrived for a session.

use sqlx::Row;
use wagate_core::{MessageContent, SessionId};

use crate::{Fence, Result, Store, StoreError, now_ms};

#[derive(Debug, Clone)]
pub struct InboundRecord {
    pub id: String,
    pub session_id: String,
    pub wa_id: String,
    pub chat: String,
    pub sender_phone: Option<String>,
    pub sender_lid: Option<String>,
    pub push_name: Option<String>,
    pub content: MessageContent,
    pub quoted_id: Option<String>,
    pub sent_at: i64,
}

/// What the store needs to know of an inbound message (the engine's type stays in the engine).
pub trait InboundFields {
    fn wa_id(&self) -> &str;
    fn chat(&self) -> &str;
    fn sender_phone(&self) -> Option<String>;
    fn sender_lid(&self) -> Option<&str>;
    fn push_name(&self) -> Option<&str>;
    fn content(&self) -> &MessageContent;
    fn quoted_id(&self) -> Option<&str>;
    fn sent_at(&self) -> i64;
}

impl Store {
    /// Stores an inbound message once; false when this WhatsApp id was stored before. `fence`:
    /// the session's lease as the receiving node holds it; refused once it lost it.
    pub async fn insert_inbound_message(
        &self,
        session: &SessionId,
        fence: &Fence,
        message: &impl InboundFields,
    ) -> Result<bool> {
        let mut connection = self.writer().await?;
        let mut tx = connection.begin().await?;
        self.check_fence(&mut tx, fence, now_ms()).await?;
        let content = serde_json::to_string(message.content()).expect("content serializes");
        let inserted = sqlx::query(self.sql(
            "INSERT INTO inbound_messages (id, session_id, wa_id, chat, sender_phone, sender_lid, push_name, kind, content, \
             quoted_id, sent_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(wagate_core::new_id())
        .bind(session.as_str())
        .bind(message.wa_id())
        .bind(message.chat())
        .bind(message.sender_phone())
        .bind(message.sender_lid())
        .bind(message.push_name())
        .bind(message.content().kind())
        .bind(content)
        .bind(message.quoted_id())
        .bind(message.sent_at())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::conflict_on_unique("inbound message"));
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                Ok(true)
            }
            Err(StoreError::Conflict { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// A chat's inbound messages, newest first; `before` is a `sent_at` cursor.
    pub async fn inbound_messages(
        &self,
        session: &SessionId,
        chat: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboundRecord>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, session_id, wa_id, chat, sender_phone, sender_lid, push_name, content, quoted_id, sent_at \
             FROM inbound_messages WHERE session_id = ? AND chat = ? AND sent_at < ? ORDER BY sent_at DESC, id DESC LIMIT ?",
        ))
        .bind(session.as_str())
        .bind(chat)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let content: String = row.try_get("content")?;
                Ok(InboundRecord {
                    id: row.try_get("id")?,
                    session_id: row.try_get("session_id")?,
                    wa_id: row.try_get("wa_id")?,
                    chat: row.try_get("chat")?,
                    sender_phone: row.try_get("sender_phone")?,
                    sender_lid: row.try_get("sender_lid")?,
                    push_name: row.try_get("push_name")?,
                    content: serde_json::from_str(&content).map_err(|_| StoreError::Corrupt {
                        column: "inbound_messages.content",
                        value: content,
                    })?,
                    quoted_id: row.try_get("quoted_id")?,
                    sent_at: row.try_get("sent_at")?,
                })
            })
            .collect()
    }
}
