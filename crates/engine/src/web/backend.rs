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
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MsgSecretEntry,
    MsgSecretStore, ProtocolStore, SignalStore, TcTokenEntry, merge_msg_secret_expiry,
    merge_msg_secret_message_ts,
};
use whatsapp_rust::wacore::time::now_secs;

use crate::state::{SessionState, StateChange, StateEntry, StateError, StateRows};

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
impl ProtocolStore for StateBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let entries = self.state.list(space::SENDER_KEY_DEVICE, Some(group_jid)).await.map_err(failed)?;
        Ok(entries.into_iter().map(|entry| (entry.name, entry.stamp != 0)).collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|(device, has_key)| {
                StateEntry::new(space::SENDER_KEY_DEVICE, group_jid, device, Vec::new(), i64::from(*has_key))
            })
            .collect();
        self.put(entries).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let rows =
            StateRows { space: space::SENDER_KEY_DEVICE.into(), scope: Some(group_jid.into()), names: None };
        self.change(vec![StateChange::Delete(rows)]).await.map(drop)
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let names = device_jids.iter().map(|jid| (*jid).to_owned()).collect();
        let rows = StateRows { space: space::SENDER_KEY_DEVICE.into(), scope: None, names: Some(names) };
        self.change(vec![StateChange::Delete(rows)]).await.map(drop)
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let rows = StateRows { space: space::SENDER_KEY_DEVICE.into(), scope: None, names: None };
        self.change(vec![StateChange::Delete(rows)]).await.map(drop)
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.json(space::LID, lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let Some(lid) = self.bytes(space::PHONE, "", phone).await? else { return Ok(None) };
        let lid = String::from_utf8(lid).map_err(|err| StoreError::Serialization(Box::new(err)))?;
        self.get_lid_mapping(&lid).await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let mut changes = Vec::with_capacity(entries.len() * 2);
        for entry in entries {
            // The LID's earlier phone number no longer leads to it.
            if let Some(old) = self.get_lid_mapping(&entry.lid).await?
                && old.phone_number != entry.phone_number
            {
                changes.push(StateChange::Delete(StateRows::one(space::PHONE, "", &old.phone_number)));
            }
            changes.push(StateChange::Put(vec![
                StateEntry::new(space::PHONE, "", &entry.phone_number, entry.lid.as_bytes().to_vec(), 0),
                StateEntry::new(space::LID, "", &entry.lid, encode(entry)?, 0),
            ]));
        }
        self.change(changes).await.map(drop)
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let entries = self.state.list(space::LID, None).await.map_err(failed)?;
        entries.iter().map(|entry| decode(&entry.value)).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put_one(space::BASE_KEY, address, message_id, base_key.to_vec(), now_secs()).await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .bytes(space::BASE_KEY, address, message_id)
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(space::BASE_KEY, address, message_id).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let entries = records
            .iter()
            .map(|record| {
                Ok(StateEntry::new(space::DEVICES, "", &record.user, encode(record)?, record.timestamp))
            })
            .collect::<Result<Vec<_>>>()?;
        self.put(entries).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.json(space::DEVICES, user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(space::DEVICES, "", user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.bytes(space::GROUP, "", group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put_one(space::GROUP, "", group_jid, blob.to_vec(), now_secs()).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(space::GROUP, "", group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.json(space::TC_TOKEN, jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.put_one(space::TC_TOKEN, "", jid, encode(entry)?, entry.token_timestamp).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete(space::TC_TOKEN, "", jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let entries = self.state.list(space::TC_TOKEN, None).await.map_err(failed)?;
        Ok(entries.into_iter().map(|entry| entry.name).collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        // A token is kept while either of its windows is live; one per contact, so few.
        let mut expired = Vec::new();
        for entry in self.state.list(space::TC_TOKEN, None).await.map_err(failed)? {
            let token: TcTokenEntry = decode(&entry.value)?;
            let token_live = !token.token.is_empty() && token.token_timestamp >= token_cutoff;
            let sender_live = token.sender_timestamp.is_some_and(|at| at >= sender_cutoff);
            if !token_live && !sender_live {
                expired.push(entry.name);
            }
        }
        let deleted = expired.len();
        if deleted > 0 {
            self.change(vec![StateChange::Delete(StateRows::named(space::TC_TOKEN, "", expired))]).await?;
        }
        Ok(u32::try_from(deleted).unwrap_or(u32::MAX))
    }

    async fn store_sent_message(&self, chat_jid: &str, message_id: &str, payload: &[u8]) -> Result<()> {
        self.put_one(space::SENT, chat_jid, message_id, payload.to_vec(), now_secs()).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let taken = self.state.take(space::SENT, chat_jid, message_id).await.map_err(failed)?;
        Ok(taken.map(|entry| entry.value))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.delete_stamped(space::SENT, i64::MIN, cutoff_timestamp).await
    }

    async fn store_pending_inbound(&self, chat: &str, sender: &str, id: &str, message: &[u8]) -> Result<()> {
        self.put_one(space::PENDING_INBOUND, chat, &pair(sender, id), message.to_vec(), now_secs()).await
    }

    async fn get_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<Option<Vec<u8>>> {
        self.bytes(space::PENDING_INBOUND, chat, &pair(sender, id)).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(space::PENDING_INBOUND, chat, &pair(sender, id)).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.delete_stamped(space::PENDING_INBOUND, i64::MIN, cutoff_timestamp).await
    }
}

/// A message secret's value: the secret, then the message's time (8 bytes, big-endian).
fn secret_value(secret: &[u8], message_ts: i64) -> Vec<u8> {
    let mut value = secret.to_vec();
    value.extend_from_slice(&message_ts.to_be_bytes());
    value
}

fn split_secret(value: &[u8]) -> Result<(Vec<u8>, i64)> {
    let Some(split) = value.len().checked_sub(8) else {
        return Err(StoreError::Validation(format!("message secret of {} bytes", value.len())));
    };
    let (secret, ts) = value.split_at(split);
    Ok((secret.to_vec(), i64::from_be_bytes(ts.try_into().expect("eight bytes"))))
}

#[async_trait]
impl MsgSecretStore for StateBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        // Merged with what is there: an expiry is kept if either is "never", a time the later.
        let mut merged: HashMap<(String, String), (Vec<u8>, i64, i64)> = HashMap::with_capacity(stored);
        for entry in entries {
            let key = (entry.chat.to_string(), pair(&entry.sender, &entry.msg_id));
            let (expires_at, message_ts) = match merged.get(&key) {
                Some((_, expires, ts)) => (
                    merge_msg_secret_expiry(*expires, entry.expires_at),
                    merge_msg_secret_message_ts(*ts, entry.message_ts),
                ),
                None => match self.value(space::MSG_SECRET, &key.0, &key.1).await? {
                    Some(stored) => {
                        let (_, ts) = split_secret(&stored.value)?;
                        (
                            merge_msg_secret_expiry(stored.stamp, entry.expires_at),
                            merge_msg_secret_message_ts(ts, entry.message_ts),
                        )
                    }
                    None => (entry.expires_at, entry.message_ts),
                },
            };
            merged.insert(key, (entry.secret.to_vec(), expires_at, message_ts));
        }
        let rows = merged
            .into_iter()
            .map(|((chat, name), (secret, expires_at, message_ts))| {
                StateEntry::new(
                    space::MSG_SECRET,
                    &chat,
                    &name,
                    secret_value(&secret, message_ts),
                    expires_at,
                )
            })
            .collect();
        self.put(rows).await?;
        Ok(stored)
    }

    async fn get_msg_secret(&self, chat: &str, sender: &str, msg_id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        match self.bytes(space::MSG_SECRET, chat, &pair(sender, msg_id)).await? {
            Some(value) => Ok(Some(split_secret(&value)?)),
            None => Ok(None),
        }
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        // Expiry 0 is "never": only 1..=cutoff goes.
        self.delete_stamped(space::MSG_SECRET, 1, cutoff_timestamp.saturating_add(1)).await
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
