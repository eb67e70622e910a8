use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
pub use wagate_core::MessageContent;
use wagate_core::{EngineKind, Phone, SessionId};

use crate::PendingAck;

/// What an engine needs to open a session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub id: SessionId,
    /// Where the engine keeps the session's credentials and keys: in the shared database, so
    /// that any node can run the session.
    pub state: Arc<dyn crate::state::SessionState>,
    /// A directory on this node owned by this session alone, for what need not follow it to
    /// another node (and where earlier versions kept its credentials).
    pub store_dir: PathBuf,
}

/// The WhatsApp account a session is linked to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub phone: Phone,
    /// The account's LID (`12345678901234@lid`), WhatsApp's privacy-preserving id.
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chat {
    Phone(Phone),
    /// A group JID, `…@g.us`.
    Group(String),
}

impl From<wagate_core::Recipient> for Chat {
    fn from(recipient: wagate_core::Recipient) -> Self {
        match recipient {
            wagate_core::Recipient::Phone(phone) => Chat::Phone(phone),
            wagate_core::Recipient::Group(group) => Chat::Group(group.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    /// Chosen by wagate before the first attempt and reused on retries, so the network can
    /// recognise a resend.
    pub id: String,
    pub to: Chat,
    pub content: MessageContent,
    /// The media's bytes, for media messages (fetched or read from storage by the caller).
    pub media: Option<MediaData>,
}

#[derive(Clone)]
pub struct MediaData {
    pub bytes: Arc<Vec<u8>>,
    pub mimetype: String,
}

impl std::fmt::Debug for MediaData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaData({} bytes of {})", self.bytes.len(), self.mimetype)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundMessage {
    pub id: String,
    pub from: Phone,
    pub from_lid: Option<String>,
    pub push_name: Option<String>,
    pub chat: String,
    pub content: MessageContent,
    pub quoted_id: Option<String>,
    /// Unix milliseconds.
    pub timestamp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    Delivered,
    Read,
    Played,
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum SendFailure {
    #[error("the recipient is not on WhatsApp")]
    NotOnWhatsApp,
    /// WhatsApp error 463: the account may not start conversations with strangers right now.
    #[error("reach_out_restricted: WhatsApp does not let this account message new contacts right now (463)")]
    ReachOutRestricted,
    /// Worth retrying later.
    #[error("send failed: {detail}")]
    Transient { detail: String },
    #[error("send failed permanently: {detail}")]
    Permanent { detail: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupInfo {
    /// `…@g.us`
    pub jid: String,
    pub subject: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub participants: Vec<GroupParticipant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupParticipant {
    pub jid: String,
    pub phone: Option<String>,
    pub is_admin: bool,
    pub is_super_admin: bool,
}

/// A code to type on the phone (WhatsApp → Linked devices → Link with phone number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingCode {
    /// 8 characters.
    pub code: String,
    pub valid_for: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NumberCheck {
    pub phone: Phone,
    pub on_whatsapp: bool,
    pub jid: Option<String>,
    pub lid: Option<String>,
    pub business: bool,
}

/// Everything an engine reports about a session.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A new QR code to show; it is replaced after `valid_for`.
    Qr {
        code: String,
        valid_for: Duration,
    },
    /// Nobody scanned any QR code in time; the connection stopped.
    QrExhausted,
    /// A pairing code to type on the phone (8 characters).
    PairCode {
        code: String,
        valid_for: Duration,
    },
    /// The phone accepted the link.
    Paired {
        account: Account,
    },
    /// Online and ready to send.
    Connected {
        account: Account,
    },
    /// The connection dropped; `reconnecting` tells whether the engine tries again by itself.
    Disconnected {
        reason: String,
        reconnecting: bool,
    },
    /// Not online, and the engine is trying again: `attempt` counts the attempts in a row
    /// that failed (0 right after an established connection dropped), `retry_in` is the wait
    /// before the next one.
    Reconnecting {
        attempt: u32,
        retry_in: Duration,
        reason: String,
    },
    /// The link was removed (from the phone or by a logout); credentials are gone.
    LoggedOut {
        reason: String,
    },
    Receipt {
        ids: Vec<String>,
        kind: ReceiptKind,
    },
    Inbound(InboundMessage),
}

/// One event, and who waits until it was handled.
#[derive(Debug)]
struct Envelope {
    event: EngineEvent,
    handled: Option<oneshot::Sender<()>>,
}

/// Delivers a session's events to whoever runs the session.
#[derive(Debug, Clone)]
pub struct EventSink(mpsc::UnboundedSender<Envelope>);

impl EventSink {
    pub fn channel() -> (EventSink, EventReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSink(tx), EventReceiver { envelopes: rx, in_hand: None })
    }

    /// Returns false when nobody listens any more (the session was closed).
    pub fn emit(&self, event: EngineEvent) -> bool {
        self.0.send(Envelope { event, handled: None }).is_ok()
    }

    /// Emits and waits until the receiver has handled the event, e.g. stored an inbound
    /// message, before the network is told it arrived. False when the receiver went away
    /// without handling it.
    pub async fn emit_and_wait(&self, event: EngineEvent) -> bool {
        let (handled, done) = oneshot::channel();
        self.0.send(Envelope { event, handled: Some(handled) }).is_ok() && done.await.is_ok()
    }
}

/// The receiving end of an [`EventSink`]. Events are handled one after the other: asking for
/// the next one confirms that the previous one was handled.
#[derive(Debug)]
pub struct EventReceiver {
    envelopes: mpsc::UnboundedReceiver<Envelope>,
    in_hand: Option<oneshot::Sender<()>>,
}

impl EventReceiver {
    pub async fn recv(&mut self) -> Option<EngineEvent> {
        self.confirm();
        let envelope = self.envelopes.recv().await?;
        self.in_hand = envelope.handled;
        Some(envelope.event)
    }

    pub fn try_recv(&mut self) -> Option<EngineEvent> {
        self.confirm();
        let envelope = self.envelopes.try_recv().ok()?;
        self.in_hand = envelope.handled;
        Some(envelope.event)
    }

    /// The event in hand could not be handled (e.g. not stored): its sender learns that, and
    /// the network delivers it again rather than hearing it arrived.
    pub fn reject(&mut self) {
        self.in_hand = None;
    }

    fn confirm(&mut self) {
        if let Some(handled) = self.in_hand.take() {
            let _ = handled.send(());
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("the {0} engine is not available in this build")]
    NotAvailable(EngineKind),
    #[error("the session is not connected")]
    NotConnected,
    #[error("the session is already linked to a phone")]
    AlreadyLinked,
    #[error("the connection is closed")]
    Closed,
    #[error("{0}")]
    Other(String),
}

/// An open session on the network.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Hands a message to the network. Success means "written"; the network's answer (sent,
    /// or why not) resolves the returned [`PendingAck`].
    async fn send(&self, message: OutgoingMessage) -> Result<PendingAck, EngineError>;

    /// Switches an unlinked session from QR codes to a pairing code for `phone`.
    async fn pair_with_code(&self, phone: &Phone) -> Result<PairingCode, EngineError>;

    async fn check_numbers(&self, phones: &[Phone]) -> Result<Vec<NumberCheck>, EngineError>;

    /// Shows "typing…" in the chat (before a message, for a more human pace).
    async fn set_typing(&self, chat: &Chat) -> Result<(), EngineError>;

    /// The groups the account is in.
    async fn groups(&self) -> Result<Vec<GroupInfo>, EngineError>;

    /// Unlinks the device and removes its credentials; the connection ends.
    async fn logout(&self) -> Result<(), EngineError>;

    /// Goes offline, keeping the credentials.
    async fn close(&self);
}

/// What the sessions of an engine can do. Services ask this; they never check which engine
/// a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Linked by scanning a QR code.
    pub qr_code: bool,
    /// Linked by typing a code on the phone.
    pub pairing_code: bool,
    /// Can be unlinked from here (a linked device can; an API account cannot).
    pub logout: bool,
    /// Lists the account's groups.
    pub groups: bool,
    /// Tells whether numbers are on WhatsApp.
    pub number_checks: bool,
    /// A simulated network whose other side tests drive (the sandbox's scan, inbox, inbound).
    pub simulated: bool,
}

impl Capabilities {
    /// Nothing beyond sending and receiving (an API account; or an engine not available).
    pub const NONE: Capabilities = Capabilities {
        qr_code: false,
        pairing_code: false,
        logout: false,
        groups: false,
        number_checks: false,
        simulated: false,
    };

    /// A device linked to a phone, as WhatsApp Web is.
    pub const LINKED_DEVICE: Capabilities = Capabilities {
        qr_code: true,
        pairing_code: true,
        logout: true,
        groups: true,
        number_checks: true,
        simulated: false,
    };
}

#[async_trait]
pub trait Engine: Send + Sync {
    fn kind(&self) -> EngineKind;

    /// What its sessions can do.
    fn capabilities(&self) -> Capabilities;

    /// A one-time-password code that this engine always delivers to `phone` (test numbers of
    /// a simulated network), so integrators can test without reading messages. `length` digits.
    fn fixed_test_code(&self, _phone: &Phone, _length: usize) -> Option<String> {
        None
    }

    /// Opens a session: with stored credentials it logs in, otherwise it starts showing QR codes.
    async fn open(&self, spec: SessionSpec, events: EventSink) -> Result<Arc<dyn Connection>, EngineError>;

    /// Whether a session's state is all in its [`SessionSpec::state`], so that any node can run
    /// it; otherwise only the node with its `store_dir` can.
    fn state_is_shared(&self) -> bool {
        false
    }

    /// Deletes whatever the engine stored for a session.
    async fn forget(&self, spec: &SessionSpec) -> Result<(), EngineError> {
        forget_session(spec).await
    }
}

/// Deletes what is kept for a session: its state and its directory.
pub async fn forget_session(spec: &SessionSpec) -> Result<(), EngineError> {
    spec.state
        .forget()
        .await
        .map_err(|err| EngineError::Other(format!("cannot forget the session's state: {err}")))?;
    match tokio::fs::remove_dir_all(&spec.store_dir).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(EngineError::Other(format!("cannot remove {}: {err}", spec.store_dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waited_event_is_confirmed_when_the_receiver_asks_for_the_next_one() {
        let (sink, mut events) = EventSink::channel();
        let waiting = tokio::spawn({
            let sink = sink.clone();
            async move { sink.emit_and_wait(EngineEvent::QrExhausted).await }
        });
        assert_eq!(events.recv().await, Some(EngineEvent::QrExhausted));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "handling is not over until the next event is asked for");
        sink.emit(EngineEvent::LoggedOut { reason: "test".into() });
        assert!(events.recv().await.is_some());
        assert!(waiting.await.unwrap(), "confirmed");

        let unhandled = tokio::spawn({
            let sink = sink.clone();
            async move { sink.emit_and_wait(EngineEvent::QrExhausted).await }
        });
        assert!(events.recv().await.is_some());
        drop(events);
        assert!(!unhandled.await.unwrap(), "a receiver that goes away handled nothing");
        assert!(!sink.emit(EngineEvent::QrExhausted));

        let (sink, mut events) = EventSink::channel();
        let rejected = tokio::spawn({
            let sink = sink.clone();
            async move { sink.emit_and_wait(EngineEvent::QrExhausted).await }
        });
        assert!(events.recv().await.is_some());
        events.reject();
        assert!(!rejected.await.unwrap(), "a rejected event was not handled");
        sink.emit(EngineEvent::QrExhausted);
        assert!(events.recv().await.is_some(), "the receiver goes on after a rejection");
    }
}
