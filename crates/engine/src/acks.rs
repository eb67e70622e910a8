//! The one registry of messages waiting for the network's acknowledgement, shared by the
//! engines. [`Connection::send`](crate::Connection::send) hands the caller a [`PendingAck`]
//! that resolves when the engine [`resolve`](PendingAcks::resolve)s the message's id; a
//! connection that drops first resolves it as [`ConnectionDropped`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::SendFailure;

/// What the network said about a message: accepted, or why not.
pub type SendOutcome = Result<(), SendFailure>;

/// The connection ended before the network acknowledged the message. Acks come only on the
/// connection that carried the message; sending it again (same id) after a reconnect is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection closed before WhatsApp acknowledged the message")]
pub struct ConnectionDropped;

/// The acknowledgement of one sent message, to await.
#[derive(Debug)]
pub struct PendingAck(oneshot::Receiver<SendOutcome>);

impl PendingAck {
    /// An acknowledgement known at once.
    pub fn ready(outcome: SendOutcome) -> Self {
        let (answer, pending) = oneshot::channel();
        let _ = answer.send(outcome);
        PendingAck(pending)
    }
}

impl Future for PendingAck {
    type Output = Result<SendOutcome, ConnectionDropped>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|answer| answer.map_err(|_| ConnectionDropped))
    }
}

/// Message id → who awaits its acknowledgement.
#[derive(Debug, Default)]
pub struct PendingAcks {
    waiting: Mutex<HashMap<String, oneshot::Sender<SendOutcome>>>,
}

impl PendingAcks {
    /// Called before the message is written, so an ack can never arrive first.
    pub fn expect(&self, id: &str) -> PendingAck {
        let (answer, pending) = oneshot::channel();
        self.lock().insert(id.to_owned(), answer);
        PendingAck(pending)
    }

    /// The message was not written after all.
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The connection dropped: every message waiting resolves as [`ConnectionDropped`].
    pub fn connection_lost(&self) {
        self.lock().clear();
    }

    /// The network's answer for `id`; false when nobody waits for it (not ours, or answered).
    pub fn resolve(&self, id: &str, outcome: SendOutcome) -> bool {
        match self.lock().remove(id) {
            Some(answer) => {
                let _ = answer.send(outcome);
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<SendOutcome>>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acks_resolve_once_and_a_lost_connection_drops_them() {
        let acks = PendingAcks::default();
        let (a, b) = (acks.expect("A"), acks.expect("B"));
        assert!(acks.resolve("A", Ok(())));
        assert!(!acks.resolve("A", Ok(())), "a second ack for the same id is ignored");
        assert!(acks.resolve("B", Err(SendFailure::ReachOutRestricted)));
        assert!(!acks.resolve("C", Ok(())), "acks of messages we did not send are not ours");
        assert_eq!(a.await, Ok(Ok(())));
        assert_eq!(b.await, Ok(Err(SendFailure::ReachOutRestricted)));
        let d = acks.expect("D");
        acks.connection_lost();
        assert!(!acks.resolve("D", Ok(())), "nothing is waited for across connections");
        assert_eq!(d.await, Err(ConnectionDropped));
        assert_eq!(PendingAck::ready(Ok(())).await, Ok(Ok(())));
    }
}
