//! Where alerts go: a Telegram chat, a signed webhook, e-mail.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{AlertWebhookConfig, AlertsConfig, SmtpConfig, SmtpSecurity, TelegramConfig};
use crate::time::now_ms;
use crate::webhooks::Webhooks;

/// One notice: an alert that opened or recovered.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `alert.opened` or `alert.recovered`.
    pub event: &'static str,
    pub condition: &'static str,
    pub subject: String,
    pub session_id: Option<String>,
    pub text: String,
}

impl Notice {
    fn headline(&self) -> String {
        let mark = if self.event == "alert.opened" { "ALERT" } else { "RECOVERED" };
        format!("[wagate {mark}] {}", self.text)
    }
}

pub enum Channel {
    Telegram(TelegramConfig),
    Webhook(AlertWebhookConfig),
    Smtp(Box<SmtpChannel>),
}

pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

impl Channel {
    /// The configured channels; a channel that cannot be set up (an invalid address) is an
    /// error at start-up rather than an alert lost later.
    pub fn all(config: &AlertsConfig) -> Result<Vec<Channel>, String> {
        let mut channels = Vec::new();
        if let Some(telegram) = &config.telegram {
            channels.push(Channel::Telegram(telegram.clone()));
        }
        if let Some(webhook) = &config.webhook {
            reqwest::Url::parse(&webhook.url).map_err(|e| format!("[alerts.webhook] url: {e}"))?;
            channels.push(Channel::Webhook(webhook.clone()));
        }
        if let Some(smtp) = &config.smtp {
            channels.push(Channel::Smtp(Box::new(SmtpChannel::new(smtp)?)));
        }
        Ok(channels)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Channel::Telegram(_) => "telegram",
            Channel::Webhook(_) => "webhook",
            Channel::Smtp(_) => "smtp",
        }
    }

    pub async fn send(&self, client: &reqwest::Client, notice: &Notice) -> Result<(), String> {
        match self {
            Channel::Telegram(telegram) => send_telegram(client, telegram, notice).await,
            Channel::Webhook(webhook) => send_webhook(client, webhook, notice).await,
            Channel::Smtp(smtp) => smtp.send(notice).await,
        }
    }
}

async fn send_telegram(
    client: &reqwest::Client,
    config: &TelegramConfig,
    notice: &Notice,
) -> Result<(), String> {
    let url = format!("{}/bot{}/sendMessage", config.api_base.trim_end_matches('/'), config.bot_token);
    let body = serde_json::json!({
        "chat_id": config.chat_id,
        "text": notice.headline(),
        "disable_web_page_preview": true,
    });
    let response = client
        .post(url)
        .json(&body)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if status.is_success() && answer["ok"] == true {
        Ok(())
    } else {
        Err(format!("Telegram answered HTTP {status}: {}", answer["description"].as_str().unwrap_or("")))
    }
}

async fn send_webhook(
    client: &reqwest::Client,
    config: &AlertWebhookConfig,
    notice: &Notice,
) -> Result<(), String> {
    let id = format!("alert_{}", wagate_core::new_id());
    let timestamp = now_ms() / 1000;
    let body = serde_json::json!({
        "type": notice.event,
        "timestamp": crate::time::rfc3339(now_ms()),
        "data": {
            "condition": notice.condition,
            "subject": notice.subject,
            "session_id": notice.session_id,
            "text": notice.text,
        },
    })
    .to_string();
    let signature = Webhooks::sign(&config.secret, &id, timestamp, &body);
    let response = client
        .post(&config.url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status())) }
}

impl SmtpChannel {
    fn new(config: &SmtpConfig) -> Result<Self, String> {
        let mailbox =
            |address: &str| address.parse::<Mailbox>().map_err(|e| format!("[alerts.smtp] `{address}`: {e}"));
        let from = mailbox(&config.from)?;
        let to = config.to.iter().map(|a| mailbox(a)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err("[alerts.smtp] to: at least one address".into());
        }
        let builder = match config.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)),
        }
        .map_err(|e| format!("[alerts.smtp] host: {e}"))?;
        let default_port = match config.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        };
        let mut builder = builder.port(config.port.unwrap_or(default_port)).timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpChannel { transport: builder.build(), from, to })
    }

    async fn send(&self, notice: &Notice) -> Result<(), String> {
        let mut message = Message::builder().from(self.from.clone()).subject(notice.headline());
        for to in &self.to {
            message = message.to(to.clone());
        }
        let email = message.body(notice.text.clone()).map_err(|e| e.to_string())?;
        self.transport.send(email).await.map(|_| ()).map_err(|e| e.to_string())
    }
}
