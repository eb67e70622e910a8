//! One sandbox session: a task that owns the session's state and answers commands, so the
//! state machine reads top to bottom without locks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use wagate_core::{Phone, SessionId};

use super::ledger::Delivery;
use super::network::{InboxEntry, SandboxError, SandboxNetwork};
use super::{codes, device, magic::MagicNumber};
use crate::{
    Account, Chat, Connection, EngineError, EngineEvent, EventSink, GroupInfo, GroupParticipant,
    InboundMessage, MessageContent, NumberCheck, OutgoingMessage, PairingCode, PendingAck, PendingAcks,
    ReceiptKind, SendFailure, SendOutcome, SessionSpec,
};

type Reply<T> = oneshot::Sender<Result<T, SandboxError>>;
type EngineReply<T> = oneshot::Sender<Result<T, EngineError>>;

pub(crate) enum Command {
    Scan {
        phone: Phone,
        push_name: Option<String>,
        qr: Option<String>,
        reply: Reply<Account>,
    },
    ConfirmPairCode {
        code: String,
        reply: Reply<Account>,
    },
    Inject {
        from: Phone,
        text: String,
        push_name: Option<String>,
        reply: Reply<InboundMessage>,
    },
    Receive(InboundMessage),
    Whoami {
        reply: Reply<Account>,
    },
    RequestPairCode {
        phone: Phone,
        reply: EngineReply<PairingCode>,
    },
    Send {
        message: OutgoingMessage,
        reply: EngineReply<PendingAck>,
    },
    CheckNumbers {
        phones: Vec<Phone>,
        reply: EngineReply<Vec<NumberCheck>>,
    },
    Groups {
        reply: EngineReply<Vec<GroupInfo>>,
    },
    Logout {
        reply: EngineReply<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
    /// The phone removes this linked device.
    Unlink {
        reply: Reply<()>,
    },
    /// WhatsApp bans the account for a while; it comes back by itself afterwards.
    Ban {
        duration: Duration,
        reply: Reply<()>,
    },
}

enum Phase {
    Qr { code: String, shown: u32, expires: Instant },
    Pairing { phone: Phone, code: String, expires: Instant },
    Connected(Account),
    Banned { account: Account, until: Instant },
}

enum Flow {
    Continue,
    Stop,
}

struct SandboxSession {
    id: SessionId,
    spec: SessionSpec,
    network: Arc<SandboxNetwork>,
    events: EventSink,
    /// Sent messages until the network answered them (at once, in the sandbox).
    acks: PendingAcks,
    phase: Phase,
}

pub(super) async fn open(
    network: Arc<SandboxNetwork>,
    spec: SessionSpec,
    events: EventSink,
) -> Result<Arc<dyn Connection>, EngineError> {
    let stored = device::load(&spec).await?;
    let (commands, inbox) = mpsc::unbounded_channel();
    network.register(&spec.id, commands.clone());
    let phase = match stored {
        Some(account) => {
            network.set_online(&spec.id, &account);
            events.emit(EngineEvent::Connected { account: account.clone() });
            Phase::Connected(account)
        }
        None => {
            let timeout = network.config.qr_first_timeout;
            let code = codes::qr_string();
            events.emit(EngineEvent::Qr { code: code.clone(), valid_for: timeout });
            Phase::Qr { code, shown: 1, expires: Instant::now() + timeout }
        }
    };
    let session =
        SandboxSession { id: spec.id.clone(), spec, network, events, acks: PendingAcks::default(), phase };
    tokio::spawn(session.run(inbox, commands.clone()));
    Ok(Arc::new(SandboxConnection { commands }))
}

impl SandboxSession {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Command>, me: mpsc::UnboundedSender<Command>) {
        loop {
            let deadline = match &self.phase {
                Phase::Qr { expires, .. } | Phase::Pairing { expires, .. } => Some(*expires),
                Phase::Banned { until, .. } => Some(*until),
                Phase::Connected(_) => None,
            };
            let flow = tokio::select! {
                command = inbox.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => Flow::Stop,
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => self.on_expiry(),
            };
            if let Flow::Stop = flow {
                break;
            }
        }
        self.network.unregister(&self.id, &me);
    }

    fn on_expiry(&mut self) -> Flow {
        let config = &self.network.config;
        match &self.phase {
            Phase::Qr { shown, .. } if *shown < config.qr_codes => {
                let code = codes::qr_string();
                self.events.emit(EngineEvent::Qr { code: code.clone(), valid_for: config.qr_timeout });
                self.phase =
                    Phase::Qr { code, shown: shown + 1, expires: Instant::now() + config.qr_timeout };
                Flow::Continue
            }
            Phase::Qr { .. } => {
                self.events.emit(EngineEvent::QrExhausted);
                Flow::Stop
            }
            Phase::Pairing { .. } => {
                self.events.emit(EngineEvent::Disconnected {
                    reason: "pairing code expired".into(),
                    reconnecting: false,
                });
                Flow::Stop
            }
            Phase::Banned { account, .. } => {
                let account = account.clone();
                self.events.emit(EngineEvent::Connected { account: account.clone() });
                self.phase = Phase::Connected(account);
                Flow::Continue
            }
            Phase::Connected(_) => Flow::Continue,
        }
    }

    async fn handle(&mut self, command: Command) -> Flow {
        match command {
            Command::Scan { phone, push_name, qr, reply } => {
                let result = match &self.phase {
                    Phase::Qr { code, .. } if qr.as_deref().is_none_or(|qr| qr == code) => {
                        self.link(phone, push_name).await
                    }
                    Phase::Qr { .. } => Err(SandboxError::QrMismatch),
                    _ => Err(SandboxError::NoQr),
                };
                let _ = reply.send(result);
            }
            Command::ConfirmPairCode { code, reply } => {
                let result = match &self.phase {
                    Phase::Pairing { phone, code: expected, .. } if *expected == code => {
                        self.link(phone.clone(), None).await
                    }
                    Phase::Pairing { .. } => Err(SandboxError::WrongPairCode),
                    _ => Err(SandboxError::NotPairing),
                };
                let _ = reply.send(result);
            }
            Command::Inject { from, text, push_name, reply } => {
                let result = match &self.phase {
                    Phase::Connected(_) => {
                        let message = InboundMessage {
                            id: codes::message_id(),
                            chat: from.jid(),
                            from,
                            from_lid: None,
                            push_name,
                            content: MessageContent::Text {
                                body: text,
                                mentions: Vec::new(),
                                reply_to: None,
                            },
                            quoted_id: None,
                            timestamp: now_ms(),
                        };
                        // Answered once the gateway stored it (or could not), without holding up
                        // this session meanwhile.
                        let events = self.events.clone();
                        tokio::spawn(async move {
                            let stored = events.emit_and_wait(EngineEvent::Inbound(message.clone())).await;
                            let _ =
                                reply.send(if stored { Ok(message) } else { Err(SandboxError::NotStored) });
                        });
                        return Flow::Continue;
                    }
                    _ => Err(SandboxError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::Whoami { reply } => {
                let result = match &self.phase {
                    Phase::Connected(account) => Ok(account.clone()),
                    _ => Err(SandboxError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::Receive(message) => {
                if let Phase::Connected(_) = self.phase {
                    self.events.emit(EngineEvent::Inbound(message));
                }
            }
            Command::RequestPairCode { phone, reply } => {
                let result = match &self.phase {
                    Phase::Connected(_) | Phase::Banned { .. } => Err(EngineError::AlreadyLinked),
                    _ => {
                        let code = codes::pair_code();
                        let valid_for = self.network.config.pair_code_timeout;
                        self.events.emit(EngineEvent::PairCode { code: code.clone(), valid_for });
                        self.phase =
                            Phase::Pairing { phone, code: code.clone(), expires: Instant::now() + valid_for };
                        Ok(PairingCode { code, valid_for })
                    }
                };
                let _ = reply.send(result);
            }
            Command::Send { message, reply } => {
                let result = match &self.phase {
                    Phase::Connected(account) => {
                        let id = message.id.clone();
                        let ack = self.acks.expect(&id);
                        let outcome = self.send(account.clone(), message).await;
                        self.acks.resolve(&id, outcome);
                        Ok(ack)
                    }
                    _ => Err(EngineError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::CheckNumbers { phones, reply } => {
                let result = match &self.phase {
                    Phase::Connected(_) => Ok(phones.into_iter().map(check_number).collect()),
                    _ => Err(EngineError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::Groups { reply } => {
                let result = match &self.phase {
                    Phase::Connected(account) => self.groups(account).await,
                    _ => Err(EngineError::NotConnected),
                };
                let _ = reply.send(result);
            }
            Command::Logout { reply } => {
                let result = device::remove(&self.spec).await;
                if result.is_ok() {
                    self.events.emit(EngineEvent::LoggedOut { reason: "logged out".into() });
                }
                let _ = reply.send(result);
                return Flow::Stop;
            }
            Command::Close { reply } => {
                let _ = reply.send(());
                return Flow::Stop;
            }
            Command::Unlink { reply } => {
                if !matches!(self.phase, Phase::Connected(_) | Phase::Banned { .. }) {
                    let _ = reply.send(Err(SandboxError::NotConnected));
                    return Flow::Continue;
                }
                if let Err(err) = device::remove(&self.spec).await {
                    tracing::error!(error = %err, "sandbox: cannot remove the device");
                }
                self.events.emit(EngineEvent::LoggedOut {
                    reason: "logged out: the phone removed this device".into(),
                });
                let _ = reply.send(Ok(()));
                return Flow::Stop;
            }
            Command::Ban { duration, reply } => {
                let Phase::Connected(account) = &self.phase else {
                    let _ = reply.send(Err(SandboxError::NotConnected));
                    return Flow::Continue;
                };
                let account = account.clone();
                let reason =
                    format!("temporary_ban: WhatsApp banned the account for {} s", duration.as_secs());
                self.events.emit(EngineEvent::Disconnected { reason, reconnecting: true });
                self.phase = Phase::Banned { account, until: Instant::now() + duration };
                let _ = reply.send(Ok(()));
            }
        }
        Flow::Continue
    }

    async fn link(&mut self, phone: Phone, push_name: Option<String>) -> Result<Account, SandboxError> {
        let account = Account { phone, lid: Some(codes::lid()), push_name };
        if let Err(err) = device::save(&self.spec, &account).await {
            tracing::error!(session = %self.id, error = %err, "sandbox: cannot store the linked device");
            return Err(SandboxError::NotOpen);
        }
        self.events.emit(EngineEvent::Paired { account: account.clone() });
        self.network.set_online(&self.id, &account);
        self.events.emit(EngineEvent::Connected { account: account.clone() });
        self.phase = Phase::Connected(account.clone());
        Ok(account)
    }

    /// Delivers the message to its recipients' inboxes; the network's answer.
    async fn send(&self, account: Account, message: OutgoingMessage) -> SendOutcome {
        let id = message.id.clone();
        let unavailable = |err: SandboxError| SendFailure::Transient { detail: err.to_string() };
        let (recipients, group) = match &message.to {
            Chat::Phone(phone) => (vec![phone.clone()], None),
            Chat::Group(jid) => match self.network.group(jid).await.map_err(unavailable)? {
                Some(group) if group.members.contains(&account.phone.e164().to_owned()) => {
                    let members = group
                        .members
                        .iter()
                        .filter(|m| **m != account.phone.e164())
                        .filter_map(|m| Phone::parse(m, None).ok())
                        .collect();
                    (members, Some(jid.clone()))
                }
                _ => {
                    return Err(SendFailure::Permanent { detail: format!("unknown group {jid}") });
                }
            },
        };
        let config = &self.network.config;
        let mut delivered_after = config.delivery_delay;
        if group.is_none() {
            match MagicNumber::of(&recipients[0]) {
                Some(MagicNumber::NotOnWhatsApp) => return Err(SendFailure::NotOnWhatsApp),
                Some(MagicNumber::ReachOutRestricted) => return Err(SendFailure::ReachOutRestricted),
                Some(MagicNumber::SendFailure) => {
                    return Err(SendFailure::Transient { detail: "sandbox: simulated send failure".into() });
                }
                Some(MagicNumber::SlowDelivery) => delivered_after = config.slow_delivery,
                None => {}
            }
        }
        if message.content.media().is_some() && message.media.is_none() {
            return Err(SendFailure::Permanent { detail: "media bytes missing".into() });
        }
        let media_size = message.media.as_ref().map(|m| m.bytes.len());
        let received_at = now_ms();
        for to in recipients {
            let entry = InboxEntry {
                id: id.clone(),
                from: account.phone.e164().to_owned(),
                session_id: self.id.to_string(),
                to: to.e164().to_owned(),
                group: group.clone(),
                media_size,
                content: message.content.clone(),
                received_at,
            };
            let delivery =
                Delivery { entry, from_lid: account.lid.clone(), push_name: account.push_name.clone() };
            self.network.deliver(delivery).await.map_err(unavailable)?;
        }
        let events = self.events.clone();
        let read_after = config.read_delay;
        tokio::spawn(receipts(events, id, delivered_after, read_after));
        Ok(())
    }

    async fn groups(&self, account: &Account) -> Result<Vec<GroupInfo>, EngineError> {
        let groups = self
            .network
            .groups_of(account.phone.e164())
            .await
            .map_err(|err| EngineError::Other(err.to_string()))?;
        Ok(groups
            .into_iter()
            .map(|(jid, group)| GroupInfo {
                jid,
                subject: group.subject.clone(),
                description: None,
                owner: group.members.first().map(|m| wagate_core::address::jid_of_stored(m)),
                participants: group
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, m)| GroupParticipant {
                        jid: wagate_core::address::jid_of_stored(m),
                        phone: Some(m.clone()),
                        is_admin: i == 0,
                        is_super_admin: i == 0,
                    })
                    .collect(),
            })
            .collect())
    }
}

async fn receipts(events: EventSink, id: String, delivered_after: Duration, read_after: Duration) {
    tokio::time::sleep(delivered_after).await;
    if !events.emit(EngineEvent::Receipt { ids: vec![id.clone()], kind: ReceiptKind::Delivered }) {
        return;
    }
    tokio::time::sleep(read_after).await;
    events.emit(EngineEvent::Receipt { ids: vec![id], kind: ReceiptKind::Read });
}

fn check_number(phone: Phone) -> NumberCheck {
    let on_whatsapp = MagicNumber::of(&phone) != Some(MagicNumber::NotOnWhatsApp);
    NumberCheck { jid: on_whatsapp.then(|| phone.jid()), lid: None, phone, on_whatsapp, business: false }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The [`Connection`] handle: every call is a command to the session's task.
struct SandboxConnection {
    commands: mpsc::UnboundedSender<Command>,
}

impl SandboxConnection {
    async fn ask<T>(&self, command: impl FnOnce(EngineReply<T>) -> Command) -> Result<T, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| EngineError::Closed)?;
        answer.await.map_err(|_| EngineError::Closed)?
    }
}

#[async_trait]
impl Connection for SandboxConnection {
    async fn send(&self, message: OutgoingMessage) -> Result<PendingAck, EngineError> {
        self.ask(|reply| Command::Send { message, reply }).await
    }

    async fn pair_with_code(&self, phone: &Phone) -> Result<PairingCode, EngineError> {
        let phone = phone.clone();
        self.ask(|reply| Command::RequestPairCode { phone, reply }).await
    }

    async fn check_numbers(&self, phones: &[Phone]) -> Result<Vec<NumberCheck>, EngineError> {
        let phones = phones.to_vec();
        self.ask(|reply| Command::CheckNumbers { phones, reply }).await
    }

    async fn set_typing(&self, _chat: &Chat) -> Result<(), EngineError> {
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, EngineError> {
        self.ask(|reply| Command::Groups { reply }).await
    }

    async fn logout(&self) -> Result<(), EngineError> {
        self.ask(|reply| Command::Logout { reply }).await
    }

    async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).is_ok() {
            let _ = done.await;
        }
    }
}
