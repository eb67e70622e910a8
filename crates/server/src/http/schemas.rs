//! The API description of values that the services define. The services know nothing of the
//! API description, so the shapes they serialise are described here, field for field; the
//! OpenAPI tests compare real answers with these descriptions.

#![allow(dead_code)] // only read by the API description

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The WhatsApp account a session is linked to.
#[derive(Serialize, ToSchema)]
#[schema(as = AccountView)]
pub struct AccountViewSchema {
    /// E.164.
    pub phone: String,
    pub lid: Option<String>,
    pub push_name: Option<String>,
}

/// What a session's event stream (SSE or WebSocket) carries.
#[derive(Serialize, ToSchema)]
#[schema(as = StreamEvent)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum StreamEventSchema {
    Status {
        session_id: String,
        #[schema(example = "connected")]
        status: String,
        reason: Option<String>,
        account: Option<AccountViewSchema>,
    },
    Qr {
        session_id: String,
        qr: String,
        expires_at: String,
    },
    PairCode {
        session_id: String,
        code: String,
        expires_at: String,
    },
    Paired {
        session_id: String,
        account: AccountViewSchema,
    },
    Error {
        session_id: String,
        code: String,
        message: String,
    },
    MessageReceived {
        session_id: String,
        message_id: String,
        from: String,
        chat: String,
        timestamp: String,
    },
    MessageStatus {
        session_id: String,
        message_id: String,
        status: String,
        reason: Option<String>,
    },
    Deleted {
        session_id: String,
    },
}

/// A tenant's OTP settings.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = OtpSettings)]
pub struct OtpSettingsSchema {
    /// Put the code in the send response (seed 004's behaviour). INSECURE: anyone who can read
    /// your API responses or logs sees every code. Off unless you turn it on.
    pub return_code_in_response: bool,
    /// Pool used when a send names neither `session` nor `pool` (else: any connected session
    /// of yours).
    pub default_pool: Option<String>,
    /// Brand ("company name") shown in messages when a send gives none.
    pub brand: Option<String>,
    /// Locale when a send gives none (default `en`).
    pub default_locale: Option<String>,
    /// ISO 3166 region codes allowed (empty: all).
    pub allowed_countries: Vec<String>,
    /// ISO 3166 region codes refused.
    pub denied_countries: Vec<String>,
}
