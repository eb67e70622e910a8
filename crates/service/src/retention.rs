//! Retention: records older than their kind's period are deleted, a small batch at a time with
//! pauses between batches, so that the single SQLite writer stays free for sends; then the
//! space is given back. One-time passwords have their own period (`[otp] retention_days`,
//! applied by the OTP worker).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use wagate_store::{Retained, Store};

use crate::cluster::Cluster;
use crate::media::MediaStore;
use crate::time::now_ms;

const DAY_MS: i64 = 24 * 3_600_000;

/// Days each kind of record is kept (0: forever), and how the deletion runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Messages sent, delivered, read, failed or canceled (never queued ones), with their
    /// history; uploaded files left behind are removed after the same time.
    pub messages_days: u32,
    pub received_messages_days: u32,
    /// Webhook events whose deliveries are all made or given up (dead letters included).
    pub webhook_events_days: u32,
    pub session_events_days: u32,
    /// The activity and audit log.
    pub activity_log_days: u32,
    /// How often retention runs, in seconds.
    pub interval_secs: u64,
    /// Records deleted per statement.
    pub batch_size: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            messages_days: 90,
            received_messages_days: 90,
            webhook_events_days: 30,
            session_events_days: 30,
            activity_log_days: 30,
            interval_secs: 3_600,
            batch_size: 500,
        }
    }
}

/// The pause between two batches: sends waiting for the writer go first.
const PAUSE: Duration = Duration::from_millis(20);

#[derive(Clone)]
pub struct Retention {
    store: Store,
    media: Arc<MediaStore>,
    config: RetentionConfig,
}

impl Retention {
    pub fn new(store: Store, media: Arc<MediaStore>, config: RetentionConfig) -> Self {
        Retention { store, media, config }
    }

    /// Runs a pass now and then every `interval_secs`, until shutdown (on the node that runs
    /// the cluster's jobs).
    pub async fn run(self, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(Duration::from_secs(self.config.interval_secs.max(1)));
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if cluster.runs_jobs() {
                        self.pass().await;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass over every kind with the configured periods; how many records were deleted.
    pub async fn pass(&self) -> u64 {
        self.clean(&self.config.clone()).await.iter().map(|(_, deleted)| deleted).sum()
    }

    /// Deletes what is older than `periods` gives for its kind (0 days: kept); how many
    /// records of each kind were deleted.
    pub async fn clean(&self, periods: &RetentionConfig) -> Vec<(Retained, u64)> {
        let kinds = [
            (Retained::Messages, periods.messages_days),
            (Retained::ReceivedMessages, periods.received_messages_days),
            (Retained::WebhookEvents, periods.webhook_events_days),
            (Retained::SessionEvents, periods.session_events_days),
            (Retained::ActivityLog, periods.activity_log_days),
        ];
        let mut report = Vec::new();
        for (kind, days) in kinds.into_iter().filter(|(_, days)| *days > 0) {
            let deleted = self.delete_older(kind, now_ms() - i64::from(days) * DAY_MS).await;
            if deleted > 0 {
                tracing::info!(kind = ?kind, deleted, days, "old records deleted (retention)");
            }
            report.push((kind, deleted));
        }
        if periods.messages_days > 0 {
            let cutoff = now_ms() - i64::from(periods.messages_days) * DAY_MS;
            self.media.remove_files_older_than(cutoff).await;
        }
        if report.iter().any(|(_, deleted)| *deleted > 0)
            && let Err(err) = self.store.give_back_space().await
        {
            tracing::warn!(error = %err, "cannot give deleted records' space back");
        }
        report
    }

    /// The configured periods.
    pub fn periods(&self) -> &RetentionConfig {
        &self.config
    }

    async fn delete_older(&self, kind: Retained, cutoff: i64) -> u64 {
        let batch = self.config.batch_size.max(1);
        let mut deleted = 0;
        loop {
            match self.store.delete_old(kind, cutoff, batch).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(batch) {
                        return deleted;
                    }
                }
                Err(err) => {
                    tracing::error!(kind = ?kind, error = %err, "cannot apply retention");
                    return deleted;
                }
            }
            tokio::time::sleep(PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use wagate_core::{EngineKind, MessageContent, MessageStatus, Role, SessionId};
    use wagate_store::{NewMessage, NewSession, NewUser};

    use super::*;
    use crate::media::MediaConfig;
    use crate::url_guard::UrlGuard;

    #[tokio::test]
    async fn a_pass_deletes_what_is_past_its_period_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
        store.migrate().await.unwrap();
        let user = NewUser { username: "u", password_hash: "-", role: Role::User };
        let owner = store.insert_user(user).await.unwrap().id;
        let session = SessionId::parse("s1").unwrap();
        let new = NewSession {
            id: &session,
            owner_id: &owner,
            name: "s",
            engine: EngineKind::Sandbox,
            webhook_url: None,
        };
        store.insert_session(new).await.unwrap();
        let text = MessageContent::Text { body: "hi".into(), mentions: vec![], reply_to: None };
        let long_ago = now_ms() - 100 * DAY_MS;
        let message = |id: &'static str, at: i64| {
            NewMessage {
                id,
                owner_id: &owner,
                session_id: &session,
                pool: None,
                seq: 1,
                priority: 0,
                recipient: "+6281234500001",
                content: &text,
                expires_at: None,
                idempotency_key: None,
                request_hash: None,
            }
            .record(at)
        };
        let rows =
            [message("old-sent", long_ago), message("old-queued", long_ago), message("new-sent", now_ms())];
        store.insert_new_messages(&rows).await.unwrap();
        store.transition_messages(&["old-sent", "new-sent"], MessageStatus::Sent).await.unwrap();

        let media = Arc::new(MediaStore::new(dir.path(), MediaConfig::default(), UrlGuard::new(true)));
        std::fs::create_dir_all(dir.path().join("media")).unwrap();
        let (old_file, new_file) = (dir.path().join("media/old.bin"), dir.path().join("media/new.bin"));
        std::fs::write(&old_file, b"x").unwrap();
        std::fs::write(&new_file, b"x").unwrap();
        let hundred_days_ago = std::time::SystemTime::now() - Duration::from_secs(100 * 24 * 3600);
        std::fs::File::options().write(true).open(&old_file).unwrap().set_modified(hundred_days_ago).unwrap();

        let config = RetentionConfig { batch_size: 1, ..RetentionConfig::default() };
        let retention = Retention::new(store.clone(), media, config);
        assert_eq!(retention.pass().await, 1);
        assert!(store.message("old-sent").await.unwrap().is_none(), "sent 100 days ago: past 90");
        assert!(store.message("old-queued").await.unwrap().is_some(), "never a message still to send");
        assert!(store.message("new-sent").await.unwrap().is_some());
        assert!(!old_file.exists() && new_file.exists(), "uploads left behind go after the same time");

        let forever = RetentionConfig { messages_days: 0, ..RetentionConfig::default() };
        store.transition_messages(&["old-queued"], MessageStatus::Sent).await.unwrap();
        let media = Arc::new(MediaStore::new(dir.path(), MediaConfig::default(), UrlGuard::new(true)));
        assert_eq!(Retention::new(store.clone(), media, forever).pass().await, 0, "0 days: kept forever");
    }
}
