//! One-time passwords over WhatsApp: issue, send, verify, resend, cancel.
//!
//! A verification and the message carrying its code are written in one transaction before the
//! caller hears back; the code itself exists only in that message, sealed (see [`crate::seal`]), and
//! as an HMAC in the verification. Codes are never logged, never in webhooks, and returned to
//! the caller only when the tenant turned `return_code_in_response` on.
//!
//! [`OtpService`]'s methods are spread over this module's children, one concern each: issuing,
//! resending and canceling, verifying, routing to a session, the message and its link, `auto`
//! mode's wait, webhook events, lookups and tenant administration.

mod admin;
mod auto;
mod config;
mod error;
mod events;
mod issue;
mod limits;
mod link;
mod lookup;
mod message;
mod request;
mod resend;
mod routing;
mod settings;
pub mod templates;
mod verify;
mod worker;
mod writers;

use std::sync::Arc;

use wagate_store::Store;

pub use crate::feed::{FeedEvent, OtpFeed, WatchedOtp};
pub use config::OtpConfig;
pub use error::OtpError;
pub use limits::Caller;
pub use request::{
    Issued, Listing, PhoneStanding, SendRequest, TemplateCatalog, TemplateEntry, Tracked, Verdict,
    VerifyTarget,
};
pub use settings::{OtpSettings, SettingsError};

use self::auto::Waiters;
use self::limits::Limits;
use self::settings::SettingsCache;
use self::writers::{Approvals, NewVerifications};
use crate::round_robin::Turn;
use crate::seal::Sealer;
use crate::sessions::SessionManager;

/// Priority of one-time-password messages in a session's queue (ordinary messages: 0).
pub const OTP_PRIORITY: i64 = 1;

pub struct OtpService {
    store: Store,
    sessions: SessionManager,
    config: OtpConfig,
    pepper: [u8; 32],
    sealer: Arc<Sealer>,
    feed: Arc<OtpFeed>,
    limits: Limits,
    settings: SettingsCache,
    /// Which session sends next when several could.
    turn: Turn,
    /// `auto` sends waiting for WhatsApp's verdict on their push.
    waiters: Waiters,
    /// New verifications of several requests, written together.
    writer: NewVerifications,
    /// Approvals of several requests, written together.
    approvals: Approvals,
}

impl OtpService {
    pub fn new(
        store: Store,
        sessions: SessionManager,
        config: OtpConfig,
        pepper: [u8; 32],
        sealer: Arc<Sealer>,
        feed: Arc<OtpFeed>,
    ) -> Self {
        OtpService {
            limits: Limits::new(&store, &config),
            settings: SettingsCache::new(store.clone()),
            writer: writers::verification_writer(store.clone()),
            approvals: writers::approval_writer(store.clone()),
            store,
            sessions,
            config,
            pepper,
            sealer,
            feed,
            turn: Turn::default(),
            waiters: Waiters::default(),
        }
    }

    pub fn config(&self) -> &OtpConfig {
        &self.config
    }

    /// Drops this node's copies of every tenant's settings and templates (another node
    /// changed some).
    pub fn forget_cached_settings(&self) {
        self.settings.forget_all();
    }
}
