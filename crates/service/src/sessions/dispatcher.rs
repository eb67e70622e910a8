//! One dispatcher per session: takes the session's messages from the outbox in order, paces
//! them, hands them to the engine and records what happened.
//!
//! Unpaced sessions claim their next messages in batches and record acknowledged ones as `sent`
//! together (at most [`RECORD_SENT_AFTER`] after the oldest was handed over), one statement each
//! instead of two per message. Order holds as before: each message waits for the
//! acknowledgement of the previous one, and when one cannot go (retry, lost connection) the rest
//! of its batch goes back to the queue unsent, as it does when a one-time password is queued
//! meanwhile (so that it jumps the queue).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use wagate_core::{MessageStatus, Pacing};
use wagate_engine::{Chat, EngineError, OutgoingMessage, SendFailure};
use wagate_store::{Claim, MessageRecord};

use super::{Runtime, SessionManager};
use crate::delivery::Outcome;
use crate::time::now_ms;

/// How long an idle dispatcher sleeps before looking again, even without a wake-up.
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// At most this many messages per claim when nothing paces the session.
const BATCH: usize = 32;

/// Acknowledged messages wait at most this long (from their hand-over) to be recorded as `sent`.
const RECORD_SENT_AFTER: Duration = Duration::from_millis(10);

/// What became of one message of a batch.
enum Dispatched {
    /// Handed over at this instant and acknowledged by the network; recorded as `sent` with
    /// others.
    Acknowledged(Instant),
    /// Settled on its own (failed, dropped); the next message may go.
    Settled,
    /// Back in the queue for later: the rest of the batch must wait behind it.
    Requeued,
}

pub(super) async fn run(manager: SessionManager, runtime: Arc<Runtime>, mut shutdown: watch::Receiver<bool>) {
    let mut online = runtime.online.subscribe();
    let mut last_sent: Option<Instant> = None;
    loop {
        if *shutdown.borrow() || runtime.is_deleted() {
            break;
        }
        if !*online.borrow_and_update() {
            tokio::select! {
                _ = online.changed() => {}
                _ = shutdown.changed() => {}
                () = runtime.deleted.notified() => {}
            }
            continue;
        }
        let pacing = manager.session_pacing(&runtime).await;
        let limit = if pacing.is_unpaced() { BATCH } else { 1 };
        // The claim sees every one-time password queued until now.
        runtime.urgent.store(false, Ordering::SeqCst);
        let now = now_ms();
        let lease_until = now + manager.delivery().config.lease_ms as i64;
        let claim = match manager.store().claim_next_messages(&runtime.id, now, lease_until, limit).await {
            Ok(claim) => claim,
            Err(err) => {
                tracing::error!(session = %runtime.id, error = %err, "cannot read the outbox");
                sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let wait = match claim {
            Claim::Messages(batch) => {
                dispatch_batch(&manager, &runtime, batch, pacing, &mut last_sent).await;
                continue;
            }
            Claim::Empty => IDLE_RECHECK,
            Claim::WaitUntil(at) => {
                Duration::from_millis((at - now).clamp(1, IDLE_RECHECK.as_millis() as i64) as u64)
            }
            Claim::InFlight => Duration::from_millis(250),
        };
        tokio::select! {
            () = runtime.work.notified() => {}
            () = sleep(wait) => {}
            _ = online.changed() => {}
            _ = shutdown.changed() => {}
            () = runtime.deleted.notified() => {}
        }
    }
}

/// Sends a claimed batch in order, then records the acknowledged messages as `sent`.
async fn dispatch_batch(
    manager: &SessionManager,
    runtime: &Runtime,
    batch: Vec<MessageRecord>,
    session_pacing: Pacing,
    last_sent: &mut Option<Instant>,
) {
    let mut acknowledged = Vec::new();
    let mut oldest_handover: Option<Instant> = None;
    let mut next = 0;
    while let Some(message) = batch.get(next) {
        if next > 0 && message.priority == 0 && runtime.urgent.swap(false, Ordering::SeqCst) {
            break; // a one-time password was queued meanwhile: it goes next
        }
        next += 1;
        let pacing = if message.priority > 0 { manager.otp_pacing() } else { session_pacing };
        match dispatch(manager, runtime, message, pacing, last_sent).await {
            Dispatched::Acknowledged(handed_over) => {
                acknowledged.push(message.id.as_str());
                // A slow network (a real WhatsApp round trip) records each message at once.
                if oldest_handover.get_or_insert(handed_over).elapsed() >= RECORD_SENT_AFTER {
                    record_sent(manager, runtime, &acknowledged).await;
                    acknowledged.clear();
                    oldest_handover = None;
                }
            }
            Dispatched::Settled => {}
            Dispatched::Requeued => break,
        }
    }
    let rest: Vec<&str> = batch[next..].iter().map(|message| message.id.as_str()).collect();
    if let Err(err) = manager.store().release_messages(&rest).await {
        // Their leases expire and they are claimed again; nothing is lost.
        tracing::error!(session = %runtime.id, error = %err, "cannot give unsent messages back to the queue");
    }
    record_sent(manager, runtime, &acknowledged).await;
}

/// One statement for the batch's acknowledged messages, then their `message.status` events.
async fn record_sent(manager: &SessionManager, runtime: &Runtime, ids: &[&str]) {
    if ids.is_empty() {
        return;
    }
    let moved = match manager.store().transition_messages(ids, MessageStatus::Sent).await {
        Ok(moved) => moved,
        Err(err) => {
            tracing::error!(session = %runtime.id, error = %err, count = ids.len(), "cannot record sent messages");
            return;
        }
    };
    for id in moved {
        manager.publish_message_status(runtime, id, Some(MessageStatus::Sent), None, false).await;
    }
}

async fn dispatch(
    manager: &SessionManager,
    runtime: &Runtime,
    message: &MessageRecord,
    pacing: Pacing,
    last_sent: &mut Option<Instant>,
) -> Dispatched {
    let delivery = manager.delivery();
    let store = manager.store();
    let id = message.id.clone();
    if expired(message) {
        return drop_expired(manager, runtime, &id).await;
    }

    if let Some(cap_wait) = cap_wait(manager, runtime, &pacing).await {
        let not_before = now_ms() + cap_wait;
        let _ = store.requeue_message(&id, not_before, Some("waiting for the session's sending cap")).await;
        return Dispatched::Requeued;
    }
    let chat = match parse_chat(&message.recipient) {
        Some(chat) => chat,
        None => {
            let reason = format!("invalid recipient {}", message.recipient);
            return settle(manager, runtime, &id, MessageStatus::Failed, Some(reason)).await;
        }
    };
    let Some(connection) = runtime.connection().await else {
        let _ = store.requeue_message(&id, now_ms(), Some("session not connected")).await;
        return Dispatched::Requeued;
    };
    let delay = Duration::from_millis(pacing.draw_delay_ms());
    if let Some(previous) = *last_sent
        && previous + delay > Instant::now()
    {
        if pacing.typing {
            let _ = connection.set_typing(&chat).await;
        }
        let ready = previous + delay;
        let lease_until =
            now_ms() + (ready - Instant::now()).as_millis() as i64 + delivery.config.lease_ms as i64;
        let _ = store.extend_message_lease(&id, lease_until).await;
        tokio::time::sleep_until(ready).await;
    } else if pacing.typing {
        let _ = connection.set_typing(&chat).await;
    }

    let media = match message.content.media() {
        Some(reference) => match manager.media().load(message.content.kind(), reference).await {
            Ok(media) => Some(media),
            Err(err) if err.is_transient() => {
                return retry_or_fail(manager, runtime, message, err.to_string()).await;
            }
            Err(err) => {
                return settle(manager, runtime, &id, MessageStatus::Failed, Some(err.to_string())).await;
            }
        },
        None => None,
    };
    if expired(message) {
        return drop_expired(manager, runtime, &id).await; // while it was paced
    }
    let content = match manager.sealer().open_content(message.content.clone()) {
        Ok(content) => content,
        Err(reason) => {
            return settle(manager, runtime, &id, MessageStatus::Failed, Some(reason.into())).await;
        }
    };
    let outcome = delivery.expect_outcome(&id);
    let outgoing = OutgoingMessage { id: id.clone(), to: chat, content, media };
    let handed_over = Instant::now();
    let sent = connection.send(outgoing).await;
    *last_sent = Some(Instant::now());
    match sent {
        Ok(()) => {}
        Err(EngineError::NotConnected | EngineError::Closed) => {
            delivery.forget_outcome(&id);
            let _ = store.requeue_message(&id, now_ms(), Some("session not connected")).await;
            return Dispatched::Requeued;
        }
        Err(other) => {
            delivery.forget_outcome(&id);
            return retry_or_fail(manager, runtime, message, other.to_string()).await;
        }
    }
    let timeout = Duration::from_millis(delivery.config.ack_timeout_ms);
    let mut online = runtime.online.subscribe();
    let acknowledged = tokio::select! {
        acknowledged = tokio::time::timeout(timeout, outcome) => acknowledged,
        _ = async { online.wait_for(|online| !*online).await.map(|_| ()) } => {
            // The connection went away before the acknowledgement: send again (same id, so
            // the network deduplicates) once the session is back.
            delivery.forget_outcome(&id);
            let _ = store.requeue_message(&id, now_ms(), Some("connection lost before the acknowledgement")).await;
            return Dispatched::Requeued;
        }
    };
    match acknowledged {
        Ok(Ok(Outcome::Sent)) => {
            if let Some(reference) = message.content.media() {
                manager.media().discard(reference).await;
            }
            Dispatched::Acknowledged(handed_over)
        }
        Ok(Ok(Outcome::Failed(SendFailure::Transient { detail }))) => {
            retry_or_fail(manager, runtime, message, detail).await
        }
        Ok(Ok(Outcome::Failed(failure))) => {
            let restricted = failure == SendFailure::ReachOutRestricted;
            if restricted {
                manager.on_send_restricted(runtime).await;
            }
            settle_as(manager, runtime, &id, MessageStatus::Failed, Some(failure.to_string()), restricted)
                .await
        }
        Ok(Err(_)) | Err(_) => {
            delivery.forget_outcome(&id);
            retry_or_fail(manager, runtime, message, "no acknowledgement from WhatsApp".into()).await
        }
    }
}

fn expired(message: &MessageRecord) -> bool {
    message.expires_at.is_some_and(|at| at <= now_ms())
}

/// A one-time password that arrives late is worse than none: it is never sent.
async fn drop_expired(manager: &SessionManager, runtime: &Runtime, id: &str) -> Dispatched {
    let reason = Some("expired before it could be sent".into());
    settle(manager, runtime, id, MessageStatus::Failed, reason).await
}

async fn retry_or_fail(
    manager: &SessionManager,
    runtime: &Runtime,
    message: &MessageRecord,
    detail: String,
) -> Dispatched {
    let delivery = manager.delivery();
    let attempts = message.attempts;
    if attempts >= i64::from(delivery.config.max_attempts) {
        let reason = format!("{detail} (gave up after {attempts} attempts)");
        return settle(manager, runtime, &message.id, MessageStatus::Failed, Some(reason)).await;
    }
    let not_before = now_ms() + delivery.retry_delay_ms(attempts) as i64;
    let _ = manager.store().requeue_message(&message.id, not_before, Some(&detail)).await;
    Dispatched::Requeued
}

/// Records a final step of this attempt and tells the session's listeners.
async fn settle(
    manager: &SessionManager,
    runtime: &Runtime,
    id: &str,
    status: MessageStatus,
    reason: Option<String>,
) -> Dispatched {
    settle_as(manager, runtime, id, status, reason, false).await
}

/// [`settle`], saying whether WhatsApp refused the message with a reach-out restriction.
async fn settle_as(
    manager: &SessionManager,
    runtime: &Runtime,
    id: &str,
    status: MessageStatus,
    reason: Option<String>,
    restricted: bool,
) -> Dispatched {
    if manager.delivery().transition(id, status, reason.as_deref()).await {
        manager.publish_message_status(runtime, id.to_owned(), Some(status), reason, restricted).await;
    }
    Dispatched::Settled
}

/// Milliseconds to wait when an hourly or daily cap is reached.
async fn cap_wait(manager: &SessionManager, runtime: &Runtime, pacing: &Pacing) -> Option<i64> {
    const HOUR: i64 = 3_600_000;
    for (cap, window) in [(pacing.hourly_cap, HOUR), (pacing.daily_cap, 24 * HOUR)] {
        let Some(cap) = cap else { continue };
        let sent = manager.store().count_sent_since(&runtime.id, now_ms() - window).await.unwrap_or(0);
        if sent >= i64::from(cap) {
            return Some(60_000);
        }
    }
    None
}

fn parse_chat(recipient: &str) -> Option<Chat> {
    wagate_core::Recipient::from_stored(recipient).map(Chat::from)
}
