//! Alerts: a loopback Telegram Bot API, webhook receiver and SMTP server receive one notice
//! when a condition starts and one when it ends; what the operator asked for alerts nobody.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use common::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use wagate_service::alerts::{AlertWebhookConfig, SmtpConfig, SmtpSecurity, TelegramConfig};
use wagate_service::webhooks::Webhooks;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Default)]
struct Received {
    telegram: Arc<Mutex<Vec<Value>>>,
    webhook: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    mail: Arc<Mutex<Vec<String>>>,
}

impl Received {
    fn texts(&self) -> Vec<String> {
        self.telegram.lock().unwrap().iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect()
    }

    async fn until(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        for _ in 0..500 {
            let texts = self.texts();
            if done(&texts) {
                return texts;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: {:?}", self.texts());
    }
}

/// The Bot API's `sendMessage` and a webhook receiver, on one loopback server.
async fn http_fakes(received: Received) -> String {
    async fn telegram(State(received): State<Received>, body: String) -> axum::Json<Value> {
        received.telegram.lock().unwrap().push(serde_json::from_str(&body).unwrap());
        axum::Json(json!({ "ok": true, "result": {} }))
    }
    async fn webhook(State(received): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
        received.webhook.lock().unwrap().push((headers, body));
        StatusCode::NO_CONTENT
    }
    let app = Router::new()
        .route("/tg/{bot}/sendMessage", post(telegram))
        .route("/hook", post(webhook))
        .with_state(received);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Just enough SMTP to take mail: each message's data is kept.
async fn smtp_fake(received: Received) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let mail = received.mail.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(body) = data.as_mut() {
                        if line == "." {
                            mail.lock().unwrap().push(data.take().unwrap());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            body.push_str(&line);
                            body.push('\n');
                        }
                        continue;
                    }
                    let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 fake\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn each_condition_alerts_once_and_recovers_once_and_requests_alert_nobody() {
    let received = Received::default();
    let base = http_fakes(received.clone()).await;
    let smtp_port = smtp_fake(received.clone()).await;
    let app = TestApp::spawn_with(|c| {
        c.alerts.check_interval_ms = 50;
        c.alerts.telegram = Some(TelegramConfig {
            bot_token: "123:abc".into(),
            chat_id: "-100200".into(),
            api_base: format!("{base}/tg"),
        });
        c.alerts.webhook = Some(AlertWebhookConfig { url: format!("{base}/hook"), secret: SECRET.into() });
        c.alerts.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(smtp_port),
            security: SmtpSecurity::None,
            username: None,
            password: None,
            from: "wagate <alerts@example.com>".into(),
            to: vec!["ops@example.com".into()],
        });
        c.delivery.restriction_cooldown_ms = 1_500;
    })
    .await;
    let admin = app.admin().await;
    app.linked(&admin, "one", "+6281200000091").await;
    app.linked(&admin, "two", "+6281200000092").await;

    // The phone removes the device: one alert on every channel.
    let (status, _) = app.post("/api/v1/sandbox/sessions/one/unlink", &admin, Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let texts = received.until("an alert for the unlinked session", |t| !t.is_empty()).await;
    assert!(texts[0].starts_with("[wagate ALERT] session one was logged out by the phone"), "{texts:?}");
    for _ in 0..200 {
        if received.mail.lock().unwrap().len() == 1 && received.webhook.lock().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mail = received.mail.lock().unwrap().clone();
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].contains("To: ops@example.com") && mail[0].contains("Subject: [wagate ALERT] session one"),
        "{}",
        mail[0]
    );
    let (headers, body) = received.webhook.lock().unwrap()[0].clone();
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap();
    assert_eq!(
        header("webhook-signature"),
        Webhooks::sign(SECRET, &header("webhook-id"), timestamp, &body),
        "signed like webhooks"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (body["type"].as_str(), body["data"]["condition"].as_str()),
        (Some("alert.opened"), Some("session_logged_out"))
    );
    assert_eq!(body["data"]["session_id"], "one");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.texts().len(), 1, "one alert per condition, not one per check");

    // Linked again: one recovery notice.
    let mut events = app.events("one", &admin).await;
    app.post("/api/v1/sessions/one/connect", &admin, Value::Null).await;
    events.until("qr").await;
    app.post("/api/v1/sandbox/sessions/one/scan", &admin, json!({ "phone": "+6281200000091" })).await;
    events.until_status("connected").await;
    let texts = received.until("the recovery", |t| t.len() == 2).await;
    assert!(texts[1].starts_with("[wagate RECOVERED] resolved: session one"), "{texts:?}");

    // A ban of one second: an alert, then the session is back by itself and that ends it.
    let (status, _) = app.post("/api/v1/sandbox/sessions/one/ban", &admin, json!({ "seconds": 1 })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let texts = received.until("the ban and its end", |t| t.len() == 4).await;
    assert!(texts[2].contains("is banned by WhatsApp: temporary_ban"), "{texts:?}");
    assert!(texts[3].starts_with("[wagate RECOVERED]") && texts[3].contains("banned"), "{texts:?}");
    let (status, problem) =
        app.post("/api/v1/sandbox/sessions/one/ban", &admin, json!({ "seconds": 0 })).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_seconds"))
    );

    // WhatsApp refuses a new contact (463): restricted until the cooldown ends.
    app.session_status("one", &admin).await;
    let (status, _) = app
        .post("/api/v1/sessions/one/messages", &admin, json!({ "to": "+6281234560463", "text": "hello" }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let texts = received.until("the restriction and its end", |t| t.len() == 6).await;
    assert!(texts[4].contains("may not write to new contacts"), "{texts:?}");
    assert!(texts[5].starts_with("[wagate RECOVERED]"), "{texts:?}");

    // What the operator asks for alerts nobody.
    let (status, _) = app.post("/api/v1/sessions/two/logout", &admin, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.post("/api/v1/sessions/one/disconnect", &admin, Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received.texts().len(), 6, "{:?}", received.texts());
    assert_eq!(received.mail.lock().unwrap().len(), 6);

    // The activity log keeps them too.
    let (_, log) = app.get("/api/v1/analytics/logs/errors?kind=alert.opened", &admin).await;
    let conditions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["condition"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["session_restricted", "session_banned", "session_logged_out"], "{log}");
    let _ = Method::GET;
}

#[tokio::test]
async fn a_stalled_queue_and_dead_webhook_deliveries_alert_until_they_clear() {
    let received = Received::default();
    let base = http_fakes(received.clone()).await;
    let app = TestApp::spawn_with(|c| {
        c.alerts.check_interval_ms = 50;
        c.alerts.queue_age_secs = 1;
        c.alerts.telegram = Some(TelegramConfig {
            bot_token: "1:x".into(),
            chat_id: "7".into(),
            api_base: format!("{base}/tg"),
        });
        c.webhooks.retry_schedule_ms = vec![];
        c.webhooks.allow_private_urls = true;
    })
    .await;
    let admin = app.admin().await;
    app.linked(&admin, "busy", "+6281200000093").await;

    // Banned for 3 s: what is sent meanwhile waits in the queue.
    app.post("/api/v1/sandbox/sessions/busy/ban", &admin, json!({ "seconds": 3 })).await;
    app.post("/api/v1/sessions/busy/messages", &admin, json!({ "to": "+6281234580093", "text": "waits" }))
        .await;
    let texts = received
        .until("the stalled queue", |t| t.iter().any(|t| t.contains("a queued message has waited")))
        .await;
    assert!(texts.iter().any(|t| t.contains("banned")), "{texts:?}");
    let texts = received
        .until("the queue moving again", |t| {
            t.iter().filter(|t| t.starts_with("[wagate RECOVERED]")).count() == 2
        })
        .await;
    assert_eq!(texts.len(), 4, "two alerts, two recoveries: {texts:?}");

    // A receiver that is gone: its deliveries are given up at once (no retries configured).
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gone", closed.local_addr().unwrap());
    drop(closed);
    let (status, hook) =
        app.post("/api/v1/webhooks", &admin, json!({ "url": url, "events": ["message.status"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{hook}");
    app.post("/api/v1/sessions/busy/messages", &admin, json!({ "to": "+6281234580094", "text": "x" })).await;
    let texts = received.until("the dead letters", |t| t.iter().any(|t| t.contains("gave up on"))).await;
    let dead = texts.iter().find(|t| t.contains("gave up on")).unwrap();
    assert!(dead.contains(hook["id"].as_str().unwrap()), "{dead}");
    let count = texts.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = received.texts();
    assert!(
        later[count..].iter().all(|t| !t.contains("gave up on")),
        "new dead letters of the same webhook do not alert again: {later:?}"
    );

    // The database stops answering the checks, then answers again.
    sqlx::any::install_default_drivers();
    let db_url = app.database_url();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&db_url).await.unwrap();
    sqlx::query("ALTER TABLE sessions RENAME TO sessions_away").execute(&mut db).await.unwrap();
    received
        .until("the database alert", |t| t.iter().any(|t| t.contains("the database does not answer")))
        .await;
    sqlx::query("ALTER TABLE sessions_away RENAME TO sessions").execute(&mut db).await.unwrap();
    let texts = received
        .until("the database back", |t| {
            t.last().is_some_and(|t| t.starts_with("[wagate RECOVERED] resolved: the database"))
        })
        .await;
    assert!(
        !texts.iter().any(|t| t.contains("RECOVERED] resolved: webhook")),
        "while the database was away, nothing else recovered: {texts:?}"
    );
}
