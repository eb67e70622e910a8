//! Configuration: defaults, then a TOML file, then environment variables (`WAGATE_*`, `PORT`);
//! command-line flags are applied last by the binary.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use wagate_core::Pacing;

pub use wagate_service::accounts::{AccountsConfig, LoginLimits};
pub use wagate_service::alerts::AlertsConfig;
pub use wagate_service::auth::ApiLimits;
pub use wagate_service::cluster::ClusterConfig;
pub use wagate_service::media::MediaConfig;
pub use wagate_service::otp::OtpConfig;
pub use wagate_service::outbox::DeliveryConfig;
pub use wagate_service::retention::RetentionConfig;
pub use wagate_service::webhooks::WebhookConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{name}: `{value}` is not valid: {expected}")]
    Env { name: &'static str, value: String, expected: &'static str },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on (0: any free port).
    pub port: u16,
    /// The SQLite database and every session's files live here.
    pub data_dir: PathBuf,
    /// `sqlite://…` (default: `<data_dir>/wagate.db`), `postgres://…` or `mysql://…`.
    pub database_url: Option<String>,
    /// This node's name among the nodes sharing the database (default: the host name and a
    /// random suffix).
    pub node_id: Option<String>,
    /// Heartbeats and leases of the nodes sharing the database.
    pub cluster: ClusterConfig,
    /// Password of the `admin` user created on first start (random and logged once if unset).
    pub admin_password: Option<String>,
    pub log_format: LogFormat,
    /// Whether the sandbox engine (simulated WhatsApp network) is enabled.
    pub sandbox: bool,
    /// The engine of sessions created without one (default: `web`, the real network).
    pub default_engine: Option<wagate_core::EngineKind>,
    /// Region for phone numbers written without country code (ISO 3166 alpha-2, e.g. `ID`).
    pub default_region: Option<String>,
    /// Master secret for tokens and key hashes; generated and kept in the database if unset.
    pub secret: Option<String>,
    /// Lifetime of login tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of stream tokens (`?token=` on QR pages and event streams), in seconds.
    pub stream_token_ttl_secs: u64,
    /// Header carrying the client IP when behind a trusted proxy (e.g. `X-Forwarded-For`).
    pub trusted_ip_header: Option<String>,
    /// How long shutdown waits for requests and sessions to finish, in seconds.
    pub shutdown_timeout_secs: u64,
    /// Dashboard sign-ins end after this many seconds without a request.
    pub dashboard_idle_secs: u64,
    pub login_limits: LoginLimits,
    /// Requests per minute per API key and per signed-in user (0: no limit).
    pub api_limits: ApiLimits,
    /// Serve `GET /metrics` without credentials (for a scraper on a private network).
    pub metrics_public: bool,
    /// Connections open at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// A client that has not sent its request headers within this time is disconnected.
    pub header_read_timeout_secs: u64,
    /// A request whose body has not arrived within this time (from its headers) is answered
    /// 408 and its connection closed.
    pub body_read_timeout_secs: u64,
    /// How long each kind of record is kept.
    pub retention: RetentionConfig,
    /// Where alerts go (Telegram, a signed webhook, e-mail) and when.
    pub alerts: AlertsConfig,
    pub sandbox_timings: SandboxTimings,
    pub delivery: DeliveryConfig,
    /// Default pacing of `web` sessions (sandbox sessions default to none).
    pub pacing: Pacing,
    /// Pacing of one-time-password messages, which also jump the queue.
    pub otp_pacing: Pacing,
    pub webhooks: WebhookConfig,
    /// How long "is this number on WhatsApp" answers are reused, in seconds.
    pub numbers_cache_ttl_secs: u64,
    pub media: MediaConfig,
    pub otp: OtpConfig,
    pub web: WebSettings,
}

/// How `web` sessions reach WhatsApp.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSettings {
    /// WhatsApp Web version to announce (`2.3000.1029384756`); unset: fetched from
    /// web.whatsapp.com before each connection.
    pub version: Option<String>,
    /// Test builds only: a test server's WebSocket URL to use instead of WhatsApp's.
    pub server_url: Option<String>,
}

/// Timings of the sandbox network (defaults mimic WhatsApp).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxTimings {
    pub qr_first_timeout_ms: u64,
    pub qr_timeout_ms: u64,
    pub qr_codes: u32,
    pub pair_code_timeout_ms: u64,
    pub delivery_delay_ms: u64,
    pub read_delay_ms: u64,
    pub slow_delivery_ms: u64,
    /// How many deliveries the sandbox remembers (its inboxes show these).
    pub inbox_capacity: usize,
}

impl Default for SandboxTimings {
    fn default() -> Self {
        SandboxTimings {
            qr_first_timeout_ms: 60_000,
            qr_timeout_ms: 20_000,
            qr_codes: 6,
            pair_code_timeout_ms: 180_000,
            delivery_delay_ms: 300,
            read_delay_ms: 2_000,
            slow_delivery_ms: 30_000,
            inbox_capacity: 10_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 3000,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            node_id: None,
            cluster: ClusterConfig::default(),
            admin_password: None,
            log_format: LogFormat::Text,
            sandbox: true,
            default_engine: None,
            default_region: None,
            secret: None,
            token_ttl_secs: 12 * 3600,
            stream_token_ttl_secs: 300,
            trusted_ip_header: None,
            shutdown_timeout_secs: 10,
            dashboard_idle_secs: 1_800,
            login_limits: LoginLimits::default(),
            api_limits: ApiLimits::default(),
            metrics_public: false,
            max_connections: 10_000,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 120,
            retention: RetentionConfig::default(),
            alerts: AlertsConfig::default(),
            sandbox_timings: SandboxTimings::default(),
            delivery: DeliveryConfig::default(),
            // Seed 004's protection: a random 5–20 s between two messages, typing shown.
            pacing: Pacing {
                min_delay_ms: 5_000,
                max_delay_ms: 20_000,
                typing: true,
                hourly_cap: None,
                daily_cap: None,
            },
            otp_pacing: Pacing {
                min_delay_ms: 0,
                max_delay_ms: 1_000,
                typing: false,
                hourly_cap: None,
                daily_cap: None,
            },
            webhooks: WebhookConfig::default(),
            numbers_cache_ttl_secs: 3_600,
            media: MediaConfig::default(),
            otp: OtpConfig::default(),
            web: WebSettings::default(),
        }
    }
}

impl Config {
    /// Defaults ← `file` (if any) ← environment.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Self::from_file(path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|err| ConfigError::File { path: path.into(), message: err.to_string() })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) -> Result<(), ConfigError> {
        fn parse<T: FromStr>(
            env: &HashMap<String, String>,
            name: &'static str,
            expected: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            match env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(value) => value.parse().map(Some).map_err(|_| ConfigError::Env {
                    name,
                    value: value.to_owned(),
                    expected,
                }),
            }
        }
        const PORT: &str = "a port number (0-65535)";
        if let Some(port) = parse(env, "PORT", PORT)? {
            self.port = port;
        }
        if let Some(port) = parse(env, "WAGATE_PORT", PORT)? {
            self.port = port;
        }
        if let Some(host) = parse(env, "WAGATE_HOST", "an IP address such as 0.0.0.0 or 127.0.0.1")? {
            self.host = host;
        }
        if let Some(dir) = parse::<PathBuf>(env, "WAGATE_DATA_DIR", "a directory path")? {
            self.data_dir = dir;
        }
        if let Some(url) = parse(env, "WAGATE_DATABASE_URL", "a database URL")? {
            self.database_url = Some(url);
        }
        if let Some(node) = parse(env, "WAGATE_NODE_ID", "a node name")? {
            self.node_id = Some(node);
        }
        if let Some(url) = parse(env, "WAGATE_ADVERTISE_URL", "a URL such as http://10.0.0.5:8080")? {
            self.cluster.advertise_url = Some(url);
        }
        if let Some(password) = parse(env, "WAGATE_ADMIN_PASSWORD", "a password")? {
            self.admin_password = Some(password);
        }
        if let Some(format) = parse(env, "WAGATE_LOG_FORMAT", "`text` or `json`")? {
            self.log_format = format;
        }
        if let Some(public) = parse_bool(env, "WAGATE_METRICS_PUBLIC")? {
            self.metrics_public = public;
        }
        if let Some(sandbox) = parse_bool(env, "WAGATE_SANDBOX")? {
            self.sandbox = sandbox;
        }
        if let Some(engine) = parse(env, "WAGATE_DEFAULT_ENGINE", "`web` or `sandbox`")? {
            self.default_engine = Some(engine);
        }
        if let Some(region) = parse(env, "WAGATE_DEFAULT_REGION", "a region code such as ID")? {
            self.default_region = Some(region);
        }
        if let Some(secret) = parse(env, "WAGATE_SECRET", "a secret")? {
            self.secret = Some(secret);
        }
        if let Some(ttl) = parse(env, "WAGATE_TOKEN_TTL_SECS", "a number of seconds")? {
            self.token_ttl_secs = ttl;
        }
        if let Some(max) = parse(env, "WAGATE_MEDIA_MAX_BYTES", "a number of bytes")? {
            self.media.max_bytes = max;
        }
        if let Some(allow) = parse_bool(env, "WAGATE_ALLOW_PRIVATE_URLS")? {
            self.webhooks.allow_private_urls = allow;
        }
        if let Some(header) = parse(env, "WAGATE_TRUSTED_IP_HEADER", "a header name")? {
            self.trusted_ip_header = Some(header);
        }
        if let Some(version) = parse(env, "WAGATE_WEB_VERSION", "a version such as 2.3000.1029384756")? {
            self.web.version = Some(version);
        }
        if let Some(url) = parse(env, "WAGATE_WEB_SERVER_URL", "a ws:// URL")? {
            self.web.server_url = Some(url);
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(region) = &self.default_region {
            wagate_core::Phone::parse("+14155552671", Some(region)).map_err(|_| {
                ConfigError::Invalid(format!("default_region `{region}` is not a region code"))
            })?;
        }
        if let Some(secret) = &self.secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid("secret must be at least 32 characters".into()));
        }
        if let Some(node) = &self.node_id
            && (node.is_empty()
                || node.len() > 100
                || node.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            return Err(ConfigError::Invalid(format!("node_id `{node}`: 1 to 100 characters, no spaces")));
        }
        if let Some(url) = &self.cluster.advertise_url {
            let parsed = reqwest::Url::parse(url).ok().filter(|url| {
                matches!(url.scheme(), "http" | "https") && url.has_host() && url.query().is_none()
            });
            if parsed.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "cluster.advertise_url `{url}`: an http:// or https:// base URL such as http://10.0.0.5:8080"
                )));
            }
        }
        if self.cluster.lease_ms < 2 * self.cluster.heartbeat_ms.max(1) {
            return Err(ConfigError::Invalid(
                "cluster.lease_ms must be at least twice cluster.heartbeat_ms".into(),
            ));
        }
        if let Some(password) = &self.admin_password
            && password.len() < 8
        {
            return Err(ConfigError::Invalid("admin password must be at least 8 characters".into()));
        }
        if self.token_ttl_secs == 0 || self.stream_token_ttl_secs == 0 || self.dashboard_idle_secs == 0 {
            return Err(ConfigError::Invalid("token lifetimes must be positive".into()));
        }
        if let Some(header) = &self.trusted_ip_header
            && axum::http::HeaderName::from_str(header).is_err()
        {
            return Err(ConfigError::Invalid(format!("trusted_ip_header `{header}` is not a header name")));
        }
        self.pacing.validate().map_err(|e| ConfigError::Invalid(format!("pacing: {e}")))?;
        self.otp_pacing.validate().map_err(|e| ConfigError::Invalid(format!("otp_pacing: {e}")))?;
        if self.delivery.max_attempts == 0 || self.delivery.lease_ms <= self.delivery.ack_timeout_ms {
            return Err(ConfigError::Invalid(
                "delivery: max_attempts must be positive and lease_ms longer than ack_timeout_ms".into(),
            ));
        }
        self.otp.validate().map_err(|e| ConfigError::Invalid(format!("otp: {e}")))?;
        if let Some(header) = &self.otp.client_ip_header
            && axum::http::HeaderName::from_str(header).is_err()
        {
            return Err(ConfigError::Invalid(format!(
                "otp.client_ip_header `{header}` is not a header name"
            )));
        }
        self.web_version()?;
        if self.web.server_url.is_some() && !cfg!(feature = "test-server") {
            return Err(ConfigError::Invalid(
                "web.server_url only exists in test builds; release builds always talk to WhatsApp".into(),
            ));
        }
        let t = &self.sandbox_timings;
        if t.qr_codes == 0 || t.qr_first_timeout_ms == 0 || t.qr_timeout_ms == 0 {
            return Err(ConfigError::Invalid("sandbox QR timings and count must be positive".into()));
        }
        Ok(())
    }

    /// What the accounts service needs of the configuration.
    pub fn accounts(&self) -> AccountsConfig {
        AccountsConfig {
            token_ttl_secs: self.token_ttl_secs,
            stream_token_ttl_secs: self.stream_token_ttl_secs,
            login_limits: self.login_limits.clone(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| wagate_store::Store::sqlite_url(&self.data_dir))
    }

    /// The pinned WhatsApp Web version, if any.
    pub fn web_version(&self) -> Result<Option<(u32, u32, u32)>, ConfigError> {
        let Some(raw) = &self.web.version else { return Ok(None) };
        let mut parts = raw.trim().split('.').map(str::parse::<u32>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => Ok(Some((major, minor, patch))),
            _ => Err(ConfigError::Invalid(format!(
                "web.version `{raw}` is not a version such as 2.3000.1029384756"
            ))),
        }
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

fn parse_bool(env: &HashMap<String, String>, name: &'static str) -> Result<Option<bool>, ConfigError> {
    match env.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(Some(true)),
        Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(Some(false)),
        Some(v) => Err(ConfigError::Env { name, value: v, expected: "true or false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults() {
        let config = Config::load(None, &HashMap::new()).unwrap();
        assert_eq!(config.port, 3000);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.sandbox);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.database_url(), "sqlite://./data/wagate.db");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "port = 4000\nsandbox = false\n[login_limits]\nper_ip = 3\n").unwrap();
        let config = Config::load(Some(&file), &env(&[])).unwrap();
        assert_eq!((config.port, config.sandbox, config.login_limits.per_ip), (4000, false, 3));
        let config = Config::load(
            Some(&file),
            &env(&[("PORT", "5000"), ("WAGATE_SANDBOX", "yes"), ("WAGATE_LOG_FORMAT", "json")]),
        )
        .unwrap();
        assert_eq!((config.port, config.sandbox, config.log_format), (5000, true, LogFormat::Json));
    }

    #[test]
    fn web_engine_settings() {
        let config = Config::load(
            None,
            &env(&[("WAGATE_WEB_VERSION", "2.3000.1029384756"), ("WAGATE_DEFAULT_ENGINE", "sandbox")]),
        )
        .unwrap();
        assert_eq!(config.web_version().unwrap(), Some((2, 3000, 1_029_384_756)));
        assert_eq!(config.default_engine, Some(wagate_core::EngineKind::Sandbox));
        let err = Config::load(None, &env(&[("WAGATE_WEB_VERSION", "2.3000")])).unwrap_err().to_string();
        assert!(err.contains("web.version"), "{err}");
        let err = Config::load(None, &env(&[("WAGATE_DEFAULT_ENGINE", "pigeon")])).unwrap_err().to_string();
        assert!(err.contains("WAGATE_DEFAULT_ENGINE"), "{err}");

        let test_server = Config::load(None, &env(&[("WAGATE_WEB_SERVER_URL", "ws://127.0.0.1:1/ws/chat")]));
        if cfg!(feature = "test-server") {
            assert!(test_server.is_ok());
        } else {
            let err = test_server.unwrap_err().to_string();
            assert!(err.contains("only exists in test builds"), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::load(None, &env(&[("PORT", "eighty")])).unwrap_err().to_string();
        assert!(err.contains("PORT") && err.contains("eighty"), "{err}");
        let err = Config::load(None, &env(&[("WAGATE_LOG_FORMAT", "xml")])).unwrap_err().to_string();
        assert!(err.contains("WAGATE_LOG_FORMAT"), "{err}");
        let err = Config::load(None, &env(&[("WAGATE_SANDBOX", "maybe")])).unwrap_err().to_string();
        assert!(err.contains("true or false"), "{err}");
        let err = Config::load(None, &env(&[("WAGATE_ADMIN_PASSWORD", "short")])).unwrap_err().to_string();
        assert!(err.contains("at least 8"), "{err}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wagate.toml");
        std::fs::write(&file, "prot = 4000\n").unwrap();
        let err = Config::load(Some(&file), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }
}
