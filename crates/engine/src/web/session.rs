//! One `web` session: the [`Connection`] the rest of wagate holds, and the state its
//! supervisor shares with it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use wagate_core::Phone;
use whatsapp_rust::client::Client;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::upload::UploadOptions;
use whatsapp_rust::{Jid, SendOptions};

use super::WebConfig;
use super::attempts::Attempts;
use super::content::{media_message, media_type, plain_message};
use super::jids::{chat_jid, lid_string, phone_of};
use super::supervisor;
use crate::{
    Chat, Connection, EngineError, EventSink, GroupInfo, GroupParticipant, NumberCheck, OutgoingMessage,
    PairingCode, PendingAck, PendingAcks, SessionSpec,
};

/// How long a pairing code stays valid on WhatsApp's side.
const PAIR_CODE_VALIDITY: Duration = Duration::from_secs(180);
/// How long `close` waits for the client to flush and stop before abandoning it.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(super) struct Shared {
    pub spec: SessionSpec,
    pub events: EventSink,
    pub config: Arc<WebConfig>,
    /// The running client, while there is one.
    client: watch::Sender<Option<Arc<Client>>>,
    pub acks: PendingAcks,
    pub attempts: Attempts,
    /// Set by `close` and `logout`: the supervisor must not start another client.
    stopping: AtomicBool,
    pub stop: Notify,
}

impl Shared {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    pub fn client(&self) -> Option<Arc<Client>> {
        self.client.borrow().clone()
    }

    pub fn set_client(&self, client: Option<Arc<Client>>) {
        self.client.send_replace(client);
    }

    /// The client, once the supervisor has started it (it may still be connecting).
    async fn started_client(&self, within: Duration) -> Result<Arc<Client>, EngineError> {
        let mut client = self.client.subscribe();
        let started = tokio::time::timeout(within, client.wait_for(Option::is_some)).await;
        match started {
            Ok(Ok(client)) => Ok(client.clone().expect("waited for a client")),
            _ if self.is_stopping() => Err(EngineError::Closed),
            _ => Err(EngineError::Other("the WhatsApp client did not start in time".into())),
        }
    }

    /// The client, when it is logged in and can send.
    fn online_client(&self) -> Result<Arc<Client>, EngineError> {
        self.client().filter(|client| client.is_logged_in()).ok_or(EngineError::NotConnected)
    }

    fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }
}

#[cfg(test)]
impl Shared {
    /// A session without a client, whose events go to `events`.
    pub fn detached(events: EventSink) -> Arc<Shared> {
        let spec = SessionSpec {
            id: wagate_core::SessionId::parse("test").expect("a valid id"),
            state: Arc::new(crate::state::MemoryState::default()),
            store_dir: std::env::temp_dir().join("wagate-web-engine-unit-tests"),
        };
        Arc::new(Shared {
            spec,
            events,
            config: Arc::new(WebConfig::default()),
            client: watch::Sender::new(None),
            acks: PendingAcks::default(),
            attempts: Attempts::default(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        })
    }
}

pub(super) struct WebSession {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl WebSession {
    pub fn open(spec: SessionSpec, events: EventSink, config: Arc<WebConfig>) -> Self {
        let shared = Arc::new(Shared {
            spec,
            events,
            config,
            client: watch::Sender::new(None),
            acks: PendingAcks::default(),
            attempts: Attempts::default(),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        });
        let supervisor = tokio::spawn(supervisor::supervise(shared.clone()));
        Self { shared, supervisor: Mutex::new(Some(supervisor)) }
    }

    /// Stops the client (after `disconnect` or `logout` was asked of it) and waits for the
    /// supervisor, so the store is closed before anyone opens it again.
    async fn stop(&self) {
        self.shared.request_stop();
        if let Some(client) = self.shared.client() {
            client.disconnect().await;
        }
        let supervisor = self.supervisor.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(mut supervisor) = supervisor
            && tokio::time::timeout(STOP_GRACE, &mut supervisor).await.is_err()
        {
            tracing::warn!(session = %self.shared.spec.id, "the WhatsApp client did not stop in time");
            supervisor.abort();
        }
    }
}

#[async_trait]
impl Connection for WebSession {
    async fn send(&self, message: OutgoingMessage) -> Result<PendingAck, EngineError> {
        let client = self.shared.online_client()?;
        let to = chat_jid(&message.to)?;
        let protobuf = match plain_message(&message.content, &to.to_string()) {
            Some(protobuf) => protobuf,
            None => {
                let media = message
                    .media
                    .as_ref()
                    .ok_or_else(|| EngineError::Other("the media is missing".into()))?;
                let kind = media_type(&message.content)
                    .ok_or_else(|| EngineError::Other("not a media message".into()))?;
                let upload = client
                    .upload(media.bytes.to_vec(), kind, UploadOptions::default())
                    .await
                    .map_err(|err| EngineError::Other(format!("media upload failed: {err:#}")))?;
                media_message(&message.content, upload.into(), &media.mimetype)
            }
        };
        let ack = self.shared.acks.expect(&message.id);
        let options = SendOptions::default().with_message_id(message.id.clone());
        match client.send_message_with_options(to, protobuf, options).await {
            Ok(_) => Ok(ack),
            Err(err) => {
                self.shared.acks.forget(&message.id);
                if client.is_logged_in() && client.is_connected() {
                    Err(EngineError::Other(format!("send failed: {err}")))
                } else {
                    Err(EngineError::NotConnected)
                }
            }
        }
    }

    async fn pair_with_code(&self, phone: &Phone) -> Result<PairingCode, EngineError> {
        let client = self.shared.started_client(Duration::from_secs(30)).await?;
        if client.is_logged_in() {
            return Err(EngineError::AlreadyLinked);
        }
        client
            .wait_for_socket(Duration::from_secs(30))
            .await
            .map_err(|err| EngineError::Other(format!("cannot reach WhatsApp: {err}")))?;
        let options = PairCodeOptions { phone_number: phone.digits().to_owned(), ..Default::default() };
        let code = client
            .pair_with_code(options)
            .await
            .map_err(|err| EngineError::Other(format!("WhatsApp refused the pairing code request: {err}")))?;
        Ok(PairingCode { code, valid_for: PAIR_CODE_VALIDITY })
    }

    async fn check_numbers(&self, phones: &[Phone]) -> Result<Vec<NumberCheck>, EngineError> {
        let client = self.shared.online_client()?;
        let jids: Vec<Jid> = phones.iter().map(|phone| Jid::pn(phone.digits())).collect();
        let results = client
            .contacts()
            .is_on_whatsapp(&jids)
            .await
            .map_err(|err| EngineError::Other(format!("number check failed: {err}")))?;
        Ok(phones
            .iter()
            .map(|phone| {
                let found = results.iter().find(|result| {
                    let pn = result.pn_jid.as_ref().unwrap_or(&result.jid);
                    phone_of(pn).as_ref() == Some(phone)
                });
                match found {
                    Some(result) if result.is_registered => NumberCheck {
                        phone: phone.clone(),
                        on_whatsapp: true,
                        jid: Some(phone.jid()),
                        lid: result.lid.as_ref().and_then(lid_string),
                        business: result.is_business,
                    },
                    _ => NumberCheck {
                        phone: phone.clone(),
                        on_whatsapp: false,
                        jid: None,
                        lid: None,
                        business: false,
                    },
                }
            })
            .collect())
    }

    async fn set_typing(&self, chat: &Chat) -> Result<(), EngineError> {
        let client = self.shared.online_client()?;
        client
            .chatstate()
            .send_composing(&chat_jid(chat)?)
            .await
            .map_err(|err| EngineError::Other(format!("typing indicator failed: {err}")))
    }

    async fn groups(&self) -> Result<Vec<GroupInfo>, EngineError> {
        let client = self.shared.online_client()?;
        let groups = client
            .groups()
            .get_participating()
            .await
            .map_err(|err| EngineError::Other(format!("cannot list groups: {err}")))?;
        let mut groups: Vec<GroupInfo> = groups
            .into_values()
            .map(|group| GroupInfo {
                jid: group.id.to_string(),
                subject: group.subject,
                description: group.description,
                owner: group.creator.map(|jid| jid.to_string()),
                participants: group
                    .participants
                    .iter()
                    .map(|p| GroupParticipant {
                        jid: p.jid.to_string(),
                        phone: p
                            .phone_number
                            .as_ref()
                            .or(Some(&p.jid))
                            .and_then(phone_of)
                            .map(|p| p.e164().to_owned()),
                        is_admin: p.is_admin(),
                        is_super_admin: p.is_super_admin(),
                    })
                    .collect(),
            })
            .collect();
        groups.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(groups)
    }

    async fn logout(&self) -> Result<(), EngineError> {
        self.shared.request_stop();
        if let Some(client) = self.shared.client() {
            client.logout().await;
        }
        self.stop().await;
        remove_credentials(&self.shared).await
    }

    async fn close(&self) {
        self.stop().await;
    }
}

pub(super) async fn remove_credentials(shared: &Shared) -> Result<(), EngineError> {
    crate::forget_session(&shared.spec).await
}
