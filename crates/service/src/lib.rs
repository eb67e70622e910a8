//! wagate's behaviour: what happens to sessions, messages, one-time passwords and webhooks.
//!
//! No HTTP here: the server parses requests, calls one method of a service and renders the
//! answer. Services speak in domain types (`wagate-core`), keep their state in the store and
//! reach WhatsApp through the engine port.

pub mod accounts;
pub mod activity;
pub mod alerts;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod cluster;
pub mod engines;
pub mod feed;
pub mod group_commit;
pub mod media;
pub mod messages;
pub mod metrics;
pub mod numbers;
pub mod otp;
pub mod outbox;
pub mod phones;
pub mod retention;
pub mod round_robin;
#[cfg(feature = "sandbox")]
pub mod sandbox_ledger;
pub mod seal;
pub mod sessions;
pub mod shared_caches;
#[cfg(test)]
mod test_store;
pub mod time;
pub mod url_guard;
pub mod webhooks;
