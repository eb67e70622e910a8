//! The same store scenario on every supported database: SQLite (a temp file), PostgreSQL and
//! MariaDB/MySQL (local servers, started by scripts/test.sh; URLs overridable with
//! WAGATE_TEST_POSTGRES_URL and WAGATE_TEST_MYSQL_URL). Each run works in a fresh schema or
//! database and drops it afterwards.

use sqlx::Connection;
use wagate_core::{EngineKind, Role, Scope, ScopeSet, SessionId, SessionStatus};
use wagate_store::{LinkedAccount, NewApiKey, NewSession, NewUser, Store, StoreError};

fn unique_name() -> String {
    format!("wagate_test_{}", uuid_like())
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

async fn scenario(store: Store) {
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrations are idempotent");
    store.ping().await.unwrap();

    // Settings: the first value wins.
    assert_eq!(store.setting_or_insert("server_secret", "one").await.unwrap(), "one");
    assert_eq!(store.setting_or_insert("server_secret", "two").await.unwrap(), "one");

    // Users.
    let admin = store
        .insert_user(NewUser { username: "admin", password_hash: "h1", role: Role::Admin })
        .await
        .unwrap();
    let err = store
        .insert_user(NewUser { username: "admin", password_hash: "h2", role: Role::User })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(store.count_users().await.unwrap(), 1);
    assert!(store.set_user_password(&admin.id, "h3").await.unwrap());
    assert_eq!(store.user_by_username("admin").await.unwrap().unwrap().password_hash, "h3");
    assert!(store.set_user_disabled(&admin.id, true).await.unwrap());
    assert!(store.user(&admin.id).await.unwrap().unwrap().disabled);

    // API keys.
    let one = SessionId::parse("one").unwrap();
    let scopes = ScopeSet::new([Scope::Send, Scope::Read]);
    let sessions = [one.clone()];
    let key = store
        .insert_api_key(NewApiKey {
            user_id: &admin.id,
            name: "backend",
            prefix: "wag_abcdefgh",
            key_hash: "hash-1",
            scopes: &scopes,
            sessions: Some(&sessions),
            expires_at: None,
        })
        .await
        .unwrap();
    let found = store.api_key_by_hash("hash-1").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), found.scopes.clone(), found.sessions.clone()),
        (key.id.as_str(), scopes, Some(vec![one.clone()]))
    );
    assert!(store.revoke_api_key(&key.id).await.unwrap());
    assert!(!store.revoke_api_key(&key.id).await.unwrap(), "revoking twice changes nothing");
    assert!(store.api_key(&key.id).await.unwrap().unwrap().revoked_at.is_some());
    store.touch_api_key(&key.id).await.unwrap();
    assert_eq!(store.api_keys(Some(&admin.id)).await.unwrap().len(), 1);

    // Sessions.
    let new = |id| NewSession {
        id,
        owner_id: &admin.id,
        name: "Shop",
        engine: EngineKind::Sandbox,
        webhook_url: None,
    };
    store.insert_session(new(&one)).await.unwrap();
    assert!(matches!(store.insert_session(new(&one)).await.unwrap_err(), StoreError::Conflict { .. }));
    assert!(store.set_session_status(&one, SessionStatus::Connected, None).await.unwrap());
    let account = LinkedAccount {
        phone: "+6281234567890".into(),
        lid: Some("1@lid".into()),
        push_name: Some("Toko ✓".into()),
    };
    assert!(store.set_session_account(&one, Some(&account)).await.unwrap());
    assert!(store.set_session_auto_connect(&one, true).await.unwrap());
    assert!(store.rename_session(&one, "Shop 2").await.unwrap());
    assert!(store.set_session_webhook(&one, Some("https://example.com/h")).await.unwrap());
    let record = store.session(&one).await.unwrap().unwrap();
    assert_eq!(record.status, SessionStatus::Connected);
    assert_eq!(record.account, Some(account));
    assert!(record.connected_at.is_some() && record.auto_connect);
    assert_eq!(record.name, "Shop 2");
    assert_eq!(store.auto_connect_sessions().await.unwrap().len(), 1);
    assert!(store.set_session_account(&one, None).await.unwrap());
    assert!(store.session(&one).await.unwrap().unwrap().account.is_none());
    let missing = SessionId::parse("missing").unwrap();
    assert!(!store.rename_session(&missing, "x").await.unwrap());

    // Activity log: newest first, paged.
    for n in 0..5 {
        store.insert_session_event(&one, "tick", Some(&serde_json::json!({ "n": n }))).await.unwrap();
    }
    let page = store.session_events(&one, None, 3).await.unwrap();
    assert_eq!(page.len(), 3);
    assert!(page[0].detail.as_deref().unwrap().contains("4"));
    let rest = store.session_events(&one, Some(&page[2].id), 10).await.unwrap();
    assert_eq!(rest.len(), 2);

    assert!(store.delete_session(&one).await.unwrap());
    assert!(store.session(&one).await.unwrap().is_none());
    assert!(store.session_events(&one, None, 10).await.unwrap().is_empty());
    assert!(!store.delete_session(&one).await.unwrap());
    store.close().await;
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(dir.path())).await.unwrap();
    scenario(store).await;
    assert!(dir.path().join("wagate.db-wal").exists() || dir.path().join("wagate.db").exists());
}

#[tokio::test]
async fn postgres() {
    let server = std::env::var("WAGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = unique_name();
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("PostgreSQL is running (scripts/test.sh starts it)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut admin).await.unwrap();
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
    scenario(Store::connect(&url).await.unwrap()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn mysql() {
    let server =
        std::env::var("WAGATE_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".into());
    let database = unique_name();
    let mut admin = sqlx::MySqlConnection::connect(&server)
        .await
        .expect("MariaDB is running (scripts/test.sh starts it)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let base = server.rsplit_once('/').map(|(base, _)| base).unwrap();
    scenario(Store::connect(&format!("{base}/{database}")).await.unwrap()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {database}")))
        .execute(&mut admin)
        .await
        .unwrap();
}
