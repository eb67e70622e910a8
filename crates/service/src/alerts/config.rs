use serde::Deserialize;

/// `[alerts]`: where alerts go, and when a condition is worth one. Nothing is sent while no
/// channel is configured.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A session that dropped and is not back within this time is reported.
    pub disconnect_grace_secs: u64,
    /// A session whose oldest queued message is older than this is reported.
    pub queue_age_secs: u64,
    /// How often conditions are checked, in milliseconds.
    pub check_interval_ms: u64,
    pub telegram: Option<TelegramConfig>,
    pub webhook: Option<AlertWebhookConfig>,
    pub smtp: Option<SmtpConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            disconnect_grace_secs: 120,
            queue_age_secs: 600,
            check_interval_ms: 15_000,
            telegram: None,
            webhook: None,
            smtp: None,
        }
    }
}

impl AlertsConfig {
    pub fn any_channel(&self) -> bool {
        self.telegram.is_some() || self.webhook.is_some() || self.smtp.is_some()
    }
}

/// A Telegram bot that writes to a chat (`sendMessage` of the Bot API).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub bot_token: String,
    pub chat_id: String,
    /// The Bot API's address (another server speaking the same API works too).
    #[serde(default = "telegram_api")]
    pub api_base: String,
}

fn telegram_api() -> String {
    "https://api.telegram.org".into()
}

/// A URL that receives each alert as JSON, signed like wagate's webhooks (Standard Webhooks:
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertWebhookConfig {
    pub url: String,
    pub secret: String,
}

/// E-mail over SMTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 (`starttls`), 465 (`tls`), 25 (`none`).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none` (a relay on a trusted network only).
    #[serde(default)]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}
