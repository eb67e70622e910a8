//! How a code travels: the text of its template, sealed into an outbox message (push mode),
//! or put in a `wa.me` link the user opens (inbound mode).

use wagate_core::MessageContent;
use wagate_core::otp::OtpCode;
use wagate_store::{NewMessage, OtpRecord, SessionRecord};

use super::templates::{self, Vars};
use super::{OTP_PRIORITY, OtpError, OtpService, link};
use crate::outbox::NewOutgoing;

/// How a new code travels.
pub(super) struct Carrier {
    /// Push: the message id and its sealed content.
    pub(super) message: Option<(String, MessageContent)>,
    /// Inbound: the `wa.me` link.
    pub(super) link: Option<String>,
}

impl Carrier {
    pub(super) fn message_id(&self) -> Option<String> {
        self.message.as_ref().map(|(id, _)| id.clone())
    }
}

impl OtpService {
    /// The text of a template for this verification.
    async fn text(
        &self,
        owner_id: &str,
        name: &str,
        locale: &str,
        code: &OtpCode,
        brand: Option<&str>,
        ttl_secs: u64,
    ) -> Result<String, OtpError> {
        let body = self.settings.template(owner_id, name, locale).await?;
        let body = match body {
            Some(body) => body,
            None => templates::built_in(name, locale)
                .ok_or_else(|| OtpError::UnknownTemplate(name.to_owned()))?
                .to_owned(),
        };
        let minutes = ttl_secs.div_ceil(60) as i64;
        Ok(templates::render(&body, &Vars { code: code.reveal(), brand, minutes })?)
    }

    async fn sealed_message(&self, record: &OtpRecord, code: &OtpCode) -> Result<MessageContent, OtpError> {
        let name = record.template.as_deref().unwrap_or(templates::PUSH);
        let ttl_secs = (record.ttl_ms / 1000) as u64;
        let text = self
            .text(&record.owner_id, name, &record.locale, code, record.brand.as_deref(), ttl_secs)
            .await?;
        Ok(MessageContent::Text { body: self.sealer.seal(&text), mentions: Vec::new(), reply_to: None })
    }

    /// How a new code travels: a sealed message (push) or a link the user opens (inbound).
    pub(super) async fn carrier(
        &self,
        session: &SessionRecord,
        record: &OtpRecord,
        code: &OtpCode,
    ) -> Result<Carrier, OtpError> {
        Ok(match record.mode {
            wagate_core::OtpMode::Inbound => {
                Carrier { message: None, link: Some(self.inbound_link(session, record, code).await?) }
            }
            _ => Carrier {
                message: Some((
                    wagate_core::message::new_message_id(),
                    self.sealed_message(record, code).await?,
                )),
                link: None,
            },
        })
    }

    /// The outbox row of a pushed code: first in its session's queue, dropped if it expires.
    pub(super) fn outbox_message<'a>(
        &self,
        carrier: &'a Carrier,
        session: &'a SessionRecord,
        record: &'a OtpRecord,
    ) -> Option<NewMessage<'a>> {
        carrier.message.as_ref().map(|(id, content)| {
            let outgoing = NewOutgoing {
                owner_id: &session.owner_id,
                session_id: &session.id,
                pool: record.pool.as_deref(),
                recipient: &record.phone,
                content,
                priority: OTP_PRIORITY,
                expires_at: Some(record.expires_at),
                idempotency_key: None,
                request_hash: None,
            };
            self.sessions.outbox().new_message(&outgoing, id)
        })
    }

    /// `https://wa.me/<session's number>?text=<the text with the code>`.
    pub(super) async fn inbound_link(
        &self,
        session: &SessionRecord,
        record: &OtpRecord,
        code: &OtpCode,
    ) -> Result<String, OtpError> {
        let account = session.account.as_ref().ok_or(OtpError::SessionNotLinked)?;
        let ttl_secs = (record.ttl_ms / 1000) as u64;
        let text = self
            .text(
                &record.owner_id,
                templates::INBOUND,
                &record.locale,
                code,
                record.brand.as_deref(),
                ttl_secs,
            )
            .await?;
        Ok(link::wa_me(&account.phone, &text))
    }
}
