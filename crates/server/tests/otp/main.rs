//! One-time passwords: the verification API end to end on the sandbox, its security rules and
//! every bad input the API must refuse.

#[path = "../common/mod.rs"]
mod common;
mod support;

mod bad_input;
mod inbound_and_webhooks;
mod push_flow;
mod queue_and_limits;
mod templates_and_settings;
