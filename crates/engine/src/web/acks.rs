//! The server's acks of the messages we wrote.
//!
//! `send_message` returns as soon as the stanza is written; whether WhatsApp accepted it
//! arrives later as a `ServerAck` (a nack carries an error code, e.g. 463), which resolves the
//! message's [`PendingAck`](crate::PendingAck) in the session's [`PendingAcks`].

use crate::{PendingAcks, SendFailure};

/// Resolves the message a server ack is about; false for acks of anything else.
pub(super) fn on_server_ack(acks: &PendingAcks, id: &str, error: Option<&str>) -> bool {
    acks.resolve(id, error.map_or(Ok(()), |code| Err(failure_for_nack(code))))
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

    #[tokio::test]
    async fn acks_become_sent_or_failed_once() {
        let acks = PendingAcks::default();
        let (a, b) = (acks.expect("A"), acks.expect("B"));
        assert!(on_server_ack(&acks, "A", None));
        assert!(!on_server_ack(&acks, "A", None), "a second ack for the same id is ignored");
        assert!(on_server_ack(&acks, "B", Some("463")));
        assert!(!on_server_ack(&acks, "C", None), "acks of stanzas we did not send are not ours");
        assert_eq!(a.await, Ok(Ok(())));
        assert_eq!(b.await, Ok(Err(SendFailure::ReachOutRestricted)));
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
