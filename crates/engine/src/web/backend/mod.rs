//! The WhatsApp client's storage (`Backend`: Signal, app-state, protocol, message-secret and
//! device stores) on a session's [`SessionState`], so that a linked device's credentials and
//! keys live in wagate's database and any node can run the session.
//!
//! Each of the client's tables is a space; its keys become a scope and a name (numbers
//! zero-padded so that they compare as numbers), its blobs the value, and its one timestamp or
//! flag the stamp. Structured values are JSON.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore, DeviceStore, SignalStore};

use crate::state::{SessionState, StateChange, StateEntry, StateError, StateRows};

mod protocol;

mod space {
    pub const IDENTITY: &str = "identity";
    pub const SESSION: &str = "session";
    /// Stamp: 1 once uploaded to the server.
    pub const PREKEY: &str = "prekey";
    pub const SIGNED_PREKEY: &str = "signed_prekey";
    pub const SENDER_KEY: &str = "sender_key";
    pub const SYNC_KEY: &str = "sync_key";
    /// One entry: the id of the sync key set last.
    pub const LATEST_SYNC_KEY: &str = "sync_key_latest";
    pub const APP_VERSION: &str = "app_version";
    /// Scope: the collection. Stamp: the version that wrote it.
    pub const MUTATION_MAC: &str = "mutation_mac";
    /// Scope: the group. Stamp: 1 when the device has the sender key.
    pub const SENDER_KEY_DEVICE: &str = "sender_key_device";
    pub const LID: &str = "lid";
    /// Phone number → LID (the reverse index of `lid`).
    pub const PHONE: &str = "phone";
    /// Scope: the address.
    pub const BASE_KEY: &str = "base_key";
    pub const DEVICES: &str = "devices";
    pub const GROUP: &str = "group_metadata";
    pub const TC_TOKEN: &str = "tc_token";
    /// Scope: the chat. Stamp: when it was stored (seconds).
    pub const SENT: &str = "sent_message";
    /// Scope: the chat. Stamp: when it was stored (seconds).
    pub const PENDING_INBOUND: &str = "pending_inbound";
    /// Scope: the chat. Stamp: when it expires (seconds; 0: never).
    pub const MSG_SECRET: &str = "msg_secret";
    pub const DEVICE: &str = "device";
}

/// The client's storage for one session.
#[derive(Clone)]
pub struct StateBackend {
    state: Arc<dyn SessionState>,
}

impl StateBackend {
    pub fn new(state: Arc<dyn SessionState>) -> Self {
        Self { state }
    }

    async fn value(&self, space: &str, scope: &str, name: &str) -> Result<Option<StateEntry>> {
        Ok(self.state.get(space, scope, &[name]).await.map_err(failed)?.pop())
    }

    async fn bytes(&self, space: &str, scope: &str, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.value(space, scope, name).await?.map(|entry| entry.value))
    }

    async fn json<T: DeserializeOwned>(&self, space: &str, name: &str) -> Result<Option<T>> {
        self.bytes(space, "", name).await?.map(|bytes| decode(&bytes)).transpose()
    }

    async fn change(&self, changes: Vec<StateChange>) -> Result<Vec<u64>> {
        self.state.change(changes).await.map_err(failed)
    }

    async fn put(&self, entries: Vec<StateEntry>) -> Result<()> {
        self.change(vec![StateChange::Put(entries)]).await.map(drop)
    }

    async fn put_one(&self, space: &str, scope: &str, name: &str, value: Vec<u8>, stamp: i64) -> Result<()> {
        self.put(vec![StateEntry::new(space, scope, name, value, stamp)]).await
    }

    async fn delete(&self, space: &str, scope: &str, name: &str) -> Result<()> {
        self.change(vec![StateChange::Delete(StateRows::one(space, scope, name))]).await.map(drop)
    }

    async fn delete_stamped(&self, space: &str, from: i64, below: i64) -> Result<u32> {
        let counts =
            self.change(vec![StateChange::DeleteStamped { space: space.into(), from, below }]).await?;
        Ok(counts.first().copied().unwrap_or_default().try_into().unwrap_or(u32::MAX))
    }
}

fn failed(err: StateError) -> StoreError {
    StoreError::Database(Box::new(err))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|err| StoreError::Serialization(Box::new(err)))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|err| StoreError::Serialization(Box::new(err)))
}

/// A numeric id as a name that sorts as the number does.
fn number(id: u32) -> String {
    format!("{id:010}")
}

fn parse_number(name: &str) -> Result<u32> {
    name.parse().map_err(|_| StoreError::Validation(format!("`{name}` is not a stored key id")))
}

/// The name of an entry keyed by two strings within a scope.
fn pair(first: &str, second: &str) -> String {
    format!("{first}|{second}")
}

#[async_trait]
impl SignalStore for StateBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_one(space::IDENTITY, "", address, key.to_vec(), 0).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let entries = identities
            .iter()
            .map(|(address, key)| StateEntry::new(space::IDENTITY, "", address, key.to_vec(), 0))
            .collect();
        self.put(entries).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let Some(bytes) = self.bytes(space::IDENTITY, "", address).await? else { return Ok(None) };
        let key = bytes.try_into().map_err(|bytes: Vec<u8>| {
            StoreError::Validation(format!("identity key of {} bytes", bytes.len()))
        })?;
        Ok(Some(key))
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(space::IDENTITY, "", address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.bytes(space::SESSION, "", address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_one(space::SESSION, "", address, session.to_vec(), 0).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries = sessions
            .iter()
            .map(|(address, record)| StateEntry::new(space::SESSION, "", address, record.to_vec(), 0))
            .collect();
        self.put(entries).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(space::SESSION, "", address).await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        if user.contains(['%', '_', '\\']) {
            return Ok(true); // not a WhatsApp user; cannot be looked up by prefix, so assume so
        }
        let prefixes = [format!("{user}@"), format!("{user}:")];
        let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        self.state.any_prefixed(&[space::SESSION, space::IDENTITY], &prefixes).await.map_err(failed)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.put_one(space::PREKEY, "", &number(id), record.to_vec(), i64::from(uploaded)).await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let entries = keys
            .iter()
            .map(|(id, record)| {
                StateEntry::new(space::PREKEY, "", &number(*id), record.to_vec(), i64::from(uploaded))
            })
            .collect();
        self.put(entries).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.bytes(space::PREKEY, "", &number(id)).await?.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let names: Vec<String> = ids.iter().map(|id| number(*id)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = self.state.get(space::PREKEY, "", &names).await.map_err(failed)?;
        let mut by_id: HashMap<u32, Bytes> = HashMap::with_capacity(found.len());
        for entry in found {
            by_id.insert(parse_number(&entry.name)?, Bytes::from(entry.value));
        }
        Ok(ids.iter().filter_map(|id| by_id.get(id).map(|record| (*id, record.clone()))).collect())
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let rows = StateRows::named(space::PREKEY, "", ids.iter().map(|id| number(*id)).collect());
        self.change(vec![StateChange::Restamp { rows, stamp: 1 }]).await.map(drop)
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete(space::PREKEY, "", &number(id)).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        match self.state.max_name(space::PREKEY).await.map_err(failed)? {
            Some(name) => parse_number(&name),
            None => Ok(0),
        }
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put_one(space::SIGNED_PREKEY, "", &number(id), record.to_vec(), 0).await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.bytes(space::SIGNED_PREKEY, "", &number(id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let entries = self.state.list(space::SIGNED_PREKEY, None).await.map_err(failed)?;
        entries.into_iter().map(|entry| Ok((parse_number(&entry.name)?, entry.value))).collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(space::SIGNED_PREKEY, "", &number(id)).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_one(space::SENDER_KEY, "", address, record.to_vec(), 0).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries = sender_keys
            .iter()
            .map(|(address, record)| StateEntry::new(space::SENDER_KEY, "", address, record.to_vec(), 0))
            .collect();
        self.put(entries).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.bytes(space::SENDER_KEY, "", address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(space::SENDER_KEY, "", address).await
    }
}

#[async_trait]
impl AppSyncStore for StateBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.json(space::SYNC_KEY, &hex::encode(key_id)).await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.put(vec![
            StateEntry::new(space::SYNC_KEY, "", &hex::encode(key_id), encode(&key)?, 0),
            StateEntry::new(space::LATEST_SYNC_KEY, "", "", key_id.to_vec(), 0),
        ])
        .await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self.json(space::APP_VERSION, name).await?.unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put_one(space::APP_VERSION, "", name, encode(&state)?, 0).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let version = i64::try_from(version).unwrap_or(i64::MAX);
        let entries = mutations
            .iter()
            .map(|mac| {
                StateEntry::new(
                    space::MUTATION_MAC,
                    name,
                    &hex::encode(&mac.index_mac),
                    mac.value_mac.clone(),
                    version,
                )
            })
            .collect();
        self.put(entries).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.bytes(space::MUTATION_MAC, name, &hex::encode(index_mac)).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let names: Vec<String> = index_macs.iter().map(hex::encode).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let found = self.state.get(space::MUTATION_MAC, name, &names).await.map_err(failed)?;
        let mut macs = HashMap::with_capacity(found.len());
        for entry in found {
            let mut index = [0u8; 32];
            hex::decode_to_slice(&entry.name, &mut index)
                .map_err(|_| StoreError::Validation(format!("stored index MAC `{}`", entry.name)))?;
            macs.insert(index, entry.value);
        }
        Ok(macs)
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let rows = StateRows::named(space::MUTATION_MAC, name, index_macs.iter().map(hex::encode).collect());
        self.change(vec![StateChange::Delete(rows)]).await.map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let rows = StateRows { space: space::MUTATION_MAC.into(), scope: Some(name.into()), names: None };
        self.change(vec![StateChange::Delete(rows)]).await.map(drop)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.bytes(space::LATEST_SYNC_KEY, "", "").await
    }
}

#[async_trait]
impl DeviceStore for StateBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        self.put_one(space::DEVICE, "", "", encode(device)?, 0).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        self.json(space::DEVICE, "").await
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.value(space::DEVICE, "", "").await?.is_some())
    }

    async fn create(&self) -> Result<i32> {
        if !DeviceStore::exists(self).await? {
            self.save(&Device::new()).await?;
        }
        // One device per session: its id within the session is always the same.
        Ok(1)
    }
}
