//! Business logic. No HTTP types in here: handlers parse and authorize, services decide.

pub mod accounts;
pub mod delivery;
pub mod engines;
pub mod group_commit;
pub mod media;
pub mod numbers;
pub mod otp;
pub mod sessions;
pub mod webhooks;
