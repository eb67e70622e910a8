//! One dispatcher per session: takes the session's messages from the outbox in order, paces
//! them, hands them to the engine and tells the outbox what happened.
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
use wagate_core::Pacing;
use wagate_engine::{Chat, Connection, EngineError, MediaData, OutgoingMessage, PendingAck, SendFailure};
use wagate_store::{Claim, MessageRecord, StoreError};

use super::SessionManager;
use super::runtime::Runtime;
use crate::outbox::{Outbox, Requeue, Retried, Sender};
use crate::time::now_ms;

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

/// A message ready to be handed over.
struct Ready {
    connection: Arc<dyn Connection>,
    outgoing: OutgoingMessage,
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
        let idle_recheck = manager.idle_recheck();
        let Some(fence) = manager.fence(&runtime.id) else {
            // Not (or no longer) this node's to run: closed here by the lease's keeper.
            tokio::select! {
                _ = online.changed() => {}
                _ = shutdown.changed() => {}
                () = runtime.deleted.notified() => {}
                () = sleep(manager.idle_recheck()) => {}
            }
            continue;
        };
        let wait = match manager.outbox().claim(&runtime.id, &fence, limit).await {
            Ok(Claim::Messages { batch, drained }) => {
                let all_went = dispatch_batch(&manager, &runtime, batch, pacing, &mut last_sent).await;
                // Whatever was queued after the claim read the queue woke this loop (a permit
                // of `work` waits for it), so another claim now would find nothing new.
                if !(drained && all_went) {
                    continue;
                }
                idle_recheck
            }
            Ok(Claim::Empty) => idle_recheck,
            Ok(Claim::WaitUntil(at)) => {
                Duration::from_millis((at - now_ms()).clamp(1, idle_recheck.as_millis() as i64) as u64)
            }
            Ok(Claim::InFlight) => Duration::from_millis(250),
            Err(StoreError::Fenced { .. }) => {
                manager.fenced_off(&runtime.id).await;
                continue;
            }
            Err(err) => {
                tracing::error!(session = %runtime.id, error = %err, "cannot read the outbox");
                Duration::from_secs(1)
            }
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

/// Sends a claimed batch in order, then records the acknowledged messages as `sent`. True when
/// every message went or was settled: none went back to the queue.
async fn dispatch_batch(
    manager: &SessionManager,
    runtime: &Runtime,
    batch: Vec<MessageRecord>,
    session_pacing: Pacing,
    last_sent: &mut Option<Instant>,
) -> bool {
    let outbox = manager.outbox();
    let sender = runtime.sender();
    let mut acknowledged = Vec::new();
    let mut oldest_handover: Option<Instant> = None;
    let mut next = 0;
    let mut requeued = false;
    while let Some(message) = batch.get(next) {
        if next > 0 && message.priority == 0 && runtime.urgent.swap(false, Ordering::SeqCst) {
            break; // a one-time password was queued meanwhile: it goes next
        }
        next += 1;
        let pacing = if message.priority > 0 { manager.otp_pacing() } else { session_pacing };
        match dispatch(manager, runtime, &sender, message, pacing, last_sent).await {
            Dispatched::Acknowledged(handed_over) => {
                acknowledged.push(message.id.as_str());
                // A slow network (a real WhatsApp round trip) records each message at once.
                if oldest_handover.get_or_insert(handed_over).elapsed() >= RECORD_SENT_AFTER {
                    outbox.record_sent(&sender, &acknowledged).await;
                    acknowledged.clear();
                    oldest_handover = None;
                }
            }
            Dispatched::Settled => {}
            Dispatched::Requeued => {
                requeued = true;
                break;
            }
        }
    }
    let rest: Vec<&str> = batch[next..].iter().map(|message| message.id.as_str()).collect();
    outbox.release(&rest).await;
    outbox.record_sent(&sender, &acknowledged).await;
    rest.is_empty() && !requeued
}

/// One message: made ready, handed over, and what the network answered.
async fn dispatch(
    manager: &SessionManager,
    runtime: &Runtime,
    sender: &Sender,
    message: &MessageRecord,
    pacing: Pacing,
    last_sent: &mut Option<Instant>,
) -> Dispatched {
    let Ready { connection, outgoing } =
        match prepare(manager, runtime, sender, message, pacing, last_sent).await {
            Ok(ready) => ready,
            Err(dispatched) => return dispatched,
        };
    let outbox = manager.outbox();
    let handed_over = Instant::now();
    let sent = connection.send(outgoing).await;
    *last_sent = Some(Instant::now());
    let ack = match sent {
        Ok(ack) => ack,
        Err(EngineError::NotConnected | EngineError::Closed) => {
            return requeue_now(outbox, message, Requeue::NotConnected).await;
        }
        Err(other) => return retry_or_fail(outbox, sender, message, other.to_string()).await,
    };
    let answer = await_ack(manager, runtime, sender, message, ack).await;
    if answer.is_some() {
        manager.metrics().send_acknowledged(handed_over.elapsed());
    }
    match answer {
        Some(Ok(())) => {
            if let Some(reference) = message.content.media() {
                manager.media().discard(reference).await;
            }
            Dispatched::Acknowledged(handed_over)
        }
        Some(Err(SendFailure::Transient { detail })) => retry_or_fail(outbox, sender, message, detail).await,
        Some(Err(failure)) => refused(manager, runtime, sender, message, failure).await,
        None => Dispatched::Requeued,
    }
}

/// Everything before the hand-over: expiry, the sending cap, the connection, pacing, the media
/// and the sealed text. `Err`: the message was settled or requeued instead.
async fn prepare(
    manager: &SessionManager,
    runtime: &Runtime,
    sender: &Sender,
    message: &MessageRecord,
    pacing: Pacing,
    last_sent: &mut Option<Instant>,
) -> Result<Ready, Dispatched> {
    let outbox = manager.outbox();
    if expired(message) {
        return Err(drop_expired(outbox, sender, message).await);
    }
    if let Some(cap_wait) = cap_wait(outbox, runtime, &pacing).await {
        outbox.requeue(&message.id, now_ms() + cap_wait, Requeue::SendingCap).await;
        return Err(Dispatched::Requeued);
    }
    let Some(chat) = parse_chat(&message.recipient) else {
        let reason = format!("invalid recipient {}", message.recipient);
        return Err(fail(outbox, sender, message, reason).await);
    };
    let Some(connection) = runtime.connection().await else {
        return Err(requeue_now(outbox, message, Requeue::NotConnected).await);
    };
    pace(outbox, message, connection.as_ref(), &chat, pacing, last_sent).await;
    let media = load_media(manager, sender, message).await?;
    if expired(message) {
        return Err(drop_expired(outbox, sender, message).await); // while it was paced
    }
    let content = match manager.sealer().open_content(message.content.clone()) {
        Ok(content) => content,
        Err(reason) => return Err(fail(outbox, sender, message, reason.into()).await),
    };
    let outgoing = OutgoingMessage { id: message.id.clone(), to: chat, content, media };
    Ok(Ready { connection, outgoing })
}

/// Waits the pacing delay after the previous message (keeping the lease), showing "typing…"
/// when the pacing asks for it.
async fn pace(
    outbox: &Outbox,
    message: &MessageRecord,
    connection: &dyn Connection,
    chat: &Chat,
    pacing: Pacing,
    last_sent: &Option<Instant>,
) {
    let delay = Duration::from_millis(pacing.draw_delay_ms());
    let ready = last_sent.map(|previous| previous + delay).filter(|ready| *ready > Instant::now());
    if pacing.typing {
        let _ = connection.set_typing(chat).await;
    }
    if let Some(ready) = ready {
        outbox.extend_lease(&message.id, now_ms() + (ready - Instant::now()).as_millis() as i64).await;
        tokio::time::sleep_until(ready).await;
    }
}

/// The media's bytes, for media messages.
async fn load_media(
    manager: &SessionManager,
    sender: &Sender,
    message: &MessageRecord,
) -> Result<Option<MediaData>, Dispatched> {
    let Some(reference) = message.content.media() else { return Ok(None) };
    let outbox = manager.outbox();
    match manager.media().load(message.content.kind(), reference).await {
        Ok(media) => Ok(Some(media)),
        Err(err) if err.is_transient() => Err(retry_or_fail(outbox, sender, message, err.to_string()).await),
        Err(err) => Err(fail(outbox, sender, message, err.to_string()).await),
    }
}

/// The network's answer; `None` when the message went back to the queue instead (the
/// connection went away, or no answer in time).
async fn await_ack(
    manager: &SessionManager,
    runtime: &Runtime,
    sender: &Sender,
    message: &MessageRecord,
    mut ack: PendingAck,
) -> Option<Result<(), SendFailure>> {
    let outbox = manager.outbox();
    let timeout = Duration::from_millis(outbox.config().ack_timeout_ms);
    let mut online = runtime.online.subscribe();
    let answer = tokio::select! {
        answer = tokio::time::timeout(timeout, &mut ack) => answer,
        _ = async { online.wait_for(|online| !*online).await.map(|_| ()) } => {
            // Send again (same id, so the network deduplicates) once the session is back.
            requeue_now(outbox, message, Requeue::ConnectionLost).await;
            return None;
        }
    };
    match answer {
        Ok(Ok(outcome)) => Some(outcome),
        Ok(Err(_dropped)) => {
            requeue_now(outbox, message, Requeue::ConnectionLost).await;
            None
        }
        Err(_elapsed) => {
            follow_late_ack(outbox.clone(), sender.clone(), message.id.clone(), ack);
            retry_or_fail(outbox, sender, message, "no acknowledgement from WhatsApp".into()).await;
            None
        }
    }
}

/// An acknowledgement after the dispatcher stopped waiting still marks the message sent.
fn follow_late_ack(outbox: Arc<Outbox>, sender: Sender, id: String, ack: PendingAck) {
    tokio::spawn(async move {
        if let Ok(Ok(())) = ack.await {
            outbox.record_late_ack(&sender, &id).await;
        }
    });
}

/// The network refused the message for good; a reach-out restriction (463) also rests the
/// session.
async fn refused(
    manager: &SessionManager,
    runtime: &Runtime,
    sender: &Sender,
    message: &MessageRecord,
    failure: SendFailure,
) -> Dispatched {
    let restricted = failure == SendFailure::ReachOutRestricted;
    if restricted {
        manager.metrics().reach_out_restricted();
        manager.on_send_restricted(runtime).await;
    }
    manager.outbox().settle_failed(sender, &message.id, failure.to_string(), restricted).await;
    Dispatched::Settled
}

fn expired(message: &MessageRecord) -> bool {
    message.expires_at.is_some_and(|at| at <= now_ms())
}

/// A one-time password that arrives late is worse than none: it is never sent.
async fn drop_expired(outbox: &Outbox, sender: &Sender, message: &MessageRecord) -> Dispatched {
    fail(outbox, sender, message, "expired before it could be sent".into()).await
}

async fn fail(outbox: &Outbox, sender: &Sender, message: &MessageRecord, reason: String) -> Dispatched {
    outbox.settle_failed(sender, &message.id, reason, false).await;
    Dispatched::Settled
}

async fn retry_or_fail(
    outbox: &Outbox,
    sender: &Sender,
    message: &MessageRecord,
    detail: String,
) -> Dispatched {
    match outbox.retry_or_fail(sender, message, detail).await {
        Retried::Later => Dispatched::Requeued,
        Retried::GaveUp => Dispatched::Settled,
    }
}

async fn requeue_now(outbox: &Outbox, message: &MessageRecord, why: Requeue) -> Dispatched {
    outbox.requeue(&message.id, now_ms(), why).await;
    Dispatched::Requeued
}

/// Milliseconds to wait when an hourly or daily cap is reached.
async fn cap_wait(outbox: &Outbox, runtime: &Runtime, pacing: &Pacing) -> Option<i64> {
    const HOUR: i64 = 3_600_000;
    for (cap, window) in [(pacing.hourly_cap, HOUR), (pacing.daily_cap, 24 * HOUR)] {
        let Some(cap) = cap else { continue };
        if outbox.sent_since(&runtime.id, now_ms() - window, i64::from(cap)).await >= i64::from(cap) {
            return Some(60_000);
        }
    }
    None
}

fn parse_chat(recipient: &str) -> Option<Chat> {
    wagate_core::Recipient::from_stored(recipient).map(Chat::from)
}
