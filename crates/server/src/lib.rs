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
