//! The engine's events for one connection: a pump task per connection hands each event to
//! one small handler. Status-changing events are handled with the runtime's `status_gate`
//! held, after the pump re-checked its generation (see the module docs of `sessions`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wagate_core::{SessionId, SessionStatus};
use wagate_engine::{Account, EngineEvent, EventReceiver};
use wagate_store::LinkedAccount;

use super::SessionManager;
use super::runtime::{LiveCode, Runtime, View};
use super::stream::{AccountView, StreamEvent, webhook_data};
use crate::audit::Level;
use crate::time::{now_ms, rfc3339};

/// What became of an event. Whether the connection ended with it is the event's kind
/// ([`ends_connection`]).
#[derive(Debug, PartialEq, Eq)]
enum AfterEvent {
    Handled,
    /// The event could not be handled (a received message not stored): the engine is told so.
    NotHandled,
}

/// Whether handling `event` changes the session's status or live codes.
fn changes_status(event: &EngineEvent) -> bool {
    !matches!(event, EngineEvent::Receipt { .. } | EngineEvent::Inbound(_))
}

/// Whether the connection is over after `event` (its pump then ends). Such an event is handled
/// with the connection's lock held (taken before the status gate, as `connect` takes them), so
/// that a connect asked for as soon as the status shows the end opens a new connection instead
/// of finding the ended one.
fn ends_connection(event: &EngineEvent) -> bool {
    matches!(
        event,
        EngineEvent::LoggedOut { .. }
            | EngineEvent::QrExhausted
            | EngineEvent::Disconnected { reconnecting: false, .. }
    )
}

impl SessionManager {
    /// Handles one connection's events until it ends or a newer connection replaces it.
    pub(super) async fn pump(self, runtime: Arc<Runtime>, generation: u64, mut events: EventReceiver) {
        while let Some(event) = events.recv().await {
            let live = if ends_connection(&event) { Some(runtime.live.lock().await) } else { None };
            let gate = if changes_status(&event) { Some(runtime.status_gate.lock().await) } else { None };
            if runtime.generation.load(Ordering::SeqCst) != generation {
                break;
            }
            let after = self.on_event(&runtime, event).await;
            drop(gate);
            if after == AfterEvent::NotHandled {
                events.reject();
            }
            if let Some(mut live) = live {
                if runtime.generation.load(Ordering::SeqCst) == generation {
                    live.connection = None;
                    runtime.generation.fetch_add(1, Ordering::SeqCst);
                }
                break;
            }
        }
    }

    /// Status-changing events arrive with `status_gate` held (see [`changes_status`]).
    async fn on_event(&self, runtime: &Arc<Runtime>, event: EngineEvent) -> AfterEvent {
        match event {
            EngineEvent::Qr { code, valid_for } => self.on_qr(runtime, code, valid_for).await,
            EngineEvent::QrExhausted => self.on_qr_exhausted(runtime).await,
            EngineEvent::PairCode { code, valid_for } => self.on_pair_code(runtime, code, valid_for).await,
            EngineEvent::Paired { account } => self.on_paired(runtime, account).await,
            EngineEvent::Connected { account } => self.on_connected(runtime, account).await,
            EngineEvent::Disconnected { reason, reconnecting } => {
                self.on_disconnected(runtime, reason, reconnecting).await
            }
            EngineEvent::Reconnecting { attempt, retry_in, reason } => {
                self.on_reconnecting(runtime, attempt, retry_in, reason).await
            }
            EngineEvent::LoggedOut { reason } => self.on_logged_out(runtime, reason).await,
            EngineEvent::Receipt { ids, kind } => {
                self.outbox().receipt(&runtime.sender(), ids, kind);
                AfterEvent::Handled
            }
            EngineEvent::Inbound(message) => match self.on_inbound(runtime, message).await {
                true => AfterEvent::Handled,
                false => AfterEvent::NotHandled,
            },
        }
    }

    async fn on_qr(&self, runtime: &Runtime, code: String, valid_for: Duration) -> AfterEvent {
        let expires_at = now_ms() + valid_for.as_millis() as i64;
        // The status is stored before the code is shown: whoever sees the code sees `qr`.
        let first = runtime.view().qr.is_none();
        if first {
            self.write_status(runtime, SessionStatus::Qr, None).await;
            let detail = serde_json::json!({ "valid_for_ms": valid_for.as_millis() as u64 });
            self.log(&runtime.id, "qr", detail).await;
        }
        {
            let mut view = runtime.view();
            view.qr = Some(LiveCode { code: code.clone(), expires_at });
            view.pair_code = None;
        }
        let event =
            StreamEvent::Qr { session_id: runtime.id.to_string(), qr: code, expires_at: rfc3339(expires_at) };
        self.webhooks().emit(&runtime.owner_id, Some(&runtime.id), "session.qr", webhook_data(&event)).await;
        runtime.publish(event);
        AfterEvent::Handled
    }

    async fn on_qr_exhausted(&self, runtime: &Runtime) -> AfterEvent {
        *runtime.view() = View::default();
        let _ = self.store().set_session_auto_connect(&runtime.id, false).await;
        self.write_status(runtime, SessionStatus::Disconnected, Some("qr_codes_exhausted")).await;
        self.note(runtime, "qr_codes_exhausted", Level::Warning, serde_json::json!({})).await;
        runtime.publish(StreamEvent::Error {
            session_id: runtime.id.to_string(),
            code: "qr_codes_exhausted".into(),
            message: "no QR code was scanned in time; connect again for new codes".into(),
        });
        AfterEvent::Handled
    }

    async fn on_pair_code(&self, runtime: &Runtime, code: String, valid_for: Duration) -> AfterEvent {
        let expires_at = now_ms() + valid_for.as_millis() as i64;
        {
            let mut view = runtime.view();
            view.qr = None;
            view.pair_code = Some(LiveCode { code: code.clone(), expires_at });
        }
        self.write_status(runtime, SessionStatus::PairingCode, None).await;
        let session_id = runtime.id.to_string();
        runtime.publish(StreamEvent::PairCode { session_id, code, expires_at: rfc3339(expires_at) });
        AfterEvent::Handled
    }

    async fn on_paired(&self, runtime: &Runtime, account: Account) -> AfterEvent {
        self.record_account(&runtime.id, &account).await;
        self.note(runtime, "paired", Level::Info, serde_json::json!({ "phone": account.phone.e164() })).await;
        let account = AccountView::from(&account);
        runtime.publish(StreamEvent::Paired { session_id: runtime.id.to_string(), account });
        AfterEvent::Handled
    }

    async fn on_connected(&self, runtime: &Runtime, account: Account) -> AfterEvent {
        *runtime.view() = View::default();
        self.record_account(&runtime.id, &account).await;
        self.write_status(runtime, SessionStatus::Connected, None).await;
        self.note(runtime, "connected", Level::Info, serde_json::json!({ "phone": account.phone.e164() }))
            .await;
        AfterEvent::Handled
    }

    async fn on_disconnected(&self, runtime: &Runtime, reason: String, reconnecting: bool) -> AfterEvent {
        *runtime.view() = View::default();
        if !reconnecting {
            // Ended for good (replaced, banned, outdated, a pairing code not entered): no node
            // brings it back by itself, or it would take the account back from whoever
            // replaced it, or run into the same refusal again. Connecting it again is the
            // user's call. Written before the status, so no node claims it in between.
            let _ = self.store().set_session_auto_connect(&runtime.id, false).await;
        }
        let status = if reconnecting { SessionStatus::Connecting } else { SessionStatus::Disconnected };
        self.write_status(runtime, status, Some(&reason)).await;
        let detail = serde_json::json!({ "reason": reason, "reconnecting": reconnecting });
        self.note(runtime, "disconnected", Level::Warning, detail).await;
        AfterEvent::Handled
    }

    async fn on_reconnecting(
        &self,
        runtime: &Runtime,
        attempt: u32,
        retry_in: Duration,
        reason: String,
    ) -> AfterEvent {
        *runtime.view() = View::default();
        let secs = retry_in.as_secs();
        let reason = if attempt == 0 {
            format!("reconnecting in {secs} s: {reason}")
        } else {
            format!("reconnecting: attempt {attempt} failed, next in {secs} s: {reason}")
        };
        self.write_status(runtime, SessionStatus::Connecting, Some(&reason)).await;
        let detail = serde_json::json!({ "attempt": attempt, "retry_in_ms": retry_in.as_millis() as u64, "reason": reason });
        self.log(&runtime.id, "reconnecting", detail).await;
        AfterEvent::Handled
    }

    async fn on_logged_out(&self, runtime: &Runtime, reason: String) -> AfterEvent {
        *runtime.view() = View::default();
        let _ = self.store().set_session_auto_connect(&runtime.id, false).await;
        let _ = self.store().set_session_account(&runtime.id, None).await;
        self.write_status(runtime, SessionStatus::LoggedOut, Some(&reason)).await;
        self.note(runtime, "logged_out", Level::Error, serde_json::json!({ "reason": reason })).await;
        AfterEvent::Handled
    }

    async fn record_account(&self, id: &SessionId, account: &Account) {
        let linked = LinkedAccount {
            phone: account.phone.e164().to_owned(),
            lid: account.lid.clone(),
            push_name: account.push_name.clone(),
        };
        if let Err(err) = self.store().set_session_account(id, Some(&linked)).await {
            tracing::error!(session = %id, error = %err, "cannot record the linked account");
        }
    }
}
