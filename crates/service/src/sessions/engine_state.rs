//! A session's engine state (a linked device's credentials and keys) in the database, for the
//! engine through its [`SessionState`] port. Every write carries the session's fence: a node
//! that lost the session's lease cannot change the keys of the node that runs it now (a stale
//! ratchet written over a fresh one would break the session's encryption), and learns at once
//! that it must let the session go.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use wagate_core::SessionId;
use wagate_engine::state::{SessionState, StateChange, StateEntry, StateError};
use wagate_store::{Fence, Store, StoreError};

use super::{Inner, SessionManager};

pub(super) struct DatabaseState {
    store: Store,
    session: SessionId,
    holder: Box<dyn LeaseHolder>,
}

/// Who holds the session's lease on this node.
trait LeaseHolder: Send + Sync {
    /// The fence writes go under: none when this node does not hold the session.
    fn fence(&self, session: &SessionId) -> Option<Fence>;

    /// The database refused a write under the fence: the session must go at once.
    fn fenced_off(&self, session: &SessionId);
}

/// The session manager, held weakly: it holds the connection that holds this.
impl LeaseHolder for Weak<Inner> {
    fn fence(&self, session: &SessionId) -> Option<Fence> {
        SessionManager { inner: self.upgrade()? }.fence(session)
    }

    fn fenced_off(&self, session: &SessionId) {
        let Some(inner) = self.upgrade() else { return };
        let session = session.clone();
        tokio::spawn(async move { SessionManager { inner }.fenced_off(&session).await });
    }
}

impl DatabaseState {
    pub(super) fn new(manager: &SessionManager, session: &SessionId) -> Arc<Self> {
        Arc::new(DatabaseState {
            store: manager.store().clone(),
            session: session.clone(),
            holder: Box::new(Arc::downgrade(&manager.inner)),
        })
    }

    fn fence(&self) -> Result<Fence, StateError> {
        self.holder.fence(&self.session).ok_or(StateError::Fenced)
    }

    fn failed(&self, err: StoreError) -> StateError {
        match err {
            StoreError::Fenced { .. } => {
                self.holder.fenced_off(&self.session);
                StateError::Fenced
            }
            other => StateError::Failed(other.to_string()),
        }
    }
}

#[async_trait]
impl SessionState for DatabaseState {
    async fn get(&self, space: &str, scope: &str, names: &[&str]) -> Result<Vec<StateEntry>, StateError> {
        self.store.state_get(&self.session, space, scope, names).await.map_err(|err| self.failed(err))
    }

    async fn list(&self, space: &str, scope: Option<&str>) -> Result<Vec<StateEntry>, StateError> {
        self.store.state_list(&self.session, space, scope).await.map_err(|err| self.failed(err))
    }

    async fn max_name(&self, space: &str) -> Result<Option<String>, StateError> {
        self.store.state_max_name(&self.session, space).await.map_err(|err| self.failed(err))
    }

    async fn any_prefixed(&self, spaces: &[&str], prefixes: &[&str]) -> Result<bool, StateError> {
        self.store.state_any_prefixed(&self.session, spaces, prefixes).await.map_err(|err| self.failed(err))
    }

    async fn change(&self, changes: Vec<StateChange>) -> Result<Vec<u64>, StateError> {
        let fence = self.fence()?;
        self.store.state_change(&self.session, Some(&fence), &changes).await.map_err(|err| self.failed(err))
    }

    async fn take(&self, space: &str, scope: &str, name: &str) -> Result<Option<StateEntry>, StateError> {
        let fence = self.fence()?;
        self.store
            .state_take(&self.session, Some(&fence), space, scope, name)
            .await
            .map_err(|err| self.failed(err))
    }

    async fn exists(&self) -> Result<bool, StateError> {
        self.store.state_exists(&self.session).await.map_err(|err| self.failed(err))
    }

    /// Not fenced: the session is being unlinked or deleted, wherever it ran.
    async fn forget(&self) -> Result<(), StateError> {
        self.store.state_forget(&self.session).await.map(drop).map_err(|err| self.failed(err))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use wagate_engine::web::backend::StateBackend;
    use wagate_testkit::DatabaseKind;

    use crate::test_store::store_on;

    use super::*;

    /// A node that holds one lease, under whatever fence the test gives it.
    #[derive(Clone, Default)]
    struct Holder {
        fence: Arc<Mutex<Option<Fence>>>,
        fenced_off: Arc<Mutex<Vec<SessionId>>>,
    }

    impl LeaseHolder for Holder {
        fn fence(&self, _session: &SessionId) -> Option<Fence> {
            self.fence.lock().unwrap().clone()
        }

        fn fenced_off(&self, session: &SessionId) {
            self.fenced_off.lock().unwrap().push(session.clone());
        }
    }

    const KINDS: [DatabaseKind; 3] = [DatabaseKind::Sqlite, DatabaseKind::Postgres, DatabaseKind::Mysql];

    /// A session whose lease `node` holds until far in the future.
    async fn held_state(store: &Store, session: &str, node: &str) -> (DatabaseState, Holder) {
        let session = SessionId::parse(session).unwrap();
        let lease = format!("session:{session}");
        let held = store.take_lease(&lease, node, 0, i64::MAX / 2).await.unwrap().expect("free");
        let holder = Holder::default();
        *holder.fence.lock().unwrap() = Some(Fence { lease, holder: node.into(), epoch: held.epoch });
        let state = DatabaseState { store: store.clone(), session, holder: Box::new(holder.clone()) };
        (state, holder)
    }

    /// The client's storage on the database passes the cases its own in-memory backend passes.
    #[tokio::test]
    async fn the_clients_storage_conformance_cases_pass_on_every_database() {
        for kind in KINDS {
            let (store, _database, _dir) = store_on(kind).await;
            let sessions = std::sync::atomic::AtomicUsize::new(0);
            wagate_engine::web::conformance::run(|| async {
                // Every case on a session of its own: nothing of one is seen by another.
                let n = sessions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (state, _) = held_state(&store, &format!("s{n}"), "node-a").await;
                StateBackend::new(Arc::new(state))
            })
            .await;
            eprintln!("{kind:?}: passed");
        }
    }

    /// A node that lost the session's lease changes none of its keys, and lets it go.
    #[tokio::test]
    async fn a_node_that_lost_the_lease_cannot_write_the_sessions_keys() {
        for kind in KINDS {
            let (store, _database, _dir) = store_on(kind).await;
            let (state, holder) = held_state(&store, "s1", "node-a").await;
            let written = StateEntry::new("session", "", "555.0", b"ratchet".to_vec(), 0);
            state.change(vec![StateChange::Put(vec![written.clone()])]).await.unwrap();
            // The lease runs out and node B takes it: a new epoch.
            let lease = "session:s1";
            store.release_lease(lease, "node-a", 0).await.unwrap();
            store.take_lease(lease, "node-b", 1, i64::MAX / 2).await.unwrap().expect("taken over");
            let stale = StateEntry::new("session", "", "555.0", b"stale".to_vec(), 0);
            let refused = state.change(vec![StateChange::Put(vec![stale])]).await.unwrap_err();
            assert!(matches!(refused, StateError::Fenced), "{kind:?}: {refused:?}");
            assert!(matches!(state.take("session", "", "555.0").await, Err(StateError::Fenced)));
            assert_eq!(holder.fenced_off.lock().unwrap().len(), 2, "{kind:?}: told to let the session go");
            let kept = state.get("session", "", &["555.0"]).await.unwrap();
            assert_eq!(kept, vec![written], "{kind:?}: node B's keys are as they were");
            // Not holding the session at all: refused before the database is asked.
            *holder.fence.lock().unwrap() = None;
            assert!(matches!(state.change(vec![]).await, Err(StateError::Fenced)));
        }
    }

    /// What one session keeps is its own, and goes with it.
    #[tokio::test]
    async fn sessions_keep_their_own_state_and_forget_it() {
        for kind in KINDS {
            let (store, _database, _dir) = store_on(kind).await;
            let (a, _) = held_state(&store, "a", "node").await;
            let (b, _) = held_state(&store, "b", "node").await;
            let big = vec![7u8; 300_000]; // an app-state collection's hash state can be large
            a.change(vec![StateChange::Put(vec![StateEntry::new(
                "app_version",
                "",
                "regular",
                big.clone(),
                0,
            )])])
            .await
            .unwrap();
            assert!(b.get("app_version", "", &["regular"]).await.unwrap().is_empty(), "{kind:?}");
            assert!(!b.exists().await.unwrap());
            assert_eq!(a.get("app_version", "", &["regular"]).await.unwrap()[0].value, big, "{kind:?}");
            let long = "x".repeat(wagate_core::STATE_KEY_MAX + 1);
            let refused = a
                .change(vec![StateChange::Put(vec![StateEntry::new("session", "", &long, vec![], 0)])])
                .await;
            assert!(matches!(refused, Err(StateError::Failed(_))), "{kind:?}: a key too long is refused");
            a.forget().await.unwrap();
            assert!(!a.exists().await.unwrap(), "{kind:?}");
        }
    }
}
