//! Who else hears about a session's messages besides webhooks and streams: status changes of
//! sent messages and received texts (the OTP service follows its codes this way). Sessions
//! know only this interface, not who implements it.

use wagate_core::{MessageStatus, SessionId};

pub trait MessageObserver: Send + Sync {
    /// A sent message moved to `status`; `restricted`: WhatsApp refused it with a reach-out
    /// restriction (463).
    fn message_status(&self, message_id: &str, status: MessageStatus, reason: Option<&str>, restricted: bool);

    /// Someone sent `text` to the session (`from`: E.164).
    fn inbound(&self, session_id: &SessionId, from: &str, text: &str);
}
