//! wagate's server: services, HTTP API, event streams.

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod qr;
pub mod services;
pub mod time;

pub use app::{App, AppState};
pub use config::{Config, LogFormat};

/// The cargo features this build was made with, as `wagate version` reports them.
pub const BUILD_FEATURES: &[(&str, bool)] = &[
    ("sandbox", cfg!(feature = "sandbox")),
    ("web", cfg!(feature = "web")),
    ("test-server", cfg!(feature = "test-server")),
];
