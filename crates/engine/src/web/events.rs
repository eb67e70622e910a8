//! The client's events as ours, and why a client stopped.

use std::sync::Arc;

use whatsapp_rust::types::events::Event;
use whatsapp_rust::types::presence::ReceiptType;

use super::acks::on_server_ack;
use super::inbound::convert;
use super::jids::{lid_string, phone_of};
use super::session::Shared;
use crate::{Account, EngineEvent, ReceiptKind};

/// Why a client stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ending {
    /// We asked it to (close or logout).
    Stopped,
    /// WhatsApp removed the link; the credentials are worthless.
    LoggedOut {
        reason: String,
    },
    QrExhausted,
    /// Something a new client would hit again (banned, replaced, outdated …).
    Final {
        reason: String,
    },
    /// Stopped for no reason we know: start a new one.
    Unexpected {
        reason: String,
    },
}

pub(super) struct Translator {
    shared: Arc<Shared>,
    ending: Option<Ending>,
}

impl Translator {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared, ending: None }
    }

    pub fn ending(self, stop_requested: bool) -> Ending {
        match self.ending {
            Some(ending) => ending,
            None if stop_requested => Ending::Stopped,
            None => Ending::Unexpected { reason: "the WhatsApp client stopped".into() },
        }
    }

    fn emit(&self, event: EngineEvent) {
        self.shared.events.emit(event);
    }

    /// Returns true when the client must be stopped: it hit something it cannot recover from.
    pub async fn on_event(&mut self, event: &Event) -> bool {
        match event {
            Event::PairingQrCode(qr) => {
                self.shared.attempts.reached();
                self.emit(EngineEvent::Qr { code: qr.code.clone(), valid_for: qr.timeout });
            }
            Event::PairingCode(code) => {
                self.shared.attempts.reached();
                self.emit(EngineEvent::PairCode { code: code.code.clone(), valid_for: code.timeout });
            }
            Event::PairingCodeError(error) => {
                tracing::warn!(session = %self.shared.spec.id, error = %error.error, "pairing code request failed");
            }
            Event::PairingQrCodesExhausted(_) => {
                self.ending = Some(Ending::QrExhausted);
                return true;
            }
            Event::PairSuccess(paired) => {
                self.shared.attempts.reached();
                if let Some(phone) = phone_of(&paired.id) {
                    let account = Account { phone, lid: lid_string(&paired.lid), push_name: None };
                    self.emit(EngineEvent::Paired { account });
                }
            }
            Event::PairError(error) => {
                tracing::warn!(session = %self.shared.spec.id, error = %error.error, "pairing failed");
            }
            Event::Connected(_) => {
                self.shared.attempts.reached();
                match self.account() {
                    Some(account) => self.emit(EngineEvent::Connected { account }),
                    None => {
                        tracing::warn!(session = %self.shared.spec.id, "connected without an own phone number")
                    }
                }
            }
            Event::Disconnected(disconnected) => {
                self.shared.acks.connection_lost();
                let retry_in = self.shared.attempts.dropped();
                let reason = format!("connection lost: {}", disconnected.reason);
                self.emit(EngineEvent::Reconnecting { attempt: 0, retry_in, reason });
            }
            Event::LoggedOut(logged_out) => {
                self.ending =
                    Some(Ending::LoggedOut { reason: format!("logged out: {:?}", logged_out.reason) });
                return true;
            }
            Event::StreamReplaced(_) => {
                let reason = "stream_replaced: another client opened this session's connection".into();
                self.ending = Some(Ending::Final { reason });
                return true;
            }
            Event::TemporaryBan(ban) => {
                let reason = format!(
                    "temporary_ban: WhatsApp banned the account for {} s ({:?})",
                    ban.expire.num_seconds(),
                    ban.code
                );
                self.ending = Some(Ending::Final { reason });
                return true;
            }
            Event::ClientOutdated(_) => {
                let reason =
                    "client_outdated: WhatsApp refuses this client version; set [web] version".into();
                self.ending = Some(Ending::Final { reason });
                return true;
            }
            Event::ConnectFailure(failure) => {
                tracing::warn!(session = %self.shared.spec.id, reason = ?failure.reason, "WhatsApp refused the login");
            }
            Event::ServerAck(ack) if ack.class.as_deref().is_none_or(|class| class == "message") => {
                on_server_ack(&self.shared.acks, &ack.id, ack.error.as_deref());
            }
            Event::Receipt(receipt) if !receipt.source.is_from_me || receipt.source.is_group => {
                if let Some(kind) = receipt_kind(&receipt.r#type) {
                    let ids = receipt.message_ids.iter().map(|id| id.to_string()).collect();
                    self.emit(EngineEvent::Receipt { ids, kind });
                }
            }
            // Stored through the durability hook already, before the client acknowledged them.
            Event::Messages(batch) if batch.hook_committed => {}
            Event::Messages(batch) => {
                for message in batch.messages.iter() {
                    if let Some(inbound) = convert(&self.shared, message).await {
                        self.emit(EngineEvent::Inbound(inbound));
                    }
                }
            }
            _ => {}
        }
        false
    }

    fn account(&self) -> Option<Account> {
        let client = self.shared.client()?;
        let phone = client.pn().as_ref().and_then(phone_of)?;
        let push_name = Some(client.push_name()).filter(|name| !name.is_empty());
        Some(Account { phone, lid: client.lid().as_ref().and_then(lid_string), push_name })
    }
}

fn receipt_kind(kind: &ReceiptType) -> Option<ReceiptKind> {
    match kind {
        ReceiptType::Delivered => Some(ReceiptKind::Delivered),
        ReceiptType::Read => Some(ReceiptKind::Read),
        ReceiptType::Played => Some(ReceiptKind::Played),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use whatsapp_rust::chrono;
    use whatsapp_rust::transport::DisconnectReason;
    use whatsapp_rust::types::events::{
        ClientOutdated, ConnectFailureReason, Disconnected, LoggedOut, PairingQrCode,
        PairingQrCodesExhausted, Receipt, ServerAck, StreamReplaced, TempBanReason, TemporaryBan,
    };
    use whatsapp_rust::types::message::MessageSource;

    use super::*;
    use crate::{EventReceiver, EventSink, SendFailure};

    fn new_translator() -> (Translator, EventReceiver) {
        let (sink, events) = EventSink::channel();
        (Translator::new(Shared::detached(sink)), events)
    }

    fn drain(events: &mut EventReceiver) -> Vec<EngineEvent> {
        std::iter::from_fn(|| events.try_recv()).collect()
    }

    #[test]
    fn only_delivery_receipts_count() {
        assert_eq!(receipt_kind(&ReceiptType::Delivered), Some(ReceiptKind::Delivered));
        assert_eq!(receipt_kind(&ReceiptType::Read), Some(ReceiptKind::Read));
        assert_eq!(receipt_kind(&ReceiptType::Played), Some(ReceiptKind::Played));
        assert_eq!(receipt_kind(&ReceiptType::ReadSelf), None);
        assert_eq!(receipt_kind(&ReceiptType::Retry), None);
    }

    #[tokio::test]
    async fn link_events_become_ours() {
        let (mut translator, mut events) = new_translator();
        let qr = PairingQrCode::builder().code("2@ref,a,b,c".into()).timeout(Duration::from_secs(60)).build();
        assert!(!translator.on_event(&Event::PairingQrCode(qr)).await);
        let dropped = Disconnected::builder().reason(DisconnectReason::StreamEnded).build();
        assert!(!translator.on_event(&Event::Disconnected(dropped)).await);
        assert_eq!(
            drain(&mut events),
            [
                EngineEvent::Qr { code: "2@ref,a,b,c".into(), valid_for: Duration::from_secs(60) },
                EngineEvent::Reconnecting {
                    attempt: 0,
                    retry_in: Duration::from_secs(1),
                    reason: "connection lost: stream ended (EOF)".into()
                },
            ]
        );
        let exhausted = PairingQrCodesExhausted::builder().disconnected(true).build();
        assert!(
            translator.on_event(&Event::PairingQrCodesExhausted(exhausted)).await,
            "the client must stop"
        );
        assert_eq!(translator.ending(false), Ending::QrExhausted);
    }

    #[tokio::test]
    async fn final_conditions_stop_the_client_with_a_clear_reason() {
        let cases: Vec<(Event, &str)> = vec![
            (Event::StreamReplaced(StreamReplaced::builder().build()), "stream_replaced"),
            (
                Event::TemporaryBan(
                    TemporaryBan::builder()
                        .code(TempBanReason::SentToTooManyPeople)
                        .expire(chrono::Duration::hours(2))
                        .build(),
                ),
                "temporary_ban: WhatsApp banned the account for 7200 s",
            ),
            (Event::ClientOutdated(ClientOutdated::builder().build()), "client_outdated"),
        ];
        for (event, reason) in cases {
            let (mut translator, _events) = new_translator();
            assert!(translator.on_event(&event).await, "{event:?} must stop the client");
            match translator.ending(false) {
                Ending::Final { reason: got } => assert!(got.starts_with(reason), "{got}"),
                other => panic!("{other:?}"),
            }
        }

        let (mut translator, _events) = new_translator();
        let logged_out =
            LoggedOut::builder().on_connect(true).reason(ConnectFailureReason::LoggedOut).build();
        assert!(translator.on_event(&Event::LoggedOut(logged_out)).await);
        assert!(matches!(translator.ending(false), Ending::LoggedOut { .. }));

        let (translator, _events) = new_translator();
        assert_eq!(translator.ending(true), Ending::Stopped, "a stop we asked for is not a failure");
    }

    #[tokio::test]
    async fn acks_and_receipts_update_our_messages() {
        let (mut translator, mut events) = new_translator();
        let sent = translator.shared.acks.expect("3EB0A");
        let refused = translator.shared.acks.expect("3EB0B");
        let ack = ServerAck::builder().id("3EB0A".into()).class("message".into()).build();
        let nack =
            ServerAck::builder().id("3EB0B".into()).class("message".into()).error("463".into()).build();
        let other = ServerAck::builder().id("3EB0C".into()).class("receipt".into()).build();
        for event in [ack, nack, other] {
            translator.on_event(&Event::ServerAck(event)).await;
        }
        let receipt = Receipt::builder()
            .source(MessageSource::default())
            .message_ids(vec!["3EB0A".to_owned()])
            .timestamp(chrono::Utc::now())
            .r#type(ReceiptType::Read)
            .offline(false)
            .build();
        translator.on_event(&Event::Receipt(receipt)).await;
        assert_eq!(sent.await, Ok(Ok(())));
        assert_eq!(refused.await, Ok(Err(SendFailure::ReachOutRestricted)));
        assert_eq!(
            drain(&mut events),
            [EngineEvent::Receipt { ids: vec!["3EB0A".into()], kind: ReceiptKind::Read }]
        );
    }
}
