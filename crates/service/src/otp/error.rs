//! What can go wrong with a one-time password, for the caller to render.

use std::time::Duration;

use wagate_core::OtpStatus;
use wagate_core::otp::CodeError;
use wagate_store::StoreError;

use super::settings::SettingsError;
use super::templates::TemplateError;
use crate::group_commit::WriteError;
use crate::sessions::SessionError;

#[derive(Debug, thiserror::Error)]
pub enum OtpError {
    #[error("{0}")]
    InvalidPhone(String),
    #[error("phone numbers of {0} are not allowed by your OTP settings")]
    CountryNotAllowed(String),
    #[error("length must be {min} to {max}", min = wagate_core::otp::MIN_LENGTH, max = wagate_core::otp::MAX_LENGTH)]
    InvalidLength,
    #[error("ttl must be 1 to {0} seconds")]
    InvalidTtl(u64),
    #[error("`{0}` is not a locale (expected e.g. en, id, pt-BR)")]
    InvalidLocale(String),
    #[error("brand must be 1 to 64 characters")]
    InvalidBrand,
    #[error("give `session` or `pool`, not both")]
    SessionAndPool,
    #[error("template names are 1 to 64 of a-z, 0-9, _ and -")]
    InvalidTemplateName,
    #[error("no template `{0}` for this locale")]
    UnknownTemplate(String),
    #[error("no such template")]
    TemplateNotFound,
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("custom_code needs the admin scope")]
    CustomCodeForbidden,
    #[error("custom_code: {0}")]
    InvalidCustomCode(String),
    #[error(transparent)]
    InvalidCode(CodeError),
    #[error("give the verification `id` or the `phone`")]
    MissingTarget,
    #[error("too many requests for this {0}; try again later")]
    RateLimited(&'static str, Duration),
    #[error("too many wrong codes for this phone; try again later")]
    PhoneLocked(Duration),
    #[error("verification not found")]
    NotFound,
    #[error("the verification is {0}")]
    NotPending(OtpStatus),
    #[error("wait before sending another code")]
    ResendCooldown(Duration),
    #[error("no more codes can be sent for this verification; start a new one")]
    ResendLimit,
    #[error("{0}")]
    NoSession(String),
    #[error("the session is not linked to a phone number yet")]
    SessionNotLinked,
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl From<WriteError> for OtpError {
    fn from(err: WriteError) -> Self {
        match err {
            WriteError::Stopped => OtpError::ShuttingDown,
            WriteError::Store(err) => OtpError::Store(err),
        }
    }
}
