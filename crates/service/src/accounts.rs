//! Users, logins, tokens and API keys.

use std::time::Duration;

use moka::sync::Cache;
use wagate_core::{Role, Scope, ScopeSet, SessionId, Username};
use wagate_store::{ApiKeyRecord, NewApiKey, NewUser, Store, StoreError, UserRecord};

use crate::audit::{Actor, AuditLog, Entry, Level};
use crate::auth::{
    ISSUER, Limit, Principal, Secrets, TokenClaims, TokenError, TokenKind, generate_api_key, hash_api_key,
    hash_password, issue_token, verify_password, verify_token,
};
use crate::time::now_ms;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("too many attempts")]
    RateLimited(Duration),
    #[error("invalid token: {0}")]
    InvalidToken(TokenError),
    #[error("unknown or revoked API key")]
    InvalidApiKey,
    #[error("the API key expired")]
    ApiKeyExpired,
    #[error("the user is disabled")]
    UserDisabled,
    #[error("{0}")]
    InvalidInput(String),
    #[error("a user with that name already exists")]
    UserExists,
    #[error("not found")]
    NotFound,
    #[error("a key cannot get the `{0}` scope from this credential")]
    ScopeNotGrantable(Scope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginLimits {
    /// Login attempts allowed per client IP per window.
    pub per_ip: u32,
    /// Failed logins allowed per username per window; then the username is locked out.
    pub failures_per_user: u32,
    pub window_secs: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits { per_ip: 30, failures_per_user: 5, window_secs: 15 * 60 }
    }
}

/// What accounts need to know of the configuration.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Lifetime of login tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of stream tokens, in seconds.
    pub stream_token_ttl_secs: u64,
    pub login_limits: LoginLimits,
}

pub struct LoginSuccess {
    pub token: String,
    pub expires_at: i64,
    pub user: UserRecord,
}

pub struct NewKey {
    pub record: ApiKeyRecord,
    /// Shown once.
    pub key: String,
}

pub struct Accounts {
    store: Store,
    secrets: Secrets,
    token_ttl_secs: i64,
    stream_ttl_secs: i64,
    logins_per_ip: Limit,
    failures_per_user: Limit,
    /// Users behind recent requests, so that each request does not read its user again
    /// (bounded; each lives [`SIGNED_IN_TTL`]).
    signed_in: Cache<String, UserRecord>,
    /// API keys behind recent requests, by their hash, likewise (only keys that exist).
    keys_in_use: Cache<String, ApiKeyRecord>,
    audit: AuditLog,
}

/// How long a user read for one request serves the next ones. Disabling a user in this
/// process takes effect at once (the entry is dropped); a change made by another process
/// within this time.
const SIGNED_IN_TTL: Duration = Duration::from_secs(5);

/// At most this many users are remembered between requests.
const SIGNED_IN_CAPACITY: u64 = 10_000;

/// At most this many API keys are remembered between requests.
const KEYS_IN_USE_CAPACITY: u64 = 10_000;

/// Claims of a token issued now for `ttl_secs`.
fn new_claims(
    user_id: &str,
    kind: TokenKind,
    session: Option<String>,
    sid: Option<String>,
    ttl_secs: i64,
) -> TokenClaims {
    let now = now_ms() / 1000;
    TokenClaims {
        iss: ISSUER.to_owned(),
        sub: user_id.to_owned(),
        kind,
        session,
        sid,
        iat: now,
        exp: now + ttl_secs,
    }
}

pub const MIN_PASSWORD_LEN: usize = 8;

pub fn check_password_policy(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > 1024 {
        return Err(AccountError::InvalidInput(format!(
            "password must be {MIN_PASSWORD_LEN} to 1024 characters long"
        )));
    }
    Ok(())
}

impl Accounts {
    pub fn new(store: Store, secrets: Secrets, config: &AccountsConfig) -> Self {
        let window = Duration::from_secs(config.login_limits.window_secs);
        Accounts {
            audit: AuditLog::new(store.clone()),
            logins_per_ip: Limit::new(&store, "login.ip", config.login_limits.per_ip, window),
            failures_per_user: Limit::new(
                &store,
                "login.user",
                config.login_limits.failures_per_user,
                window,
            ),
            store,
            secrets,
            token_ttl_secs: config.token_ttl_secs as i64,
            stream_ttl_secs: config.stream_token_ttl_secs as i64,
            signed_in: Cache::builder().max_capacity(SIGNED_IN_CAPACITY).time_to_live(SIGNED_IN_TTL).build(),
            keys_in_use: Cache::builder()
                .max_capacity(KEYS_IN_USE_CAPACITY)
                .time_to_live(SIGNED_IN_TTL)
                .build(),
        }
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// On first start, creates `admin`. Returns the generated password when none was given,
    /// so the caller can show it once.
    pub async fn bootstrap_admin(&self, password: Option<&str>) -> Result<Option<String>, AccountError> {
        if self.store.count_users().await? > 0 {
            return Ok(None);
        }
        let generated = password.is_none().then(generate_password);
        let password = password.or(generated.as_deref()).expect("one of them is set");
        check_password_policy(password)?;
        let hash = hash_password(password);
        match self
            .store
            .insert_user(NewUser { username: "admin", password_hash: &hash, role: Role::Admin })
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(generated),
            Err(other) => Err(other.into()),
        }
    }

    pub async fn login(
        &self,
        client_ip: &str,
        username: &str,
        password: &str,
    ) -> Result<LoginSuccess, AccountError> {
        let ip_key = format!("ip:{client_ip}");
        let user_key = format!("user:{username}");
        self.logins_per_ip.check(&ip_key).await?.map_err(AccountError::RateLimited)?;
        self.failures_per_user.check(&user_key).await?.map_err(AccountError::RateLimited)?;
        self.logins_per_ip.record(&ip_key).await?;

        let user = self.store.user_by_username(username).await?;
        let verified = {
            let password = password.to_owned();
            let hash = user.as_ref().map(|u| u.password_hash.clone());
            tokio::task::spawn_blocking(move || verify_password(&password, hash.as_deref()))
                .await
                .unwrap_or(false)
        };
        let user = match user {
            Some(user) if verified && !user.disabled => user,
            known => {
                self.failures_per_user.record(&user_key).await?;
                tracing::info!(username, client_ip, "failed login");
                let entry =
                    Entry::new("auth.sign_in_failed", Level::Warning, Actor::anonymous(username, client_ip))
                        .owner(known.as_ref().map(|user| user.id.as_str()));
                self.audit.record(entry).await;
                return Err(AccountError::InvalidCredentials);
            }
        };
        self.failures_per_user.clear(&user_key).await?;
        let actor = Actor {
            user_id: Some(user.id.clone()),
            name: user.username.clone(),
            ip: Some(client_ip.to_owned()),
        };
        self.audit.record(Entry::new("auth.signed_in", Level::Info, actor)).await;
        let (token, expires_at) = self.issue(&user.id, TokenKind::Access, None, self.token_ttl_secs);
        Ok(LoginSuccess { token, expires_at, user })
    }

    fn issue(&self, user_id: &str, kind: TokenKind, session: Option<&SessionId>, ttl: i64) -> (String, i64) {
        let claims = new_claims(user_id, kind, session.map(ToString::to_string), None, ttl);
        (issue_token(&self.secrets.token_key, &claims), claims.exp * 1000)
    }

    /// A login token for the dashboard's cookie: its own (idle) lifetime, and the sign-in's
    /// id `sid`, kept when the token is renewed.
    pub fn dashboard_token(&self, user_id: &str, sid: &str, ttl_secs: u64) -> String {
        let claims = new_claims(user_id, TokenKind::Access, None, Some(sid.to_owned()), ttl_secs as i64);
        issue_token(&self.secrets.token_key, &claims)
    }

    /// The claims of a valid token (signature and expiry checked).
    pub fn token_claims(&self, token: &str) -> Result<TokenClaims, AccountError> {
        verify_token(&self.secrets.token_key, token).map_err(AccountError::InvalidToken)
    }

    pub fn stream_token(&self, principal: &Principal, session: &SessionId) -> (String, i64) {
        self.issue(&principal.user_id, TokenKind::Stream, Some(session), self.stream_ttl_secs)
    }

    /// A login token (`Authorization: Bearer`, or `?token=` where streams allow it).
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, AccountError> {
        let claims = verify_token(&self.secrets.token_key, token).map_err(AccountError::InvalidToken)?;
        let user = self.active_user(&claims.sub).await?;
        Ok(match (claims.kind, claims.session) {
            (TokenKind::Access, _) => principal(&user, ScopeSet::all(), None, None),
            (TokenKind::Stream, Some(session)) => {
                let session = SessionId::parse(&session)
                    .map_err(|_| AccountError::InvalidToken(TokenError::Malformed))?;
                principal(&user, ScopeSet::new([Scope::Read]), Some(vec![session]), None)
            }
            (TokenKind::Stream, None) => return Err(AccountError::InvalidToken(TokenError::Malformed)),
        })
    }

    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, AccountError> {
        let hash = hash_api_key(&self.secrets.api_key_pepper, key);
        let mut record = match self.keys_in_use.get(&hash) {
            Some(record) => record,
            None => {
                let record = self.store.api_key_by_hash(&hash).await?.ok_or(AccountError::InvalidApiKey)?;
                self.keys_in_use.insert(hash.clone(), record.clone());
                record
            }
        };
        if record.revoked_at.is_some() {
            return Err(AccountError::InvalidApiKey);
        }
        if record.expires_at.is_some_and(|at| at <= now_ms()) {
            return Err(AccountError::ApiKeyExpired);
        }
        let user = self.active_user(&record.user_id).await?;
        // Minute precision is enough for "last used", and spares a write per request. Losing
        // a timestamp is harmless; never fail a request for it.
        if record.last_used_at.is_none_or(|at| now_ms() - at >= 60_000) {
            match self.store.touch_api_key(&record.id).await {
                Ok(()) => {
                    record.last_used_at = Some(now_ms());
                    self.keys_in_use.insert(hash, record.clone());
                }
                Err(err) => tracing::warn!(error = %err, "cannot record API key use"),
            }
        }
        Ok(principal(&user, record.scopes.clone(), record.sessions.clone(), Some(record.id.clone())))
    }

    async fn active_user(&self, id: &str) -> Result<UserRecord, AccountError> {
        let user = match self.signed_in.get(id) {
            Some(user) => user,
            None => {
                let user =
                    self.store.user(id).await?.ok_or(AccountError::InvalidToken(TokenError::BadSignature))?;
                self.signed_in.insert(id.to_owned(), user.clone());
                user
            }
        };
        if user.disabled {
            return Err(AccountError::UserDisabled);
        }
        Ok(user)
    }

    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<UserRecord, AccountError> {
        let username = Username::parse(username).map_err(|e| AccountError::InvalidInput(e.to_string()))?;
        check_password_policy(password)?;
        let hash = hash_password(password);
        self.store
            .insert_user(NewUser { username: username.as_str(), password_hash: &hash, role })
            .await
            .map_err(|err| match err {
                StoreError::Conflict { .. } => AccountError::UserExists,
                other => other.into(),
            })
    }

    pub async fn users(&self) -> Result<Vec<UserRecord>, AccountError> {
        Ok(self.store.users().await?)
    }

    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), AccountError> {
        check_password_policy(password)?;
        let user = self.store.user_by_username(username).await?.ok_or(AccountError::NotFound)?;
        self.store.set_user_password(&user.id, &hash_password(password)).await?;
        Ok(())
    }

    /// Forgets every signed-in user and API key this node keeps (another node changed users
    /// or revoked a key).
    pub fn users_dropper(&self) -> impl Fn() + Send + Sync + 'static {
        let (signed_in, keys_in_use) = (self.signed_in.clone(), self.keys_in_use.clone());
        move || {
            signed_in.invalidate_all();
            keys_in_use.invalidate_all();
        }
    }

    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), AccountError> {
        let found = self.store.set_user_disabled(user_id, disabled).await?;
        self.signed_in.invalidate(user_id);
        if !found {
            return Err(AccountError::NotFound);
        }
        Ok(())
    }

    /// Creates a key for `principal`'s user. A key never gets more than its creator has: its
    /// scopes and sessions must lie within the creator's.
    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        scopes: ScopeSet,
        sessions: Option<Vec<SessionId>>,
        expires_at: Option<i64>,
    ) -> Result<NewKey, AccountError> {
        if let Some(scope) = scopes.iter().find(|s| !principal.scopes.allows(*s)) {
            return Err(AccountError::ScopeNotGrantable(scope));
        }
        if let Some(scope) = scopes.iter().find(|s| s.admin_only()).filter(|_| principal.role != Role::Admin)
        {
            return Err(AccountError::ScopeNotGrantable(scope));
        }
        let sessions = match (&principal.sessions, sessions) {
            (Some(own), None) => Some(own.clone()),
            (Some(own), Some(wanted)) if wanted.iter().any(|s| !own.contains(s)) => {
                return Err(AccountError::InvalidInput(
                    "a key cannot reach sessions its creator cannot".into(),
                ));
            }
            (_, wanted) => wanted,
        };
        self.insert_key(&principal.user_id, name, &scopes, sessions.as_deref(), expires_at).await
    }

    /// For the command line: a key for `username` with exactly `scopes`.
    pub async fn create_api_key_for(
        &self,
        username: &str,
        name: &str,
        scopes: ScopeSet,
    ) -> Result<NewKey, AccountError> {
        let user = self.store.user_by_username(username).await?.ok_or(AccountError::NotFound)?;
        if let Some(scope) = scopes.iter().find(|s| s.admin_only()).filter(|_| user.role != Role::Admin) {
            return Err(AccountError::ScopeNotGrantable(scope));
        }
        self.insert_key(&user.id, name, &scopes, None, None).await
    }

    async fn insert_key(
        &self,
        user_id: &str,
        name: &str,
        scopes: &ScopeSet,
        sessions: Option<&[SessionId]>,
        expires_at: Option<i64>,
    ) -> Result<NewKey, AccountError> {
        if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(AccountError::InvalidInput("key name must be 1 to 100 printable characters".into()));
        }
        if scopes.is_empty() {
            return Err(AccountError::InvalidInput("a key needs at least one scope".into()));
        }
        let material = generate_api_key(&self.secrets.api_key_pepper);
        let record = self
            .store
            .insert_api_key(NewApiKey {
                user_id,
                name: name.trim(),
                prefix: &material.prefix,
                key_hash: &material.hash,
                scopes,
                sessions,
                expires_at,
            })
            .await?;
        Ok(NewKey { record, key: material.key })
    }

    /// Keys visible to `principal` (`None`: all, for the command line).
    pub async fn api_keys(&self, owner: Option<&str>) -> Result<Vec<ApiKeyRecord>, AccountError> {
        Ok(self.store.api_keys(owner).await?)
    }

    pub async fn api_key(&self, id: &str) -> Result<ApiKeyRecord, AccountError> {
        self.store.api_key(id).await?.ok_or(AccountError::NotFound)
    }

    pub async fn revoke_api_key(&self, id: &str) -> Result<(), AccountError> {
        self.store.revoke_api_key(id).await?;
        // By id, and the keys are remembered by hash: all go (revoking is rare).
        self.keys_in_use.invalidate_all();
        Ok(())
    }

    pub async fn user(&self, id: &str) -> Result<UserRecord, AccountError> {
        self.store.user(id).await?.ok_or(AccountError::NotFound)
    }
}

fn principal(
    user: &UserRecord,
    scopes: ScopeSet,
    sessions: Option<Vec<SessionId>>,
    key: Option<String>,
) -> Principal {
    // Scopes that reach every tenant stay with admin users, whatever a key says.
    let scopes = if user.role == Role::Admin {
        scopes
    } else {
        ScopeSet::new(scopes.iter().filter(|s| !s.admin_only()))
    };
    Principal {
        user_id: user.id.clone(),
        username: user.username.clone(),
        role: user.role,
        scopes,
        sessions,
        api_key_id: key,
        ip: None,
    }
}

/// 20 characters from an unambiguous alphabet (~115 bits).
pub fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}
