//! `auto` mode: the send waits for WhatsApp's verdict on the pushed code, and a reach-out
//! restriction (463) turns the verification into an inbound one with a new code.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use wagate_core::{OtpMode, Phone};
use wagate_store::{NewCode, SessionRecord};

use super::request::Issued;
use super::{OtpError, OtpService};
use crate::time::now_ms;

/// What the dispatcher's first attempt of an `auto` verification's message came to.
#[derive(Debug)]
pub(super) enum PushOutcome {
    Sent,
    Restricted,
    Failed,
}

/// The sends waiting for their push's outcome, by verification id.
#[derive(Default)]
pub(super) struct Waiters {
    by_id: Mutex<HashMap<String, oneshot::Sender<PushOutcome>>>,
}

impl Waiters {
    pub(super) fn wait_for(&self, id: &str) -> oneshot::Receiver<PushOutcome> {
        let (tx, rx) = oneshot::channel();
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), tx);
        rx
    }

    /// Stops waiting; `false` when the worker took the waiter already.
    pub(super) fn forget(&self, id: &str) -> bool {
        self.take(id).is_some()
    }

    /// The waiter of verification `id`, to be told the outcome.
    pub(super) fn take(&self, id: &str) -> Option<oneshot::Sender<PushOutcome>> {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).remove(id)
    }
}

impl OtpService {
    /// `auto` mode: waits for the push's fate; a reach-out restriction turns the verification
    /// into an inbound one with a new code.
    pub(super) async fn settle_auto(
        &self,
        issued: Issued,
        session: &SessionRecord,
        mut waiter: oneshot::Receiver<PushOutcome>,
    ) -> Result<Issued, OtpError> {
        let id = issued.record.id.clone();
        let outcome =
            match tokio::time::timeout(Duration::from_millis(self.config.auto_wait_ms), &mut waiter).await {
                Ok(outcome) => outcome.ok(),
                // Still unanswered: unless the worker holds the waiter already, stop waiting.
                Err(_) if self.waiters.forget(&id) => None,
                Err(_) => waiter.await.ok(),
            };
        match outcome {
            Some(PushOutcome::Restricted) => {
                let code = self.new_code(
                    session,
                    &Phone::parse(&issued.record.phone, None)
                        .map_err(|e| OtpError::InvalidPhone(e.to_string()))?,
                    issued.record.code_length as usize,
                );
                let mut record = issued.record;
                let link = self.inbound_link(session, &record, &code).await?;
                record.code_mac = code.mac(&self.pepper, &record.id);
                let switched = self
                    .store
                    .replace_otp_code(NewCode {
                        id: &record.id,
                        session_id: session.id.as_str(),
                        code_mac: &record.code_mac,
                        mode: OtpMode::Inbound,
                        message: None,
                        expires_at: now_ms() + record.ttl_ms,
                        max_sends: i64::MAX,
                        sent_before: i64::MAX,
                    })
                    .await?;
                let record = match switched {
                    Some(record) => record,
                    None => self.store.otp(&record.id).await?.ok_or(OtpError::NotFound)?,
                };
                tracing::info!(otp = %record.id, "push refused by WhatsApp (463); switched to inbound");
                Ok(Issued {
                    record,
                    code: None,
                    link: Some(link),
                    fallback_reason: Some("reach_out_restricted".into()),
                })
            }
            Some(PushOutcome::Sent | PushOutcome::Failed) | None => {
                let record = self.store.otp(&id).await?.unwrap_or(issued.record);
                Ok(Issued { record, ..issued })
            }
        }
    }
}
