//! Helpers shared by wagate's test suites (in-process and real-binary alike): the database a
//! test runs on (and a proxy that cuts it off), JSON calls to the HTTP API, reading a response, signing in, and a Server-Sent
//! Events reader. Test-only: no non-dev target depends on this crate.

pub mod database;
pub mod http;
pub mod proxy;
pub mod sse;

pub use database::{DatabaseKind, TestDatabase};
pub use http::{call, login, read, read_lenient};
pub use sse::Sse;
