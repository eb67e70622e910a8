//! Copies of data another process may change (another node, or the command line). Every change
//! of such data raises its version in the database ([`CacheTopic`]); each node reads the
//! versions every `[cluster] idle_poll_ms` and drops its copy of whatever moved, so a change
//! made through one node holds on every node within that time (a disabled user or a revoked
//! API key is refused everywhere, a new webhook endpoint gets the events of sessions other
//! nodes run).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wagate_store::{CacheTopic, Store};

use crate::cluster::Cluster;

type Drop = Box<dyn Fn() + Send + Sync>;

pub struct CacheFollower {
    store: Store,
    drops: Vec<(CacheTopic, Drop)>,
}

impl CacheFollower {
    pub fn new(store: Store) -> Self {
        CacheFollower { store, drops: Vec::new() }
    }

    /// `drop` forgets this node's copy of the topic's data.
    pub fn on_change(mut self, topic: CacheTopic, drop: impl Fn() + Send + Sync + 'static) -> Self {
        self.drops.push((topic, Box::new(drop)));
        self
    }

    pub async fn run(self, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        // Read alone too: the command line (another process) revokes keys and disables users.
        let mut seen: Option<HashMap<CacheTopic, i64>> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(cluster.idle_poll_ms().max(10))) => {}
                _ = shutdown.changed() => return,
            }
            match self.store.cache_versions().await {
                Ok(versions) => {
                    let versions: HashMap<CacheTopic, i64> = versions.into_iter().collect();
                    self.drop_moved(seen.as_ref(), &versions);
                    seen = Some(versions);
                }
                Err(err) => tracing::debug!(error = %err, "cannot read the cache versions"),
            }
        }
    }

    /// Drops the copies whose version moved since `before`; all of them when there is no
    /// `before` (the first look: anything may have changed before this node started following).
    fn drop_moved(&self, before: Option<&HashMap<CacheTopic, i64>>, now: &HashMap<CacheTopic, i64>) {
        for (topic, drop) in &self.drops {
            let moved = before.is_none_or(|before| before.get(topic) != now.get(topic));
            if moved {
                drop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn only_the_copies_whose_version_moved_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        let users = Arc::new(AtomicUsize::new(0));
        let webhooks = Arc::new(AtomicUsize::new(0));
        let follower = CacheFollower::new(store)
            .on_change(CacheTopic::Users, {
                let users = users.clone();
                move || {
                    users.fetch_add(1, Ordering::SeqCst);
                }
            })
            .on_change(CacheTopic::Webhooks, {
                let webhooks = webhooks.clone();
                move || {
                    webhooks.fetch_add(1, Ordering::SeqCst);
                }
            });
        let counts = || (users.load(Ordering::SeqCst), webhooks.load(Ordering::SeqCst));
        let versions = |u: i64, w: i64| HashMap::from([(CacheTopic::Users, u), (CacheTopic::Webhooks, w)]);
        follower.drop_moved(None, &versions(1, 1));
        assert_eq!(counts(), (1, 1), "all at first");
        follower.drop_moved(Some(&versions(1, 1)), &versions(1, 1));
        assert_eq!(counts(), (1, 1), "nothing moved");
        follower.drop_moved(Some(&versions(1, 1)), &versions(2, 1));
        assert_eq!(counts(), (2, 1));
        follower.drop_moved(Some(&HashMap::from([(CacheTopic::Users, 2)])), &versions(2, 1));
        assert_eq!(counts(), (2, 2), "a topic changed for the first time");
    }
}
