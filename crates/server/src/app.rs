//! Builds the application from its configuration and runs it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use wagate_store::{CacheTopic, Store};

use crate::config::Config;
use crate::http::forward::Forwarder;
use crate::serve::ConnectionLimits;
use wagate_core::Pacing;
use wagate_service::accounts::Accounts;
use wagate_service::activity::Activity;
use wagate_service::alerts::Alerts;
use wagate_service::analytics::Analytics;
use wagate_service::audit::AuditLog;
use wagate_service::auth::{ApiQuota, Secrets};
use wagate_service::cluster::{Cluster, default_node_id, host_name};
use wagate_service::engines::Engines;
use wagate_service::media::MediaStore;
use wagate_service::messages::Messages;
use wagate_service::metrics::Metrics;
use wagate_service::numbers::NumberCache;
use wagate_service::otp::{OtpFeed, OtpService};
use wagate_service::outbox::Outbox;
use wagate_service::phones::PhoneReader;
use wagate_service::retention::Retention;
use wagate_service::seal::Sealer;
use wagate_service::sessions::{Pipeline, SessionManager, SessionPacing};
use wagate_service::shared_caches::CacheFollower;
use wagate_service::url_guard::UrlGuard;
use wagate_service::webhooks::Webhooks;

/// Everything a request handler may need; cheap to clone (axum clones it for every request).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub accounts: Arc<Accounts>,
    /// Requests per minute per credential.
    pub quota: ApiQuota,
    pub sessions: SessionManager,
    pub messages: Messages,
    /// Reads the phone numbers callers write (national numbers in the sender's country).
    pub phones: PhoneReader,
    pub activity: Activity,
    pub analytics: Analytics,
    pub audit: AuditLog,
    pub numbers: Arc<NumberCache>,
    pub otp: Arc<OtpService>,
    pub metrics: Arc<Metrics>,
    /// This node among the nodes sharing the database.
    pub cluster: Arc<Cluster>,
    /// Carries requests that need a session another node runs to that node.
    pub forwarder: Forwarder,
    /// Set once sessions are restored and workers run.
    pub ready: Arc<AtomicBool>,
    /// Becomes true when the server begins to stop; long-lived streams end on it.
    pub shutdown: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir { path: std::path::PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] wagate_store::StoreError),
    #[error("cannot create the admin user: {0}")]
    Admin(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error("alerts: {0}")]
    Alerts(String),
    #[error(
        "the server secret (WAGATE_SECRET) differs from the one this database was first used with: \
         every node of a database needs the same secret (tokens, API keys and sealed webhook secrets \
         depend on it)"
    )]
    SecretMismatch,
}

pub struct App {
    state: AppState,
    listener: TcpListener,
    stop: watch::Sender<bool>,
    /// The node's heartbeats; once stopped, it has left the cluster's node list.
    heartbeats: tokio::task::JoinHandle<()>,
}

/// Opens the database, applies migrations and the server secret.
pub async fn open_store(config: &Config) -> Result<Store, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
    let store = Store::connect(&config.database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

/// The master secret: from the configuration, or generated once and kept in the database. A
/// secret other than the one the database was first used with is refused: tokens, API keys and
/// sealed secrets made with the first would stop working, and nodes of one cluster would not
/// understand each other.
pub async fn secrets(config: &Config, store: &Store) -> Result<Secrets, StartError> {
    let master = match &config.secret {
        Some(secret) => secret.clone(),
        None => store.setting_or_insert("server_secret", &Secrets::generate_master()).await?,
    };
    let secrets = Secrets::derive(&master);
    let fingerprint = secrets.fingerprint();
    if store.setting_or_insert(SECRET_FINGERPRINT, &fingerprint).await? != fingerprint {
        return Err(StartError::SecretMismatch);
    }
    Ok(secrets)
}

/// The setting that tells which server secret the database belongs to.
const SECRET_FINGERPRINT: &str = "server_secret_fingerprint";

impl App {
    pub async fn build(config: Config) -> Result<App, StartError> {
        let store = open_store(&config).await?;
        let secrets = secrets(&config, &store).await?;
        let accounts = Accounts::new(store.clone(), secrets.clone(), &config.accounts());
        match accounts.bootstrap_admin(config.admin_password.as_deref()).await {
            Ok(Some(password)) => tracing::warn!(
                username = "admin",
                password = %password,
                "created the first user; this password is shown only once: log in and change it"
            ),
            Ok(None) => {}
            Err(err) => return Err(StartError::Admin(err.to_string())),
        }
        let metrics = Arc::new(Metrics::default());
        let (node_id, id_lock) = match &config.node_id {
            Some(id) => (id.clone(), None),
            None => default_node_id(&config.data_dir),
        };
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| StartError::Bind { addr, source })?;
        let address = advertised_address(&config, &listener);
        let forwarder = Forwarder::new(&node_id, secrets.node_key);
        let cluster =
            Cluster::join(store.clone(), node_id, Some(address), id_lock, config.cluster.clone()).await?;
        tracing::info!(node = cluster.node_id(), "joined the nodes of this database");
        let outbox = Outbox::new(store.clone(), config.delivery.clone(), metrics.clone());
        // Messages left `sending` by a previous run go back to the queue at once; with other
        // nodes alive they may be theirs, and wait for their leases to expire instead.
        if !cluster.others_alive().await? {
            let released = outbox.release_leases_of_previous_run().await?;
            if released > 0 {
                tracing::info!(released, "messages of the previous run are queued again");
            }
        }
        let engines = engines(&config, &store);
        let (stop, shutdown) = watch::channel(false);
        let heartbeats = tokio::spawn(cluster.clone().run(shutdown.clone()));
        let pacing = SessionPacing { web: config.pacing, sandbox: Pacing::default(), otp: config.otp_pacing };
        let sealer = Arc::new(Sealer::new(&secrets.seal_key));
        let webhooks =
            Arc::new(Webhooks::new(store.clone(), config.webhooks.clone(), sealer.clone(), metrics.clone()));
        tokio::spawn(webhooks.clone().run(cluster.clone(), shutdown.clone()));
        let media = Arc::new(MediaStore::new(
            &config.data_dir,
            config.media.clone(),
            UrlGuard::new(config.webhooks.allow_private_urls),
        ));
        let retention = Retention::new(store.clone(), media.clone(), config.retention.clone());
        tokio::spawn(retention.clone().run(cluster.clone(), shutdown.clone()));
        let (otp_feed, otp_events) = OtpFeed::new();
        let sessions = SessionManager::new(
            store.clone(),
            engines,
            config.data_dir.clone(),
            Pipeline {
                outbox,
                webhooks,
                media,
                sealer: sealer.clone(),
                observer: otp_feed.clone(),
                metrics: metrics.clone(),
            },
            pacing,
            cluster.clone(),
            shutdown.clone(),
        );
        let otp = Arc::new(OtpService::new(
            store.clone(),
            sessions.clone(),
            config.otp.clone(),
            secrets.otp_pepper,
            sealer,
            otp_feed,
        ));
        tokio::spawn(otp.clone().run(otp_events, cluster.clone(), shutdown.clone()));
        if config.alerts.any_channel() {
            let alerts = Alerts::new(store.clone(), sessions.clone(), config.alerts.clone())
                .map_err(StartError::Alerts)?;
            tokio::spawn(alerts.run(cluster.clone(), shutdown.clone()));
        }
        let follower = CacheFollower::new(store.clone())
            .on_change(CacheTopic::Users, accounts.users_dropper())
            .on_change(CacheTopic::Webhooks, {
                let webhooks = sessions.webhooks().clone();
                move || webhooks.invalidate()
            })
            .on_change(CacheTopic::Sessions, {
                let store = store.clone();
                move || store.forget_session_lists()
            })
            .on_change(CacheTopic::OtpSettings, {
                let otp = otp.clone();
                move || otp.forget_cached_settings()
            });
        tokio::spawn(follower.run(cluster.clone(), shutdown.clone()));
        let numbers = Arc::new(NumberCache::new(Duration::from_secs(config.numbers_cache_ttl_secs)));
        let quota = ApiQuota::new(&store, &config.api_limits);
        let phones = PhoneReader::new(store.clone(), config.default_region.clone());
        let messages = Messages::new(sessions.clone(), store.clone(), phones.clone());
        let activity = Activity::new(store.clone());
        let otp_days = u32::try_from(config.otp.retention_days).unwrap_or(u32::MAX);
        let analytics = Analytics::new(store.clone(), retention, otp_days);
        let audit = AuditLog::new(store.clone());
        let state = AppState(Arc::new(Services {
            config: Arc::new(config),
            store,
            accounts: Arc::new(accounts),
            quota,
            sessions,
            messages,
            phones,
            activity,
            analytics,
            audit,
            numbers,
            otp,
            metrics,
            cluster,
            forwarder,
            ready: Arc::new(AtomicBool::new(false)),
            shutdown,
        }));
        Ok(App { state, listener, stop, heartbeats })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight requests finish
    /// and closes every session, all within the configured shutdown timeout.
    pub async fn run(self, signal: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
        let App { state, listener, stop, heartbeats } = self;
        tracing::info!(addr = %listener.local_addr().map_err(StartError::Serve)?, "listening");
        let restored = state.sessions.restore().await.unwrap_or_else(|err| {
            tracing::error!(error = %err, "cannot restore sessions");
            0
        });
        tracing::info!(restored, "sessions restored");
        state.ready.store(true, Ordering::SeqCst);

        let limits = ConnectionLimits {
            max_connections: state.config.max_connections,
            header_read_timeout: Duration::from_secs(state.config.header_read_timeout_secs.max(1)),
        };
        let server = tokio::spawn(crate::serve::serve(
            listener,
            crate::http::router(state.clone()),
            limits,
            stop.subscribe(),
        ));
        signal.await;
        tracing::info!("shutting down");
        state.ready.store(false, Ordering::SeqCst);
        let _ = stop.send(true);
        let timeout = state.config.shutdown_timeout();
        match tokio::time::timeout(timeout, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => return Err(StartError::Serve(err)),
            Ok(Err(join)) => tracing::error!(error = %join, "server task failed"),
            Err(_) => {
                tracing::warn!(?timeout, "requests still running at the shutdown deadline were dropped")
            }
        }
        if tokio::time::timeout(timeout, state.sessions.shutdown()).await.is_err() {
            tracing::warn!("some sessions did not close in time");
        }
        // The node leaves the node list before the database closes under it: a node still
        // listed would count as alive, and the others would claim less, for a lease's time.
        if tokio::time::timeout(timeout, heartbeats).await.is_err() {
            tracing::warn!("the node did not leave the cluster's node list in time");
        }
        state.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Where the other nodes reach this one: as configured, else the listening address (the host
/// name when listening on every address).
fn advertised_address(config: &Config, listener: &TcpListener) -> String {
    if let Some(url) = &config.cluster.advertise_url {
        return url.trim_end_matches('/').to_owned();
    }
    match listener.local_addr() {
        Ok(addr) if !addr.ip().is_unspecified() => format!("http://{addr}"),
        Ok(addr) => format!("http://{}:{}", host_name(), addr.port()),
        Err(_) => format!("http://{}:{}", host_name(), config.port),
    }
}

/// The engines this build offers, as configured. The sandbox's network lives in the database
/// when nodes can share it (PostgreSQL, MariaDB/MySQL), else in this process.
fn engines(
    config: &Config,
    #[cfg_attr(not(feature = "sandbox"), allow(unused_variables))] store: &Store,
) -> Engines {
    #[allow(unused_mut)]
    let mut engines = Engines::new();
    #[cfg(feature = "sandbox")]
    if config.sandbox {
        use std::time::Duration;

        use wagate_engine::sandbox::{SandboxConfig, SandboxEngine};
        let t = &config.sandbox_timings;
        let shared = store.dialect() != wagate_store::Dialect::Sqlite;
        let sandbox_config = SandboxConfig {
            qr_first_timeout: Duration::from_millis(t.qr_first_timeout_ms),
            qr_timeout: Duration::from_millis(t.qr_timeout_ms),
            qr_codes: t.qr_codes,
            pair_code_timeout: Duration::from_millis(t.pair_code_timeout_ms),
            delivery_delay: Duration::from_millis(t.delivery_delay_ms),
            read_delay: Duration::from_millis(t.read_delay_ms),
            slow_delivery: Duration::from_millis(t.slow_delivery_ms),
            state_dir: (!shared).then(|| config.data_dir.join("sandbox")),
            inbox_capacity: t.inbox_capacity,
        };
        let sandbox = if shared {
            let ledger = wagate_service::sandbox_ledger::StoreLedger::new(store.clone());
            SandboxEngine::shared(sandbox_config, std::sync::Arc::new(ledger))
        } else {
            SandboxEngine::new(sandbox_config)
        };
        engines = engines.with_sandbox(sandbox);
    }
    #[cfg(feature = "web")]
    {
        let web = wagate_engine::web::WebConfig {
            // validated with the rest of the configuration
            version: config.web_version().ok().flatten(),
            #[cfg(feature = "test-server")]
            server_url: config.web.server_url.clone(),
        };
        engines = engines.with_web(wagate_engine::web::WebEngine::new(web));
    }
    engines.with_default(config.default_engine)
}
