//! A session's live state in this process: its connection, the codes on show, the signals
//! its dispatcher waits on.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tokio::sync::{Notify, broadcast, watch};
use wagate_core::SessionId;
use wagate_engine::Connection;
use wagate_store::SessionRecord;

use super::stream::StreamEvent;
use crate::outbox::Sender;

#[derive(Debug, Clone)]
pub struct LiveCode {
    pub code: String,
    pub expires_at: i64,
}

/// The codes on show.
#[derive(Default)]
pub(super) struct View {
    pub qr: Option<LiveCode>,
    pub pair_code: Option<LiveCode>,
}

pub(super) struct Live {
    pub connection: Option<Arc<dyn Connection>>,
}

pub(super) struct Runtime {
    pub id: SessionId,
    pub owner_id: String,
    pub events: broadcast::Sender<StreamEvent>,
    /// Goes up when another node starts running the session: the event streams opened here end,
    /// so that their clients reconnect and reach that node.
    pub streams_end: watch::Sender<u64>,
    pub live: tokio::sync::Mutex<Live>,
    pub view: Mutex<View>,
    pub generation: AtomicU64,
    /// Serialises status changes (see the module docs of `sessions`).
    pub status_gate: tokio::sync::Mutex<()>,
    /// Wakes the dispatcher: a message was queued.
    pub work: Notify,
    /// A one-time password was queued: the dispatcher ends its batch of ordinary messages early
    /// so the password jumps the queue.
    pub urgent: AtomicBool,
    /// Whether the session is connected (the dispatcher sends only then).
    pub online: watch::Sender<bool>,
    pub deleted: Notify,
    pub is_deleted: AtomicBool,
    /// Until when WhatsApp refuses this account's messages to new contacts (error 463).
    pub restricted_until: AtomicI64,
}

impl Runtime {
    pub fn new(record: &SessionRecord) -> Self {
        Runtime {
            id: record.id.clone(),
            owner_id: record.owner_id.clone(),
            events: broadcast::channel(256).0,
            streams_end: watch::Sender::new(0),
            live: tokio::sync::Mutex::new(Live { connection: None }),
            view: Mutex::new(View::default()),
            generation: AtomicU64::new(0),
            status_gate: tokio::sync::Mutex::new(()),
            work: Notify::new(),
            urgent: AtomicBool::new(false),
            online: watch::Sender::new(false),
            deleted: Notify::new(),
            is_deleted: AtomicBool::new(false),
            restricted_until: AtomicI64::new(0),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.is_deleted.load(Ordering::SeqCst)
    }

    pub async fn connection(&self) -> Option<Arc<dyn Connection>> {
        self.live.lock().await.connection.clone()
    }

    pub fn view(&self) -> std::sync::MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the event streams opened on this node (see [`Runtime::streams_end`]).
    pub fn end_streams(&self) {
        self.streams_end.send_modify(|generation| *generation += 1);
    }

    pub fn publish(&self, event: StreamEvent) {
        let _ = self.events.send(event); // no subscribers is fine
    }

    /// The session as the outbox names it in its announcements.
    pub fn sender(&self) -> Sender {
        Sender { session_id: self.id.clone(), owner_id: self.owner_id.clone() }
    }
}
