//! The client's protocol store (sender-key devices, LID mappings, device lists, base keys,
//! sent and pending messages, tokens) and its message secrets, on the session's state.

use std::collections::HashMap;

use async_trait::async_trait;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, MsgSecretStore, ProtocolStore, TcTokenEntry,
    merge_msg_secret_expiry, merge_msg_secret_message_ts,
};
use whatsapp_rust::wacore::time::now_secs;

use super::{StateBackend, decode, encode, failed, pair, space};
use crate::state::{StateChange, StateEntry, StateRows};

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
