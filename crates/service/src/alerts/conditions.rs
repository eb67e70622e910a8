//! What is wrong right now: each condition is a kind and a subject (a session, a webhook, the
//! database), read from the state of things rather than from events, so that a restart or a
//! missed event neither loses nor repeats an alert.

use wagate_core::SessionStatus;
use wagate_store::SessionRecord;

/// The reason a logout through the API records; it alerts nobody.
pub const LOGOUT_BY_REQUEST: &str = "logged out by request";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Dropped and not back within the grace period.
    SessionDown,
    /// The phone removed the device (not a logout through the API).
    LoggedOut,
    /// WhatsApp banned the account for a while.
    Banned,
    /// WhatsApp refuses messages to new contacts (error 463).
    Restricted,
    /// The oldest queued message waits longer than the threshold.
    QueueStalled,
    /// Webhook deliveries were given up (dead letters).
    WebhookDead,
    /// The database does not answer.
    Database,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SessionDown => "session_down",
            Kind::LoggedOut => "session_logged_out",
            Kind::Banned => "session_banned",
            Kind::Restricted => "session_restricted",
            Kind::QueueStalled => "queue_stalled",
            Kind::WebhookDead => "webhook_dead_letters",
            Kind::Database => "database_unreachable",
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: Kind,
    /// A session id, a webhook id, or `database`.
    pub subject: String,
    pub owner_id: Option<String>,
    pub session_id: Option<String>,
    /// One line for a person.
    pub text: String,
}

impl Condition {
    pub fn key(&self) -> (Kind, String) {
        (self.kind, self.subject.clone())
    }
}

/// The session's condition, if it has one. `down_since`: when it was first seen offline
/// while it should be online (the caller keeps it across checks).
pub fn of_session(
    record: &SessionRecord,
    restricted: bool,
    down_since: Option<i64>,
    grace_ms: i64,
    now: i64,
) -> Option<Condition> {
    let reason = record.status_reason.as_deref().unwrap_or("");
    let name = session_name(record);
    let (kind, text) = match record.status {
        SessionStatus::LoggedOut if reason != LOGOUT_BY_REQUEST => {
            (Kind::LoggedOut, format!("{name} was logged out by the phone ({reason}); link it again"))
        }
        SessionStatus::Disconnected | SessionStatus::Connecting if reason.starts_with("temporary_ban") => {
            (Kind::Banned, format!("{name} is banned by WhatsApp: {reason}"))
        }
        SessionStatus::Disconnected | SessionStatus::Connecting
            if record.auto_connect && down_since.is_some_and(|since| now - since >= grace_ms) =>
        {
            let minutes = (now - down_since.unwrap_or(now)) / 60_000;
            (
                Kind::SessionDown,
                format!("{name} has been offline for {minutes} min and is not back: {reason}"),
            )
        }
        SessionStatus::Connected if restricted => (
            Kind::Restricted,
            format!(
                "{name} may not write to new contacts for now (WhatsApp error 463); its pool sends through the others"
            ),
        ),
        _ => return None,
    };
    Some(Condition {
        kind,
        subject: record.id.to_string(),
        owner_id: Some(record.owner_id.clone()),
        session_id: Some(record.id.to_string()),
        text,
    })
}

/// Whether the session is offline while it should be online (the grace period runs).
pub fn is_down(record: &SessionRecord) -> bool {
    matches!(record.status, SessionStatus::Disconnected | SessionStatus::Connecting) && record.auto_connect
}

pub fn session_name(record: &SessionRecord) -> String {
    match &record.account {
        Some(account) => format!("session {} ({})", record.id, account.phone),
        None => format!("session {}", record.id),
    }
}

#[cfg(test)]
mod tests {
    use wagate_core::{EngineKind, SessionId};

    use super::*;

    fn session(status: SessionStatus, reason: Option<&str>, auto_connect: bool) -> SessionRecord {
        SessionRecord {
            id: SessionId::parse("sales").unwrap(),
            owner_id: "owner".into(),
            name: "Sales".into(),
            engine: EngineKind::Sandbox,
            status,
            status_reason: reason.map(str::to_owned),
            auto_connect,
            account: None,
            webhook_url: None,
            pool: None,
            pacing: None,
            created_at: 0,
            updated_at: 0,
            connected_at: None,
        }
    }

    #[test]
    fn a_dropped_session_is_reported_after_the_grace_period_only() {
        let dropped = session(SessionStatus::Connecting, Some("connection lost"), true);
        assert_eq!(of_session(&dropped, false, Some(1_000), 60_000, 30_000), None, "within the grace");
        let late = of_session(&dropped, false, Some(1_000), 60_000, 61_000).unwrap();
        assert_eq!(late.kind, Kind::SessionDown);
        assert!(late.text.contains("connection lost"), "{}", late.text);
        let deliberate = session(SessionStatus::Disconnected, Some("disconnected by request"), false);
        assert_eq!(of_session(&deliberate, false, Some(0), 60_000, 1_000_000), None, "asked to be offline");
        assert!(!is_down(&deliberate) && is_down(&dropped));
    }

    #[test]
    fn a_logout_alerts_unless_it_was_asked_for() {
        let by_phone = session(SessionStatus::LoggedOut, Some("the phone removed this device"), false);
        assert_eq!(of_session(&by_phone, false, None, 0, 0).unwrap().kind, Kind::LoggedOut);
        let by_request = session(SessionStatus::LoggedOut, Some(LOGOUT_BY_REQUEST), false);
        assert_eq!(of_session(&by_request, false, None, 0, 0), None);
    }

    #[test]
    fn bans_and_restrictions_are_their_own_conditions() {
        let banned = session(SessionStatus::Disconnected, Some("temporary_ban: for 60 s"), true);
        assert_eq!(of_session(&banned, false, Some(0), 0, 1).unwrap().kind, Kind::Banned);
        let connected = session(SessionStatus::Connected, None, true);
        assert_eq!(of_session(&connected, true, None, 0, 0).unwrap().kind, Kind::Restricted);
        assert_eq!(of_session(&connected, false, None, 0, 0), None);
    }
}
