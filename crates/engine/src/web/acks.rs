//! Correlates the server's acks with the messages we wrote.
//!
//! `send_message` returns as soon as the stanza is written; whether WhatsApp accepted it
//! arrives later as a `ServerAck` (a nack carries an error code, e.g. 463).

use std::collections::HashSet;
use std::sync::Mutex;

use crate::{EngineEvent, SendFailure};

#[derive(Default)]
pub(super) struct PendingAcks {
    waiting: Mutex<HashSet<String>>,
}

impl PendingAcks {
    /// Called before the stanza is written, so an ack can never arrive first.
    pub fn expect(&self, id: &str) {
        self.lock().insert(id.to_owned());
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The connection dropped: acks only come on the connection that carried the message,
    /// and wagate sends unacknowledged messages again (same id) after the reconnect.
    pub fn connection_lost(&self) {
        self.lock().clear();
    }

    /// The event for a server ack of one of our messages; `None` for acks of anything else.
    pub fn resolve(&self, id: &str, error: Option<&str>) -> Option<EngineEvent> {
        if !self.lock().remove(id) {
            return None;
        }
        Some(match error {
            None => EngineEvent::Sent { id: id.to_owned() },
            Some(code) => EngineEvent::SendFailed { id: id.to_owned(), failure: failure_for_nack(code) },
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a nack code means for the message.
pub(super) fn failure_for_nack(code: &str) -> SendFailure {
    match code {
        "463" => SendFailure::ReachOutRestricted,
        // Rate limited or the server is busy: the same message may go through later.
        "429" | "500" | "503" | "504" => {
            SendFailure::Transient { detail: format!("WhatsApp answered {code}") }
        }
        "404" | "406" | "421" => {
            SendFailure::Permanent { detail: format!("WhatsApp refused the message ({code})") }
        }
        other => SendFailure::Permanent { detail: format!("WhatsApp refused the message ({other})") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_become_sent_or_failed_once() {
        let acks = PendingAcks::default();
        acks.expect("A");
        acks.expect("B");
        assert_eq!(acks.resolve("A", None), Some(EngineEvent::Sent { id: "A".into() }));
        assert_eq!(acks.resolve("A", None), None, "a second ack for the same id is ignored");
        assert_eq!(
            acks.resolve("B", Some("463")),
            Some(EngineEvent::SendFailed { id: "B".into(), failure: SendFailure::ReachOutRestricted })
        );
        assert_eq!(acks.resolve("C", None), None, "acks of stanzas we did not send are not ours");
        acks.expect("D");
        acks.connection_lost();
        assert_eq!(acks.resolve("D", None), None, "nothing is waited for across connections");
    }

    #[test]
    fn nack_codes_map_to_clear_failures() {
        assert_eq!(failure_for_nack("463"), SendFailure::ReachOutRestricted);
        assert!(matches!(failure_for_nack("503"), SendFailure::Transient { .. }));
        assert!(
            matches!(failure_for_nack("479"), SendFailure::Permanent { detail } if detail.contains("479"))
        );
    }
}
