//! wagate's server: the HTTP API, event streams, API description and dashboard over the
//! services of `wagate-service`.

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod memory;
pub mod qr;
mod serve;

pub use app::{App, AppState};
pub use config::{Config, LogFormat};

/// The cargo features this build was made with, as `wagate version` reports them.
pub const BUILD_FEATURES: &[(&str, bool)] = &[
    ("sandbox", cfg!(feature = "sandbox")),
    ("web", cfg!(feature = "web")),
    ("test-server", cfg!(feature = "test-server")),
];
