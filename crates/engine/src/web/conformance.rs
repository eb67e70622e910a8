//! One suite of cases for the WhatsApp client's storage `Backend`, run against the client's own
//! in-memory backend (which shows that the expectations are the client's) and against ours on
//! each database. Every case starts from an empty backend.

use std::future::Future;
use std::sync::Arc;

use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry, TcTokenEntry,
};

/// Runs every case, each on a backend `fresh` makes; panics on the first that fails.
pub async fn run<B, F, Fut>(fresh: F)
where
    B: Backend,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    identities(&fresh().await).await;
    sessions(&fresh().await).await;
    prekeys(&fresh().await).await;
    signed_prekeys(&fresh().await).await;
    sender_keys(&fresh().await).await;
    app_state(&fresh().await).await;
    mutation_macs(&fresh().await).await;
    sender_key_devices(&fresh().await).await;
    lid_mappings(&fresh().await).await;
    base_keys_and_devices(&fresh().await).await;
    tc_tokens(&fresh().await).await;
    sent_and_pending(&fresh().await).await;
    msg_secrets(&fresh().await).await;
    device(&fresh().await).await;
}

async fn identities<B: Backend>(b: &B) {
    assert_eq!(b.load_identity("111@s.whatsapp.net").await.unwrap(), None);
    assert!(!b.has_signal_state_for_user("111").await.unwrap());
    b.put_identity("111:2@s.whatsapp.net", [1; 32]).await.unwrap();
    b.put_identities_batch(&[(Arc::from("222@lid"), [2; 32]), (Arc::from("111:2@s.whatsapp.net"), [3; 32])])
        .await
        .unwrap();
    assert_eq!(
        b.load_identity("111:2@s.whatsapp.net").await.unwrap(),
        Some([3; 32]),
        "the batch overwrote it"
    );
    assert_eq!(b.load_identity("222@lid").await.unwrap(), Some([2; 32]));
    assert!(b.has_signal_state_for_user("111").await.unwrap(), "found by user and device");
    assert!(b.has_signal_state_for_user("222").await.unwrap(), "found by user and server");
    assert!(!b.has_signal_state_for_user("11").await.unwrap(), "a shorter user is another user");
    b.delete_identity("222@lid").await.unwrap();
    assert_eq!(b.load_identity("222@lid").await.unwrap(), None);
    assert!(!b.has_signal_state_for_user("222").await.unwrap());
}

async fn sessions<B: Backend>(b: &B) {
    assert!(!b.has_session("333.0").await.unwrap());
    b.put_session("333.0", b"first").await.unwrap();
    // One address twice in a batch: the later record stands.
    let batch = [
        (Arc::from("333.0"), Bytes::from_static(b"second")),
        (Arc::from("444.1"), Bytes::from_static(b"x")),
        (Arc::from("333.0"), Bytes::from_static(b"third")),
    ];
    b.put_sessions_batch(&batch).await.unwrap();
    assert_eq!(b.get_session("333.0").await.unwrap().as_deref(), Some(&b"third"[..]));
    assert!(b.has_session("444.1").await.unwrap());
    b.delete_session("333.0").await.unwrap();
    assert_eq!(b.get_session("333.0").await.unwrap(), None);
}

async fn prekeys<B: Backend>(b: &B) {
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 0);
    b.store_prekey(9, b"nine", false).await.unwrap();
    b.store_prekeys_batch(&[(10, Bytes::from_static(b"ten")), (100, Bytes::from_static(b"hundred"))], true)
        .await
        .unwrap();
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 100, "compared as numbers");
    assert_eq!(b.load_prekey(10).await.unwrap().as_deref(), Some(&b"ten"[..]));
    let batch = b.load_prekeys_batch(&[100, 7, 9]).await.unwrap();
    let batch: Vec<(u32, &[u8])> = batch.iter().map(|(id, record)| (*id, record.as_ref())).collect();
    assert_eq!(batch, vec![(100, &b"hundred"[..]), (9, &b"nine"[..])], "the ids asked for, in order");
    b.remove_prekey(9).await.unwrap();
    b.mark_prekeys_uploaded(&[9, 10]).await.unwrap();
    assert_eq!(b.load_prekey(9).await.unwrap(), None, "marking does not bring back a removed key");
    assert_eq!(b.load_prekey(10).await.unwrap().as_deref(), Some(&b"ten"[..]));
    b.remove_prekey(100).await.unwrap();
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 10);
}

async fn signed_prekeys<B: Backend>(b: &B) {
    b.store_signed_prekey(2, b"two").await.unwrap();
    b.store_signed_prekey(11, b"eleven").await.unwrap();
    assert_eq!(b.load_signed_prekey(11).await.unwrap(), Some(b"eleven".to_vec()));
    let mut all = b.load_all_signed_prekeys().await.unwrap();
    all.sort();
    assert_eq!(all, vec![(2, b"two".to_vec()), (11, b"eleven".to_vec())]);
    b.remove_signed_prekey(2).await.unwrap();
    assert_eq!(b.load_signed_prekey(2).await.unwrap(), None);
}

async fn sender_keys<B: Backend>(b: &B) {
    b.put_sender_key("g1@g.us::555.0", b"one").await.unwrap();
    b.put_sender_keys_batch(&[(Arc::from("g1@g.us::555.0"), Bytes::from_static(b"two"))]).await.unwrap();
    assert_eq!(b.get_sender_key("g1@g.us::555.0").await.unwrap(), Some(b"two".to_vec()));
    b.delete_sender_key("g1@g.us::555.0").await.unwrap();
    assert_eq!(b.get_sender_key("g1@g.us::555.0").await.unwrap(), None);
}

async fn app_state<B: Backend>(b: &B) {
    assert!(b.get_sync_key(&[1, 2]).await.unwrap().is_none());
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), None);
    let key =
        |n: u8| AppStateSyncKey { key_data: vec![n; 32], fingerprint: vec![n, n], timestamp: i64::from(n) };
    b.set_sync_key(&[1, 2], key(1)).await.unwrap();
    b.set_sync_key(&[0, 9], key(2)).await.unwrap();
    let stored = b.get_sync_key(&[1, 2]).await.unwrap().expect("stored");
    assert_eq!((stored.key_data, stored.fingerprint, stored.timestamp), (vec![1; 32], vec![1, 1], 1));
    assert_eq!(b.get_latest_sync_key_id().await.unwrap(), Some(vec![0, 9]), "the one set last");

    assert_eq!(b.get_version("regular").await.unwrap().version, 0, "an unknown collection starts at 0");
    let mut state = HashState { version: 7, ..HashState::default() };
    state.hash[0] = 42;
    state.index_value_map.insert("index".into(), vec![1, 2, 3]);
    b.set_version("regular", state).await.unwrap();
    let back = b.get_version("regular").await.unwrap();
    assert_eq!((back.version, back.hash[0]), (7, 42));
    assert_eq!(back.index_value_map.get("index"), Some(&vec![1, 2, 3]));
}

async fn mutation_macs<B: Backend>(b: &B) {
    let mac = |i: u8, v: u8| AppStateMutationMAC { index_mac: vec![i; 32], value_mac: vec![v; 8] };
    b.put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20)]).await.unwrap();
    b.put_mutation_macs("critical", 1, &[mac(1, 30)]).await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[1; 32]).await.unwrap(), Some(vec![10; 8]));
    assert_eq!(b.get_mutation_mac("critical", &[1; 32]).await.unwrap(), Some(vec![30; 8]), "per collection");
    let found = b.get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found.get(&[2; 32]), Some(&vec![20; 8]));
    b.delete_mutation_macs("regular", &[vec![1; 32]]).await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[1; 32]).await.unwrap(), None);
    b.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(b.get_mutation_mac("regular", &[2; 32]).await.unwrap(), None);
    assert_eq!(
        b.get_mutation_mac("critical", &[1; 32]).await.unwrap(),
        Some(vec![30; 8]),
        "only the named one"
    );
}

async fn sender_key_devices<B: Backend>(b: &B) {
    let sorted = |mut devices: Vec<(String, bool)>| {
        devices.sort();
        devices
    };
    b.set_sender_key_status("g1@g.us", &[("1:1@s.whatsapp.net", true), ("2:0@s.whatsapp.net", false)])
        .await
        .unwrap();
    b.set_sender_key_status("g2@g.us", &[("1:1@s.whatsapp.net", false)]).await.unwrap();
    b.set_sender_key_status("g1@g.us", &[("2:0@s.whatsapp.net", true)]).await.unwrap();
    assert_eq!(
        sorted(b.get_sender_key_devices("g1@g.us").await.unwrap()),
        vec![("1:1@s.whatsapp.net".into(), true), ("2:0@s.whatsapp.net".into(), true)]
    );
    b.delete_sender_key_device_rows(&["1:1@s.whatsapp.net"]).await.unwrap();
    assert_eq!(
        sorted(b.get_sender_key_devices("g1@g.us").await.unwrap()),
        vec![("2:0@s.whatsapp.net".into(), true)]
    );
    assert!(b.get_sender_key_devices("g2@g.us").await.unwrap().is_empty(), "gone from every group");
    b.clear_sender_key_devices("g1@g.us").await.unwrap();
    assert!(b.get_sender_key_devices("g1@g.us").await.unwrap().is_empty());
    b.set_sender_key_status("g3@g.us", &[("3:0@s.whatsapp.net", true)]).await.unwrap();
    b.clear_all_sender_key_devices().await.unwrap();
    assert!(b.get_sender_key_devices("g3@g.us").await.unwrap().is_empty());
}

async fn lid_mappings<B: Backend>(b: &B) {
    let mapping = |lid: &str, phone: &str| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: 1,
        updated_at: 2,
        learning_source: "usync".into(),
    };
    b.put_lid_mapping(&mapping("100", "5511")).await.unwrap();
    b.put_lid_mappings(&[mapping("200", "5522")]).await.unwrap();
    assert_eq!(b.get_lid_mapping("100").await.unwrap().map(|m| m.phone_number), Some("5511".into()));
    assert_eq!(b.get_pn_mapping("5522").await.unwrap().map(|m| m.lid), Some("200".into()));
    b.put_lid_mapping(&mapping("100", "5533")).await.unwrap();
    assert!(b.get_pn_mapping("5511").await.unwrap().is_none(), "the LID's old number leads nowhere");
    assert_eq!(b.get_pn_mapping("5533").await.unwrap().map(|m| m.lid), Some("100".into()));
    let mut all: Vec<String> = b.get_all_lid_mappings().await.unwrap().into_iter().map(|m| m.lid).collect();
    all.sort();
    assert_eq!(all, vec!["100".to_owned(), "200".to_owned()]);
}

async fn base_keys_and_devices<B: Backend>(b: &B) {
    b.save_base_key("555.0", "M1", &[7; 33]).await.unwrap();
    assert!(b.has_same_base_key("555.0", "M1", &[7; 33]).await.unwrap());
    assert!(!b.has_same_base_key("555.0", "M1", &[8; 33]).await.unwrap());
    assert!(!b.has_same_base_key("555.0", "M2", &[7; 33]).await.unwrap());
    b.delete_base_key("555.0", "M1").await.unwrap();
    assert!(!b.has_same_base_key("555.0", "M1", &[7; 33]).await.unwrap());

    let record = DeviceListRecord {
        user: "5511".into(),
        devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(3, Some(2)).with_hosting(true)],
        timestamp: 1_700_000_000,
        phash: Some("2:abc".into()),
        raw_id: Some(9),
    };
    b.update_device_list(record).await.unwrap();
    let back = b.get_devices("5511").await.unwrap().expect("stored");
    assert_eq!((back.devices.len(), back.devices[1].device_id, back.devices[1].is_hosted), (2, 3, true));
    assert_eq!((back.phash.as_deref(), back.raw_id), (Some("2:abc"), Some(9)));
    b.delete_devices("5511").await.unwrap();
    assert!(b.get_devices("5511").await.unwrap().is_none());

    b.put_group_metadata("g@g.us", b"meta").await.unwrap();
    assert_eq!(b.get_group_metadata("g@g.us").await.unwrap(), Some(b"meta".to_vec()));
    b.delete_group_metadata("g@g.us").await.unwrap();
    assert_eq!(b.get_group_metadata("g@g.us").await.unwrap(), None);
}

async fn tc_tokens<B: Backend>(b: &B) {
    let token = |token: &[u8], at: i64, sender: Option<i64>| TcTokenEntry {
        token: token.to_vec(),
        token_timestamp: at,
        sender_timestamp: sender,
    };
    b.put_tc_token("old@s.whatsapp.net", &token(b"t", 100, None)).await.unwrap();
    b.put_tc_token("fresh@s.whatsapp.net", &token(b"t", 1_000, None)).await.unwrap();
    b.put_tc_token("sender@s.whatsapp.net", &token(b"t", 100, Some(1_000))).await.unwrap();
    b.touch_tc_token_sender_timestamp("new@s.whatsapp.net", 50).await.unwrap();
    let placeholder = b.get_tc_token("new@s.whatsapp.net").await.unwrap().expect("a placeholder");
    assert!(placeholder.token.is_empty());
    assert_eq!(placeholder.sender_timestamp, Some(50));
    b.store_received_tc_token("fresh@s.whatsapp.net", b"stale", 900).await.unwrap();
    assert_eq!(
        b.get_tc_token("fresh@s.whatsapp.net").await.unwrap().unwrap().token,
        b"t",
        "a fresher token stays"
    );
    let mut jids = b.get_all_tc_token_jids().await.unwrap();
    jids.sort();
    assert_eq!(jids.len(), 4);
    assert_eq!(b.delete_expired_tc_tokens(500, 500).await.unwrap(), 2, "old, and the placeholder");
    let mut jids = b.get_all_tc_token_jids().await.unwrap();
    jids.sort();
    assert_eq!(jids, vec!["fresh@s.whatsapp.net".to_owned(), "sender@s.whatsapp.net".to_owned()]);
    b.delete_tc_token("fresh@s.whatsapp.net").await.unwrap();
    assert!(b.get_tc_token("fresh@s.whatsapp.net").await.unwrap().is_none());
}

async fn sent_and_pending<B: Backend>(b: &B) {
    b.store_sent_message("c@s.whatsapp.net", "M1", b"payload").await.unwrap();
    b.store_sent_message("c@s.whatsapp.net", "M2", b"other").await.unwrap();
    assert_eq!(b.take_sent_message("c@s.whatsapp.net", "M1").await.unwrap(), Some(b"payload".to_vec()));
    assert_eq!(b.take_sent_message("c@s.whatsapp.net", "M1").await.unwrap(), None, "taken once");
    assert_eq!(b.take_sent_message("d@s.whatsapp.net", "M2").await.unwrap(), None, "per chat");
    assert_eq!(b.delete_expired_sent_messages(0).await.unwrap(), 0, "younger than the cutoff");
    assert_eq!(b.delete_expired_sent_messages(i64::MAX).await.unwrap(), 1);
    assert_eq!(b.take_sent_message("c@s.whatsapp.net", "M2").await.unwrap(), None);

    b.store_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "I1", b"decrypted").await.unwrap();
    let pending = b.get_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "I1").await.unwrap();
    assert_eq!(pending, Some(b"decrypted".to_vec()));
    assert_eq!(b.get_pending_inbound("c@s.whatsapp.net", "t@s.whatsapp.net", "I1").await.unwrap(), None);
    b.delete_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "I1").await.unwrap();
    assert_eq!(b.get_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "I1").await.unwrap(), None);
    b.store_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "I2", b"x").await.unwrap();
    assert_eq!(b.delete_expired_pending_inbound(0).await.unwrap(), 0);
    assert_eq!(b.delete_expired_pending_inbound(i64::MAX).await.unwrap(), 1);
}

async fn msg_secrets<B: Backend>(b: &B) {
    let secret = |chat: &str, id: &str, byte: u8, expires_at: i64, message_ts: i64| MsgSecretEntry {
        chat: chat.into(),
        sender: "s@s.whatsapp.net".into(),
        msg_id: id.into(),
        secret: [byte; 32],
        expires_at,
        message_ts,
    };
    let stored = b
        .put_msg_secrets(vec![
            secret("c1", "M1", 1, 100, 10),
            secret("c1", "M2", 2, 0, 0),
            secret("c2", "M1", 3, 500, 0),
        ])
        .await
        .unwrap();
    assert_eq!(stored, 3);
    assert_eq!(b.get_msg_secret("c1", "s@s.whatsapp.net", "M1").await.unwrap(), Some(vec![1; 32]));
    assert_eq!(b.get_msg_secret("c1", "t@s.whatsapp.net", "M1").await.unwrap(), None, "keyed by sender too");
    // Written again: the new secret, the later time; an expiry stays "never" once it is.
    b.put_msg_secrets(vec![secret("c1", "M1", 4, 300, 5), secret("c1", "M2", 5, 50, 20)]).await.unwrap();
    assert_eq!(
        b.get_msg_secret_with_ts("c1", "s@s.whatsapp.net", "M1").await.unwrap(),
        Some((vec![4; 32], 10))
    );
    assert_eq!(
        b.get_msg_secret_with_ts("c1", "s@s.whatsapp.net", "M2").await.unwrap(),
        Some((vec![5; 32], 20))
    );
    assert_eq!(b.delete_expired_msg_secrets(299).await.unwrap(), 0, "M1 now expires at 300");
    assert_eq!(b.delete_expired_msg_secrets(1_000).await.unwrap(), 2, "all but the one that never expires");
    assert_eq!(b.get_msg_secret("c1", "s@s.whatsapp.net", "M2").await.unwrap(), Some(vec![5; 32]));
}

async fn device<B: Backend>(b: &B) {
    assert!(!b.exists().await.unwrap());
    assert!(b.load().await.unwrap().is_none());
    b.create().await.unwrap();
    assert!(b.exists().await.unwrap());
    let mut device = b.load().await.unwrap().expect("created");
    device.push_name = "Front desk".into();
    device.registration_id = 4242;
    device.pn = Some("5511987650001@s.whatsapp.net".parse().unwrap());
    b.save(&device).await.unwrap();
    let back = b.load().await.unwrap().expect("saved");
    assert_eq!((back.push_name.as_str(), back.registration_id), ("Front desk", 4242));
    assert_eq!(back.pn, device.pn);
    assert_eq!(back.identity_key.public_key, device.identity_key.public_key, "the keys survive");
    assert_eq!(back.adv_secret_key, device.adv_secret_key);
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::wacore::store::InMemoryBackend;

    use super::*;
    use crate::state::MemoryState;
    use crate::web::backend::StateBackend;

    /// The cases say what the client expects: its own backend passes them.
    #[tokio::test]
    async fn the_clients_in_memory_backend_passes() {
        run(|| async { InMemoryBackend::new() }).await;
    }

    #[tokio::test]
    async fn our_backend_passes_on_state_in_memory() {
        run(|| async { StateBackend::new(Arc::new(MemoryState::default())) }).await;
    }
}
