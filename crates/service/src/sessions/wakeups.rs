//! Work queued on one node for a session another node runs reaches that node. Where the
//! database can carry a wake-up (PostgreSQL's `NOTIFY`), it is announced and the node that runs
//! the session starts at once; elsewhere, and as a safety net, idle dispatchers look again
//! regularly while other nodes are alive (`[cluster] idle_poll_ms`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use wagate_core::SessionId;

use super::SessionManager;

/// How long an idle dispatcher sleeps before looking again when it is the only node: work
/// accepted by this process wakes it at once.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// Announcements sent in one go at most.
const BATCH: usize = 256;

impl SessionManager {
    /// Tells the other nodes that work was queued for `id`, when there are any.
    pub(super) fn announce_work(&self, id: &SessionId) {
        if self.has_company() {
            let _ = self.inner.wakeups.send(id.clone());
        }
    }

    /// How long a dispatcher with nothing to do waits before looking again.
    pub(super) fn idle_recheck(&self) -> Duration {
        if !self.has_company() {
            return IDLE_RECHECK;
        }
        let poll = Duration::from_millis(self.inner.cluster.idle_poll_ms());
        if self.inner.listening.load(Ordering::SeqCst) { poll.max(IDLE_RECHECK) } else { poll }
    }

    /// Sends this node's announcements and wakes its dispatchers on the others', until
    /// shutdown. Does nothing where the database cannot carry them.
    pub(super) async fn carry_wakeups(self, mut announced: mpsc::UnboundedReceiver<SessionId>) {
        let mut listener = match self.store().listen_for_work().await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for work other nodes queue; looking for it regularly");
                return;
            }
        };
        self.inner.listening.store(true, Ordering::SeqCst);
        let mut shutdown = self.inner.shutdown.clone();
        loop {
            tokio::select! {
                first = announced.recv() => {
                    let Some(first) = first else { break };
                    let mut batch = HashSet::from([first]);
                    while batch.len() < BATCH {
                        match announced.try_recv() {
                            Ok(id) => { batch.insert(id); }
                            Err(_) => break,
                        }
                    }
                    for id in batch {
                        if let Err(err) = self.store().announce_work(id.as_str()).await {
                            tracing::warn!(session = %id, error = %err, "cannot announce queued work");
                        }
                    }
                }
                heard = listener.next() => match heard {
                    Ok(id) => self.wake(&id),
                    Err(err) => {
                        // Reconnected by the next call; whatever was missed is found by looking.
                        self.inner.listening.store(false, Ordering::SeqCst);
                        tracing::warn!(error = %err, "lost the database's wake-ups; listening again");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        self.inner.listening.store(true, Ordering::SeqCst);
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
        self.inner.listening.store(false, Ordering::SeqCst);
    }

    /// Wakes the dispatcher of session `id` when it runs here.
    fn wake(&self, id: &str) {
        let Ok(id) = SessionId::parse(id) else { return };
        if let Some(runtime) = self.live_runtime(&id) {
            runtime.work.notify_one();
        }
    }
}
