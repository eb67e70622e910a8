//! Group commit for new messages: the messages of requests that arrive while a write is under
//! way share the next one. The database has one writer, and one multi-row `INSERT` costs about
//! what a single row does; every request still gets its answer only after its row is committed.

use tokio::sync::{mpsc, oneshot};
use wagate_store::{MessageRecord, Store, StoreError};

/// At most this many messages per write.
const MAX_BATCH: usize = 256;

type Committed = Result<MessageRecord, StoreError>;

struct Pending {
    record: MessageRecord,
    done: oneshot::Sender<Committed>,
}

/// Why a message could not be handed to the writer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the server is shutting down")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) struct MessageWriter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl MessageWriter {
    /// Starts the writer task; it ends when the writer is dropped.
    pub(super) fn start(store: Store) -> MessageWriter {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(store, pending));
        MessageWriter { queue }
    }

    /// Stores `record` with the next write and returns it once it is committed.
    pub(super) async fn insert(&self, record: MessageRecord) -> Result<MessageRecord, WriteError> {
        let (done, committed) = oneshot::channel();
        self.queue.send(Pending { record, done }).map_err(|_| WriteError::Stopped)?;
        Ok(committed.await.map_err(|_| WriteError::Stopped)??)
    }
}

async fn run(store: Store, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (records, waiting): (Vec<MessageRecord>, Vec<_>) =
            batch.drain(..).map(|pending| (pending.record, pending.done)).unzip();
        if store.insert_new_messages(&records).await.is_ok() {
            for (record, done) in records.into_iter().zip(waiting) {
                let _ = done.send(Ok(record));
            }
            continue;
        }
        // One bad row must not fail the others: each on its own, with its own answer.
        for (record, done) in records.into_iter().zip(waiting) {
            let result = store.insert_new_messages(std::slice::from_ref(&record)).await;
            let _ = done.send(result.map(|()| record));
        }
    }
}

#[cfg(test)]
mod tests {
    use wagate_core::{MessageContent, SessionId};
    use wagate_store::NewMessage;

    use super::*;

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
        .record(wagate_store::now_ms())
    }

    #[tokio::test]
    async fn concurrent_messages_share_writes_and_a_bad_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let writer = MessageWriter::start(store.clone());
        let session = SessionId::parse("s1").unwrap();
        let text = MessageContent::Text { body: "hi".into(), mentions: Vec::new(), reply_to: None };

        let inserts = (0..100).map(|n| writer.insert(record(&format!("M{n}"), &session, &text)));
        let stored = futures::future::join_all(inserts).await;
        assert!(stored.iter().all(Result::is_ok));
        for n in [0, 57, 99] {
            assert!(store.message(&format!("M{n}")).await.unwrap().is_some(), "M{n} is committed");
        }

        // The same id twice in one write: the write fails, then each row is tried alone.
        let (first, again, other) = tokio::join!(
            writer.insert(record("DUP", &session, &text)),
            writer.insert(record("DUP", &session, &text)),
            writer.insert(record("OK", &session, &text)),
        );
        assert!(first.is_ok());
        assert!(matches!(again, Err(WriteError::Store(StoreError::Conflict { .. }))), "{again:?}");
        assert!(other.is_ok());
        assert!(store.message("OK").await.unwrap().is_some());
    }
}
