//! New messages without an idempotency key, written together: several requests' rows in one
//! multi-row `INSERT` (see [`GroupCommit`]).

use wagate_store::{MessageRecord, Store};

use crate::group_commit::GroupCommit;

pub(super) type MessageWriter = GroupCommit<MessageRecord, MessageRecord>;

pub(super) fn message_writer(store: Store) -> MessageWriter {
    GroupCommit::start(
        256,
        |_, _| true,
        std::sync::Arc::new(move |records: Vec<MessageRecord>| {
            let store = store.clone();
            Box::pin(async move { store.insert_new_messages(&records).await.map(|()| records) })
        }),
    )
}

#[cfg(test)]
mod tests {
    use wagate_core::{MessageContent, SessionId};
    use wagate_store::{NewMessage, StoreError};

    use super::*;
    use crate::group_commit::WriteError;
    use crate::time::now_ms;

    fn record(id: &str, session: &SessionId, content: &MessageContent) -> MessageRecord {
        NewMessage {
            id,
            owner_id: "owner",
            session_id: session,
            pool: None,
            seq: 1,
            priority: 0,
            recipient: "+6281234500001",
            content,
            expires_at: None,
            idempotency_key: None,
            request_hash: None,
        }
        .record(now_ms())
    }

    #[tokio::test]
    async fn concurrent_messages_share_writes_and_a_bad_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let writer = message_writer(store.clone());
        let session = SessionId::parse("s1").unwrap();
        let text = MessageContent::Text { body: "hi".into(), mentions: Vec::new(), reply_to: None };

        let inserts = (0..100).map(|n| writer.submit(record(&format!("M{n}"), &session, &text)));
        let stored = futures::future::join_all(inserts).await;
        assert!(stored.iter().all(Result::is_ok));
        for n in [0, 57, 99] {
            assert!(store.message(&format!("M{n}")).await.unwrap().is_some(), "M{n} is committed");
        }

        // The same id twice in one write: the write fails, then each row is tried alone.
        let (first, again, other) = tokio::join!(
            writer.submit(record("DUP", &session, &text)),
            writer.submit(record("DUP", &session, &text)),
            writer.submit(record("OK", &session, &text)),
        );
        assert!(first.is_ok());
        assert!(matches!(again, Err(WriteError::Store(StoreError::Conflict { .. }))), "{again:?}");
        assert!(other.is_ok());
        assert!(store.message("OK").await.unwrap().is_some());
    }
}
