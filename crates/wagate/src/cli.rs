use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use wagate_core::{Role, ScopeSet};
use wagate_server::app::{App, open_store, secrets};
use wagate_server::{Config, LogFormat};
use wagate_service::accounts::Accounts;

#[derive(Parser)]
#[command(name = "wagate", version, about = "Self-hosted WhatsApp gateway")]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args)]
struct GlobalArgs {
    /// TOML configuration file [env: WAGATE_CONFIG]
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Port to listen on [env: PORT, WAGATE_PORT]
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Directory for the database and session files [env: WAGATE_DATA_DIR]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// `text` or `json` [env: WAGATE_LOG_FORMAT]
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Enable or disable the sandbox engine [env: WAGATE_SANDBOX]
    #[arg(long, global = true)]
    sandbox: Option<bool>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
    /// Write a consistent copy of the data directory (SQLite databases included) to FILE,
    /// while the server runs.
    Backup { file: PathBuf },
    /// Unpack a backup into the data directory (the server must be stopped).
    Restore {
        file: PathBuf,
        /// Restore over existing data, which is kept beside the data directory.
        #[arg(long)]
        replace: bool,
    },
    /// Print the version and the features this binary was built with.
    Version,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from WAGATE_NEW_PASSWORD or generated and printed.
    Add {
        username: String,
        #[arg(long, default_value = "user", value_parser = ["user", "admin"])]
        role: String,
    },
    /// List users.
    List,
    /// Set a user's password (from WAGATE_NEW_PASSWORD, or generated and printed).
    Passwd { username: String },
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key for a user; the key is printed once.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
        /// Comma-separated: send, otp, sessions, read, admin
        #[arg(long, default_value = "send,read")]
        scopes: String,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a key by id.
    Revoke { id: String },
}

fn load_config(args: &GlobalArgs) -> anyhow::Result<Config> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let file = args.config.clone().or_else(|| env.get("WAGATE_CONFIG").map(PathBuf::from));
    let mut config = Config::load(file.as_deref(), &env)?;
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(format) = &args.log_format {
        config.log_format = if format == "json" { LogFormat::Json } else { LogFormat::Text };
    }
    if let Some(sandbox) = args.sandbox {
        config.sandbox = sandbox;
    }
    config.validate()?;
    Ok(config)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Version = command {
        print_version();
        return Ok(());
    }
    let config = load_config(&cli.global)?;
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open_store(&config).await?;
            println!("migrations applied to {}", config.database_url());
            Ok(())
        }
        Command::User(command) => user(config, command).await,
        Command::Apikey(command) => apikey(config, command).await,
        Command::Backup { file } => crate::backup::backup(&config, &file).await,
        Command::Restore { file, replace } => crate::backup::restore(&config, &file, replace),
        Command::Version => unreachable!("handled above"),
    }
}

fn print_version() {
    let features: Vec<&str> =
        wagate_server::BUILD_FEATURES.iter().filter_map(|&(name, on)| on.then_some(name)).collect();
    println!("wagate {}", env!("CARGO_PKG_VERSION"));
    println!("features: {}", if features.is_empty() { "(none)".to_owned() } else { features.join(", ") });
}

async fn serve(config: Config) -> anyhow::Result<()> {
    crate::telemetry::init(config.log_format);
    // Listening for the signals before anything else: a stop that comes while the server
    // starts (a service manager's stop right after its start) shuts it down cleanly once it
    // has started, where the signal's default action would end the process on the spot.
    let shutdown = shutdown_signal()?;
    let app = App::build(config).await?;
    app.run(shutdown).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM (Ctrl-C elsewhere); the signals are caught from this call on.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn accounts(config: &Config) -> anyhow::Result<Accounts> {
    let store = open_store(config).await.context("opening the database")?;
    let secrets = secrets(config, &store).await?;
    Ok(Accounts::new(store, secrets, &config.accounts()))
}

fn new_password() -> (String, bool) {
    match std::env::var("WAGATE_NEW_PASSWORD") {
        Ok(password) if !password.is_empty() => (password, false),
        _ => (wagate_service::accounts::generate_password(), true),
    }
}

async fn user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let accounts = accounts(&config).await?;
    match command {
        UserCommand::Add { username, role } => {
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let (password, generated) = new_password();
            let user = accounts.create_user(&username, &password, role).await?;
            println!("created {} `{}` ({})", user.role, user.username, user.id);
            if generated {
                println!("password: {password}");
            }
        }
        UserCommand::List => {
            for user in accounts.users().await? {
                let state = if user.disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{}\t{}", user.id, user.username, user.role, state);
            }
        }
        UserCommand::Passwd { username } => {
            let (password, generated) = new_password();
            accounts.set_password(&username, &password).await?;
            println!("password of `{username}` changed");
            if generated {
                println!("password: {password}");
            }
        }
    }
    Ok(())
}

async fn apikey(config: Config, command: ApiKeyCommand) -> anyhow::Result<()> {
    let accounts = accounts(&config).await?;
    match command {
        ApiKeyCommand::Create { user, name, scopes } => {
            let scopes = ScopeSet::parse_csv(&scopes).map_err(anyhow::Error::msg)?;
            let created = accounts.create_api_key_for(&user, &name, scopes).await?;
            println!("id: {}", created.record.id);
            println!("scopes: {}", created.record.scopes.to_csv());
            println!("key: {}", created.key);
            println!("(the key is shown only now; store it safely)");
        }
        ApiKeyCommand::List { user } => {
            let users = accounts.users().await?;
            let owner = match &user {
                Some(name) => {
                    Some(users.iter().find(|u| &u.username == name).context("no such user")?.id.clone())
                }
                None => None,
            };
            for key in accounts.api_keys(owner.as_deref()).await? {
                let username =
                    users.iter().find(|u| u.id == key.user_id).map_or("?", |u| u.username.as_str());
                let state = if key.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{}\t{}\t{}…\t{}\t{}\t{}",
                    key.id,
                    username,
                    key.prefix,
                    key.name,
                    key.scopes.to_csv(),
                    state
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            accounts.api_key(&id).await.map_err(|_| anyhow::anyhow!("no API key with id {id}"))?;
            accounts.revoke_api_key(&id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
