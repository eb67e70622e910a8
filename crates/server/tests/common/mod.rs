//! Test helpers: a real server on 127.0.0.1:0 with a fresh data directory, a fresh database of
//! the kind the run selected (`WAGATE_TEST_DATABASE`: SQLite by default) and fast sandbox
//! timings, driven through the shared HTTP and SSE helpers of `wagate_testkit`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wagate_server::{App, Config};
use wagate_testkit::{DatabaseKind, TestDatabase};
pub use wagate_testkit::{Sse, read};

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

pub fn test_config(data_dir: PathBuf) -> Config {
    let mut config = Config {
        host: [127, 0, 0, 1].into(),
        port: 0,
        data_dir,
        admin_password: Some(ADMIN_PASSWORD.into()),
        secret: Some(SECRET.into()),
        shutdown_timeout_secs: 5,
        default_engine: Some(wagate_core::EngineKind::Sandbox),
        ..Config::default()
    };
    config.webhooks.allow_private_urls = true;
    config.webhooks.retry_schedule_ms = vec![50, 100, 200, 400];
    let timings = &mut config.sandbox_timings;
    timings.qr_first_timeout_ms = 800;
    timings.qr_timeout_ms = 400;
    timings.qr_codes = 4;
    timings.delivery_delay_ms = 20;
    timings.read_delay_ms = 20;
    config
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    database: Option<Arc<TestDatabase>>,
    _dir: Option<tempfile::TempDir>,
}

/// A stopped server's data (its directory and database), to start it again.
pub struct StoppedApp {
    pub data_dir: PathBuf,
    database: Option<Arc<TestDatabase>>,
    dir: Option<tempfile::TempDir>,
}

impl StoppedApp {
    pub async fn restart(self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut app = TestApp::start(self.data_dir, self.database, adjust).await;
        app._dir = self.dir;
        app
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A server on a fresh data directory and a fresh database of the kind this test run
    /// selected (`WAGATE_TEST_DATABASE`, see `wagate_testkit::database`).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::selected().await.map(Arc::new);
        let mut app = Self::start(dir.path().to_path_buf(), database, adjust).await;
        app._dir = Some(dir);
        app
    }

    /// A server on a database server that several nodes can share: the one this run selected,
    /// or PostgreSQL when the run is on SQLite (which one process uses alone).
    pub async fn spawn_on_shared_database(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let kind = match DatabaseKind::selected() {
            DatabaseKind::Sqlite => DatabaseKind::Postgres,
            server => server,
        };
        let dir = tempfile::tempdir().unwrap();
        let database = TestDatabase::create(kind).await.map(Arc::new);
        let mut app = Self::start(dir.path().to_path_buf(), database, adjust).await;
        app._dir = Some(dir);
        app
    }

    /// Another node on this server's database, with a data directory of its own.
    pub async fn spawn_beside(&self, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = self.database_url();
        let mut app = Self::start(dir.path().to_path_buf(), self.database.clone(), |config| {
            config.database_url = Some(url);
            adjust(config);
        })
        .await;
        app._dir = Some(dir);
        app
    }

    /// A server on SQLite in `data_dir`, whatever the run selected (for tests of SQLite's own
    /// faults, such as its disk filling up).
    pub async fn start_on_sqlite(data_dir: PathBuf, adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start(data_dir, None, adjust).await
    }

    async fn start(
        data_dir: PathBuf,
        database: Option<Arc<TestDatabase>>,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = test_config(data_dir.clone());
        config.database_url = database.as_ref().map(|database| database.url().to_owned());
        adjust(&mut config);
        let app = App::build(config).await.expect("server builds");
        let base = format!("http://{}", app.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let app =
            TestApp { base, client, data_dir, stop: Some(stop), task: Some(task), database, _dir: None };
        app.wait_ready().await;
        app
    }

    /// The URL of the database this server runs on (for tests that reach into it).
    pub fn database_url(&self) -> String {
        match &self.database {
            Some(database) => database.url().to_owned(),
            None => wagate_store::Store::sqlite_url(&self.data_dir),
        }
    }

    /// Whether the database keeps anything of the session's engine state (a linked account).
    pub async fn engine_state_exists(&self, session: &str) -> bool {
        let store = wagate_store::Store::connect(&self.database_url()).await.unwrap();
        let exists = store.state_exists(&wagate_core::SessionId::parse(session).unwrap()).await.unwrap();
        store.close().await;
        exists
    }

    async fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(r) = self.client.get(self.url("/ready")).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server never became ready");
    }

    /// Stops the server gracefully and keeps its data, to start it again.
    pub async fn stop(mut self) -> StoppedApp {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task).await.expect("stops in time").unwrap();
        }
        StoppedApp { data_dir: self.data_dir.clone(), database: self.database.take(), dir: self._dir.take() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws{}{}", self.base.trim_start_matches("http"), path)
    }

    pub fn request(&self, method: Method, path: &str, credential: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match credential {
            Some(c) => builder.bearer_auth(c),
            None => builder,
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        wagate_testkit::login(&self.client, &self.base, username, password).await
    }

    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn create_user(&self, admin: &str, username: &str) -> String {
        let password = format!("{username}-password");
        let (status, body) = self
            .call(Method::POST, "/api/v1/users", admin, json!({ "username": username, "password": password }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        self.login(username, &password).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let builder = wagate_testkit::http::with_body(self.request(method, path, Some(credential)), body);
        read(builder.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, credential: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, credential, Value::Null).await
    }

    pub async fn post(&self, path: &str, credential: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, credential, body).await
    }

    pub async fn create_session(&self, credential: &str, id: &str) -> Value {
        let (status, body) =
            self.post("/api/v1/sessions", credential, json!({ "id": id, "engine": "sandbox" })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    pub async fn events(&self, session: &str, credential: &str) -> Sse {
        let response = self
            .request(Method::GET, &format!("/api/v1/sessions/{session}/events"), Some(credential))
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        Sse::new(response)
    }

    /// A session on the sandbox, linked to `phone` and connected.
    pub async fn linked(&self, token: &str, id: &str, phone: &str) {
        self.create_session(token, id).await;
        let mut events = self.events(id, token).await;
        self.post(&format!("/api/v1/sessions/{id}/connect"), token, Value::Null).await;
        events.until("qr").await;
        let (status, body) =
            self.post(&format!("/api/v1/sandbox/sessions/{id}/scan"), token, json!({ "phone": phone })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        events.until_status("connected").await;
    }

    /// Polls a message until `done` says so (10 s at most).
    pub async fn wait_for_message(&self, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..500 {
            let (status, body) = self.get(&format!("/api/v1/messages/{id}"), token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if done(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("message {id} never reached the expected state: {last}");
    }

    pub async fn session_status(&self, session: &str, credential: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/sessions/{session}"), credential).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
