//! Earlier versions kept a session's credentials and keys in `whatsapp.db` in its directory.
//! On the session's first start with its state in the database, that file is copied in
//! (through the client's own SQLite store, so every value is read as the client reads it) and
//! renamed `whatsapp.db.imported`: an upgrade loses no linked device, and afterwards nothing of
//! the session is needed on this node's disk.

use std::collections::BTreeMap;
use std::path::Path;

use diesel::sql_types::{BigInt, Binary, Bool, Integer, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};
use whatsapp_rust::store::SqliteStore;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppSyncStore, DeviceStore, MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore,
};

use super::backend::StateBackend;

const LOCAL_STORE: &str = "whatsapp.db";
const IMPORTED: &str = "whatsapp.db.imported";

/// Imports `whatsapp.db` from `dir` when there is one and the database has no device for the
/// session yet; a no-op otherwise.
pub(super) async fn import_local_store(dir: &Path, to: &StateBackend) -> Result<(), String> {
    let file = dir.join(LOCAL_STORE);
    if !tokio::fs::try_exists(&file).await.unwrap_or(false) {
        return Ok(());
    }
    if DeviceStore::exists(to).await.map_err(|err| err.to_string())? {
        tracing::warn!(file = %file.display(), "the session's state is in the database already; the local file is left as it is");
        return Ok(());
    }
    let copied = copy(&file, to).await?;
    tokio::fs::rename(&file, dir.join(IMPORTED))
        .await
        .map_err(|err| format!("imported, but cannot rename {}: {err}", file.display()))?;
    tracing::info!(file = %file.display(), copied, "imported the session's local WhatsApp store into the database");
    Ok(())
}

/// Copies everything of the device in `file` to `to`; the number of values copied.
async fn copy(file: &Path, to: &StateBackend) -> Result<usize, String> {
    let path = file.to_string_lossy().into_owned();
    let from = SqliteStore::new(&path).await.map_err(|err| format!("cannot open {path}: {err}"))?;
    let Some(device) = DeviceStore::load(&from).await.map_err(|err| err.to_string())? else {
        return Ok(0); // never linked: nothing to keep
    };
    let keys = {
        let reading = path.clone();
        let device_id = from.device_id();
        tokio::task::spawn_blocking(move || Keys::read(&reading, device_id))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| format!("cannot read {path}: {err}"))?
    };
    let e = |err: whatsapp_rust::wacore::store::error::StoreError| err.to_string();
    let mut copied = 1;
    for address in &keys.identities {
        if let Some(key) = from.load_identity(address).await.map_err(e)? {
            to.put_identity(address, key).await.map_err(e)?;
            copied += 1;
        }
    }
    for address in &keys.sessions {
        if let Some(record) = from.get_session(address).await.map_err(e)? {
            to.put_session(address, &record).await.map_err(e)?;
            copied += 1;
        }
    }
    for (id, uploaded) in &keys.prekeys {
        if let Some(record) = from.load_prekey(*id).await.map_err(e)? {
            to.store_prekey(*id, &record, *uploaded).await.map_err(e)?;
            copied += 1;
        }
    }
    for (id, record) in from.load_all_signed_prekeys().await.map_err(e)? {
        to.store_signed_prekey(id, &record).await.map_err(e)?;
        copied += 1;
    }
    for address in &keys.sender_keys {
        if let Some(record) = from.get_sender_key(address).await.map_err(e)? {
            to.put_sender_key(address, &record).await.map_err(e)?;
            copied += 1;
        }
    }
    for key_id in &keys.sync_keys {
        if let Some(key) = from.get_sync_key(key_id).await.map_err(e)? {
            to.set_sync_key(key_id, key).await.map_err(e)?;
            copied += 1;
        }
    }
    // Set again last, so that it is the latest here too.
    if let Some(latest) = from.get_latest_sync_key_id().await.map_err(e)?
        && let Some(key) = from.get_sync_key(&latest).await.map_err(e)?
    {
        to.set_sync_key(&latest, key).await.map_err(e)?;
    }
    for name in &keys.app_versions {
        to.set_version(name, from.get_version(name).await.map_err(e)?).await.map_err(e)?;
        copied += 1;
    }
    for ((name, version), macs) in keys.mutation_macs {
        copied += macs.len();
        to.put_mutation_macs(&name, version, &macs).await.map_err(e)?;
    }
    for group in &keys.sender_key_groups {
        let devices = from.get_sender_key_devices(group).await.map_err(e)?;
        let devices: Vec<(&str, bool)> = devices.iter().map(|(jid, has)| (jid.as_str(), *has)).collect();
        to.set_sender_key_status(group, &devices).await.map_err(e)?;
        copied += devices.len();
    }
    let mappings = from.get_all_lid_mappings().await.map_err(e)?;
    copied += mappings.len();
    to.put_lid_mappings(&mappings).await.map_err(e)?;
    for (address, message_id, base_key) in &keys.base_keys {
        to.save_base_key(address, message_id, base_key).await.map_err(e)?;
        copied += 1;
    }
    for user in &keys.device_users {
        if let Some(record) = from.get_devices(user).await.map_err(e)? {
            to.update_device_list(record).await.map_err(e)?;
            copied += 1;
        }
    }
    for group in &keys.groups {
        if let Some(blob) = from.get_group_metadata(group).await.map_err(e)? {
            to.put_group_metadata(group, &blob).await.map_err(e)?;
            copied += 1;
        }
    }
    for jid in from.get_all_tc_token_jids().await.map_err(e)? {
        if let Some(token) = from.get_tc_token(&jid).await.map_err(e)? {
            to.put_tc_token(&jid, &token).await.map_err(e)?;
            copied += 1;
        }
    }
    for (chat, message_id, payload) in &keys.sent_messages {
        to.store_sent_message(chat, message_id, payload).await.map_err(e)?;
        copied += 1;
    }
    for (chat, sender, id) in &keys.pending_inbound {
        if let Some(message) = from.get_pending_inbound(chat, sender, id).await.map_err(e)? {
            to.store_pending_inbound(chat, sender, id, &message).await.map_err(e)?;
            copied += 1;
        }
    }
    let mut secrets = Vec::new();
    for (chat, sender, msg_id, expires_at) in &keys.msg_secrets {
        if let Some((secret, message_ts)) =
            from.get_msg_secret_with_ts(chat, sender, msg_id).await.map_err(e)?
            && let Ok(secret) = secret.try_into()
        {
            secrets.push(MsgSecretEntry {
                chat: chat.as_str().into(),
                sender: sender.as_str().into(),
                msg_id: msg_id.as_str().into(),
                secret,
                expires_at: *expires_at,
                message_ts,
            });
        }
    }
    copied += to.put_msg_secrets(secrets).await.map_err(e)?;
    // The device last: a half-done import has none, so the next start does it again.
    to.save(&device).await.map_err(e)?;
    Ok(copied)
}

/// The keys of the file's tables (their values are read through the client's store).
#[derive(Default)]
struct Keys {
    identities: Vec<String>,
    sessions: Vec<String>,
    prekeys: Vec<(u32, bool)>,
    sender_keys: Vec<String>,
    sync_keys: Vec<Vec<u8>>,
    app_versions: Vec<String>,
    mutation_macs: BTreeMap<(String, u64), Vec<AppStateMutationMAC>>,
    sender_key_groups: Vec<String>,
    base_keys: Vec<(String, String, Vec<u8>)>,
    device_users: Vec<String>,
    groups: Vec<String>,
    sent_messages: Vec<(String, String, Vec<u8>)>,
    pending_inbound: Vec<(String, String, String)>,
    msg_secrets: Vec<(String, String, String, i64)>,
}

#[derive(QueryableByName)]
struct Named {
    #[diesel(sql_type = Text)]
    a: String,
}

#[derive(QueryableByName)]
struct Bytes1 {
    #[diesel(sql_type = Binary)]
    a: Vec<u8>,
}

#[derive(QueryableByName)]
struct PreKey {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Bool)]
    uploaded: bool,
}

#[derive(QueryableByName)]
struct Mac {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Binary)]
    index_mac: Vec<u8>,
    #[diesel(sql_type = Binary)]
    value_mac: Vec<u8>,
}

#[derive(QueryableByName)]
struct TwoAndBytes {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Binary)]
    bytes: Vec<u8>,
}

#[derive(QueryableByName)]
struct Three {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Text)]
    c: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Keys {
    fn read(path: &str, device: i32) -> Result<Keys, diesel::result::Error> {
        let mut db = SqliteConnection::establish(path)
            .map_err(|err| diesel::result::Error::QueryBuilderError(Box::new(err)))?;
        let mut rows = |sql: &str| -> Result<Vec<String>, diesel::result::Error> {
            let found: Vec<Named> = diesel::sql_query(sql).bind::<Integer, _>(device).load(&mut db)?;
            Ok(found.into_iter().map(|row| row.a).collect())
        };
        let mut keys = Keys {
            identities: rows("SELECT address AS a FROM identities WHERE device_id = ?")?,
            sessions: rows("SELECT address AS a FROM sessions WHERE device_id = ?")?,
            sender_keys: rows("SELECT address AS a FROM sender_keys WHERE device_id = ?")?,
            app_versions: rows("SELECT name AS a FROM app_state_versions WHERE device_id = ?")?,
            sender_key_groups: rows(
                "SELECT DISTINCT group_jid AS a FROM sender_key_devices WHERE device_id = ?",
            )?,
            device_users: rows("SELECT user_id AS a FROM device_registry WHERE device_id = ?")?,
            groups: rows("SELECT group_jid AS a FROM group_metadata WHERE device_id = ?")?,
            ..Keys::default()
        };
        let sync_keys: Vec<Bytes1> =
            diesel::sql_query("SELECT key_id AS a FROM app_state_keys WHERE device_id = ?")
                .bind::<Integer, _>(device)
                .load(&mut db)?;
        keys.sync_keys = sync_keys.into_iter().map(|row| row.a).collect();
        let prekeys: Vec<PreKey> = diesel::sql_query("SELECT id, uploaded FROM prekeys WHERE device_id = ?")
            .bind::<Integer, _>(device)
            .load(&mut db)?;
        keys.prekeys = prekeys.into_iter().map(|row| (row.id as u32, row.uploaded)).collect();
        let macs: Vec<Mac> = diesel::sql_query(
            "SELECT name, version, index_mac, value_mac FROM app_state_mutation_macs WHERE device_id = ?",
        )
        .bind::<Integer, _>(device)
        .load(&mut db)?;
        for mac in macs {
            keys.mutation_macs
                .entry((mac.name, mac.version as u64))
                .or_default()
                .push(AppStateMutationMAC { index_mac: mac.index_mac, value_mac: mac.value_mac });
        }
        let mut triples = |sql: &str| -> Result<Vec<(String, String, Vec<u8>)>, diesel::result::Error> {
            let found: Vec<TwoAndBytes> = diesel::sql_query(sql).bind::<Integer, _>(device).load(&mut db)?;
            Ok(found.into_iter().map(|row| (row.a, row.b, row.bytes)).collect())
        };
        keys.base_keys = triples(
            "SELECT address AS a, message_id AS b, base_key AS bytes FROM base_keys WHERE device_id = ?",
        )?;
        keys.sent_messages = triples(
            "SELECT chat_jid AS a, message_id AS b, payload AS bytes FROM sent_messages WHERE device_id = ?",
        )?;
        let mut quads = |sql: &str| -> Result<Vec<(String, String, String, i64)>, diesel::result::Error> {
            let found: Vec<Three> = diesel::sql_query(sql).bind::<Integer, _>(device).load(&mut db)?;
            Ok(found.into_iter().map(|row| (row.a, row.b, row.c, row.n)).collect())
        };
        keys.pending_inbound = quads(
            "SELECT chat AS a, sender AS b, id AS c, inserted_at AS n FROM pending_inbound_messages WHERE device_id = ?",
        )?
        .into_iter()
        .map(|(chat, sender, id, _)| (chat, sender, id))
        .collect();
        keys.msg_secrets = quads(
            "SELECT chat AS a, sender AS b, msg_id AS c, expires_at AS n FROM msg_secrets WHERE device_id = ?",
        )?;
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use whatsapp_rust::bytes::Bytes;
    use whatsapp_rust::wacore::store::traits::{
        AppStateSyncKey, DeviceInfo, DeviceListRecord, LidPnMappingEntry, TcTokenEntry,
    };

    use super::*;
    use crate::state::MemoryState;

    /// A `whatsapp.db` as an earlier version left it, with one of everything.
    async fn earlier_store(dir: &Path) {
        let path = dir.join(LOCAL_STORE);
        let old = SqliteStore::new(&path.to_string_lossy()).await.unwrap();
        old.create().await.unwrap();
        let mut device = old.load().await.unwrap().expect("created");
        device.push_name = "Front desk".into();
        device.pn = Some("5511987650001@s.whatsapp.net".parse().unwrap());
        old.save(&device).await.unwrap();
        old.put_identity("5522:1@s.whatsapp.net", [5; 32]).await.unwrap();
        old.put_session("5522.1", b"ratchet").await.unwrap();
        old.store_prekeys_batch(
            &[(7, Bytes::from_static(b"seven")), (8, Bytes::from_static(b"eight"))],
            true,
        )
        .await
        .unwrap();
        old.store_prekey(9, b"nine", false).await.unwrap();
        old.store_signed_prekey(1, b"signed").await.unwrap();
        old.put_sender_key("g@g.us::5522.1", b"sender").await.unwrap();
        let key = |n: u8| AppStateSyncKey { key_data: vec![n; 32], fingerprint: vec![n], timestamp: 5 };
        old.set_sync_key(&[2], key(2)).await.unwrap();
        old.set_sync_key(&[1], key(1)).await.unwrap();
        let mut version = old.get_version("regular").await.unwrap();
        version.version = 3;
        old.set_version("regular", version).await.unwrap();
        let mac = AppStateMutationMAC { index_mac: vec![4; 32], value_mac: vec![6; 8] };
        old.put_mutation_macs("regular", 3, &[mac]).await.unwrap();
        old.set_sender_key_status("g@g.us", &[("5522:1@s.whatsapp.net", true)]).await.unwrap();
        let mapping = LidPnMappingEntry {
            lid: "100".into(),
            phone_number: "5522".into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "usync".into(),
        };
        old.put_lid_mapping(&mapping).await.unwrap();
        old.save_base_key("5522.1", "M1", &[3; 33]).await.unwrap();
        let devices = DeviceListRecord {
            user: "5522".into(),
            devices: vec![DeviceInfo::new(1, Some(1))],
            timestamp: 10,
            phash: None,
            raw_id: None,
        };
        old.update_device_list(devices).await.unwrap();
        old.put_group_metadata("g@g.us", b"meta").await.unwrap();
        let token = TcTokenEntry { token: b"tc".to_vec(), token_timestamp: 11, sender_timestamp: Some(12) };
        old.put_tc_token("5522@s.whatsapp.net", &token).await.unwrap();
        old.store_sent_message("5522@s.whatsapp.net", "S1", b"sent").await.unwrap();
        old.store_pending_inbound("c", "5522@s.whatsapp.net", "P1", b"pending").await.unwrap();
        let secret = MsgSecretEntry {
            chat: "c".into(),
            sender: "5522@s.whatsapp.net".into(),
            msg_id: "M1".into(),
            secret: [8; 32],
            expires_at: 0,
            message_ts: 77,
        };
        old.put_msg_secrets(vec![secret]).await.unwrap();
    }

    #[tokio::test]
    async fn an_earlier_local_store_is_imported_whole_once() {
        let dir = tempfile::tempdir().unwrap();
        earlier_store(dir.path()).await;
        let to = StateBackend::new(Arc::new(MemoryState::default()));
        import_local_store(dir.path(), &to).await.unwrap();

        assert!(!dir.path().join(LOCAL_STORE).exists(), "renamed once imported");
        assert!(dir.path().join(IMPORTED).exists(), "kept as it was, under another name");
        let device = to.load().await.unwrap().expect("the device");
        assert_eq!(device.push_name, "Front desk");
        assert_eq!(device.pn.map(|pn| pn.to_string()).as_deref(), Some("5511987650001@s.whatsapp.net"));
        assert_eq!(to.load_identity("5522:1@s.whatsapp.net").await.unwrap(), Some([5; 32]));
        assert_eq!(to.get_session("5522.1").await.unwrap().as_deref(), Some(&b"ratchet"[..]));
        assert_eq!(to.get_max_prekey_id().await.unwrap(), 9);
        assert_eq!(to.load_prekey(7).await.unwrap().as_deref(), Some(&b"seven"[..]));
        assert_eq!(to.load_signed_prekey(1).await.unwrap(), Some(b"signed".to_vec()));
        assert_eq!(to.get_sender_key("g@g.us::5522.1").await.unwrap(), Some(b"sender".to_vec()));
        assert_eq!(to.get_sync_key(&[2]).await.unwrap().map(|key| key.key_data), Some(vec![2; 32]));
        // The earlier store calls the greatest key id the latest; it stays the latest here.
        assert_eq!(to.get_latest_sync_key_id().await.unwrap(), Some(vec![2]));
        assert_eq!(to.get_version("regular").await.unwrap().version, 3);
        assert_eq!(to.get_mutation_mac("regular", &[4; 32]).await.unwrap(), Some(vec![6; 8]));
        assert_eq!(
            to.get_sender_key_devices("g@g.us").await.unwrap(),
            vec![("5522:1@s.whatsapp.net".to_owned(), true)]
        );
        assert_eq!(to.get_pn_mapping("5522").await.unwrap().map(|m| m.lid), Some("100".into()));
        assert!(to.has_same_base_key("5522.1", "M1", &[3; 33]).await.unwrap());
        assert_eq!(to.get_devices("5522").await.unwrap().map(|d| d.timestamp), Some(10));
        assert_eq!(to.get_group_metadata("g@g.us").await.unwrap(), Some(b"meta".to_vec()));
        assert_eq!(
            to.get_tc_token("5522@s.whatsapp.net").await.unwrap().map(|t| t.sender_timestamp),
            Some(Some(12))
        );
        assert_eq!(to.take_sent_message("5522@s.whatsapp.net", "S1").await.unwrap(), Some(b"sent".to_vec()));
        assert_eq!(
            to.get_pending_inbound("c", "5522@s.whatsapp.net", "P1").await.unwrap(),
            Some(b"pending".to_vec())
        );
        let secret = to.get_msg_secret_with_ts("c", "5522@s.whatsapp.net", "M1").await.unwrap();
        assert_eq!(secret, Some((vec![8; 32], 77)));

        // A second start finds nothing to import, and changes nothing.
        to.put_session("5522.1", b"advanced").await.unwrap();
        import_local_store(dir.path(), &to).await.unwrap();
        assert_eq!(to.get_session("5522.1").await.unwrap().as_deref(), Some(&b"advanced"[..]));
    }

    #[tokio::test]
    async fn a_directory_without_a_local_store_imports_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let to = StateBackend::new(Arc::new(MemoryState::default()));
        import_local_store(&dir.path().join("never-created"), &to).await.unwrap();
        assert!(!DeviceStore::exists(&to).await.unwrap());
    }
}
