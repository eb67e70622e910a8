//! Pools: sessions of one owner that share the sending. A pool message goes to a healthy
//! member (connected, not restricted by WhatsApp); when a member stops being healthy, its
//! queued pool messages move to one that is.

use std::sync::atomic::Ordering;

use wagate_core::SessionStatus;
use wagate_store::SessionRecord;

use super::runtime::Runtime;
use super::stream::StreamEvent;
use super::{SessionError, SessionManager};
use crate::audit::Level;
use crate::outbox::Sender;
use crate::time::{now_ms, rfc3339};

/// How a pool picks the session for a new message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolStrategy {
    /// Each healthy member in turn.
    RoundRobin,
    /// The healthy member with the fewest queued messages.
    LeastBusy,
}

impl SessionManager {
    /// Connected and not restricted by WhatsApp.
    pub fn is_healthy(&self, record: &SessionRecord) -> bool {
        record.status == SessionStatus::Connected && !self.is_restricted(record)
    }

    /// WhatsApp refused a message to a new contact (463) recently.
    pub fn is_restricted(&self, record: &SessionRecord) -> bool {
        self.runtime(record).restricted_until.load(Ordering::SeqCst) > now_ms()
    }

    /// The session a new pool message goes to. With no healthy member it still goes to one
    /// (the first), durably queued, and moves as soon as a member is healthy.
    pub async fn pick_from_pool(
        &self,
        owner_id: &str,
        pool: &str,
        strategy: PoolStrategy,
    ) -> Result<SessionRecord, SessionError> {
        let members = self.store().pool_sessions(owner_id, pool).await?;
        let healthy: Vec<&SessionRecord> = members.iter().filter(|m| self.is_healthy(m)).collect();
        let Some(first) = members.first() else {
            return Err(SessionError::UnknownPool(pool.to_owned()));
        };
        if healthy.is_empty() {
            return Ok(first.clone());
        }
        let chosen = match strategy {
            PoolStrategy::RoundRobin => {
                let key = format!("{owner_id}/{pool}");
                self.inner.pool_turns.pick(&key, &healthy).copied().unwrap_or(healthy[0])
            }
            PoolStrategy::LeastBusy => {
                let mut best = healthy[0];
                let mut best_load = i64::MAX;
                for member in &healthy {
                    let load = self.store().count_queued(&member.id).await?;
                    if load < best_load {
                        best = member;
                        best_load = load;
                    }
                }
                best
            }
        };
        Ok(chosen.clone())
    }

    /// Moves the queued pool messages of unhealthy members to healthy ones.
    pub(super) async fn rebalance_pool(&self, owner_id: &str, pool: &str) {
        let Ok(members) = self.store().pool_sessions(owner_id, pool).await else { return };
        let (healthy, unhealthy): (Vec<_>, Vec<_>) = members.into_iter().partition(|m| self.is_healthy(m));
        if healthy.is_empty() {
            return;
        }
        for (n, from) in unhealthy.iter().enumerate() {
            let to = &healthy[n % healthy.len()];
            match self.store().move_pool_messages(&from.id, &to.id).await {
                Ok(0) => {}
                Ok(moved) => {
                    tracing::info!(pool, from = %from.id, to = %to.id, moved, "moved queued pool messages");
                    self.log(
                        &from.id,
                        "pool_messages_moved",
                        serde_json::json!({ "to": to.id.as_str(), "count": moved }),
                    )
                    .await;
                    self.notify_work(to);
                }
                Err(err) => tracing::error!(pool, error = %err, "cannot move pool messages"),
            }
        }
    }

    /// The queue of a session just deleted: its queued pool messages go to another member of
    /// the pool (a healthy one where there is one); the rest fail, so that nothing waits for a
    /// session that is gone.
    pub(super) async fn settle_queue_of_deleted(
        &self,
        record: &SessionRecord,
        sender: &Sender,
    ) -> Result<(), SessionError> {
        if let Some(pool) = &record.pool {
            let members = self.store().pool_sessions(&record.owner_id, pool).await?;
            if let Some(heir) = members.iter().find(|m| self.is_healthy(m)).or(members.first()) {
                let moved = self.store().move_pool_messages(&record.id, &heir.id).await?;
                if moved > 0 {
                    let detail = serde_json::json!({ "from": record.id.as_str(), "count": moved });
                    self.log(&heir.id, "pool_messages_taken_over", detail).await;
                    self.notify_work(heir);
                }
            }
        }
        for id in self.store().pending_message_ids(&record.id).await? {
            self.outbox().settle_failed(sender, &id, "session deleted".to_owned(), false).await;
        }
        Ok(())
    }

    /// After a status change or a restriction: keep the session's pool flowing.
    pub(super) async fn after_health_change(&self, record: &SessionRecord) {
        if let Some(pool) = &record.pool {
            self.rebalance_pool(&record.owner_id, pool).await;
        }
    }

    /// WhatsApp refused a message with a reach-out restriction (463): the account may not
    /// start new conversations for a while, and its pool sends through the others.
    pub(super) async fn on_send_restricted(&self, runtime: &Runtime) {
        let until = now_ms() + self.outbox().config().restriction_cooldown_ms as i64;
        runtime.restricted_until.store(until, Ordering::SeqCst);
        let detail = serde_json::json!({ "code": 463, "until": rfc3339(until) });
        self.note(runtime, "send_restricted", Level::Error, detail).await;
        if let Ok(record) = self.get(&runtime.id).await {
            self.after_health_change(&record).await;
        }
        runtime.publish(StreamEvent::Error {
            session_id: runtime.id.to_string(),
            code: "reach_out_restricted".into(),
            message:
                "WhatsApp refused a message to a new contact (463); the account is restricted for a while"
                    .into(),
        });
    }
}
