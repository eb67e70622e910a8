//! The fake phones: each contact's device and each account's primary phone.
//! They encrypt messages to linked devices with the keys those uploaded.

use std::sync::Arc;

use tokio::sync::Mutex as AsyncMutex;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use wacore_libsignal::protocol::{
    DeviceId, IdentityKey, IdentityKeyPair, PreKeyBundle, PreKeyId, ProtocolAddress, PublicKey,
    SignedPreKeyId,
};
use waproto::whatsapp as wa;

use crate::hub::Hub;
use crate::keys::seeded_rng;
use crate::nodes::{now_secs, random_id};
use crate::signal_store::SignalDevice;
use crate::state::{Account, Contact, SharedDevice, UploadedKeys, World};
use crate::{MockAccount, MockContact, MockError};

/// A LID user part derived from the seed, stable for a phone number.
pub(crate) fn derived_lid(seed: &[u8; 32], phone: &str) -> String {
    use rand::Rng;
    let value = seeded_rng(seed, &format!("lid:{phone}")).next_u64();
    format!("{}", 100_000_000_000_000 + value % 900_000_000_000_000)
}

/// The account for `account`, created (with its primary phone) on first use.
/// Returns the primary phone's identity.
pub(crate) fn ensure_account(hub: &Hub, world: &mut World, account: &MockAccount) -> IdentityKeyPair {
    if let Some(known) = world.accounts.get(&account.phone) {
        return known.primary_identity.clone();
    }
    let device =
        SignalDevice::generate(&mut seeded_rng(&hub.config.seed, &format!("phone:{}", account.phone)));
    let identity = device.identity_key_pair().clone();
    world.phone_by_lid.insert(account.lid.clone(), account.phone.clone());
    world.accounts.insert(
        account.phone.clone(),
        Account {
            phone: account.phone.clone(),
            lid: account.lid.clone(),
            primary: Arc::new(AsyncMutex::new(device)),
            primary_identity: identity.clone(),
            devices: Default::default(),
        },
    );
    identity
}

/// Registers a contact (idempotent) and returns its public description.
pub(crate) fn add_contact(hub: &Hub, phone: &str, business: bool) -> MockContact {
    let mut world = hub.world();
    if let Some(known) = world.contacts.get_mut(phone) {
        known.business |= business;
        return MockContact { phone: known.phone.clone(), lid: known.lid.clone(), business: known.business };
    }
    let lid = derived_lid(&hub.config.seed, phone);
    let device = SignalDevice::generate(&mut seeded_rng(&hub.config.seed, &format!("contact:{phone}")));
    world.phone_by_lid.insert(lid.clone(), phone.to_owned());
    world.contacts.insert(
        phone.to_owned(),
        Contact {
            phone: phone.to_owned(),
            lid: lid.clone(),
            business,
            device: Arc::new(AsyncMutex::new(device)),
        },
    );
    MockContact { phone: phone.to_owned(), lid, business }
}

/// The Signal address fake phones use for a linked device.
pub(crate) fn linked_device_address(account_lid: &str, device: u16) -> ProtocolAddress {
    ProtocolAddress::new(account_lid, DeviceId::from(u32::from(device)))
}

fn bundle_from_upload(
    keys: &UploadedKeys,
    one_time: Option<(u32, [u8; 32])>,
    device: u16,
) -> Result<PreKeyBundle, MockError> {
    let crypto =
        |error: wacore_libsignal::protocol::SignalProtocolError| MockError::Crypto(error.to_string());
    let key = |bytes: &[u8; 32]| {
        PublicKey::from_djb_public_key_bytes(bytes).map_err(|e| MockError::Crypto(e.to_string()))
    };
    let one_time = match one_time {
        Some((id, public)) => Some((PreKeyId::from(id), key(&public)?)),
        None => None,
    };
    PreKeyBundle::new(
        keys.registration_id,
        DeviceId::from(u32::from(device)),
        one_time,
        SignedPreKeyId::from(keys.signed_pre_key_id),
        key(&keys.signed_pre_key)?,
        keys.signed_pre_key_signature.clone(),
        IdentityKey::new(key(&keys.identity)?),
    )
    .map_err(crypto)
}

/// Encrypts `plaintext` from a fake phone to one linked device, starting a
/// session from the device's uploaded keys when there is none yet.
async fn encrypt_for_device(
    hub: &Hub,
    sender: &SharedDevice,
    phone: &str,
    device: u16,
    plaintext: &[u8],
) -> Result<(&'static str, Vec<u8>), MockError> {
    let mut signal = sender.lock().await;
    let (address, bundle) = {
        let mut world = hub.world();
        let lid = world.lid_of(phone).ok_or(MockError::UnknownAccount)?;
        let address = linked_device_address(&lid, device);
        let bundle = if signal.has_session(&address) {
            None
        } else {
            let linked = world.device_mut(phone, device).ok_or(MockError::NotLinked)?;
            let keys = linked.keys.as_mut().ok_or(MockError::NotLinked)?;
            let one_time = keys.one_time_pre_keys.pop_front();
            Some(bundle_from_upload(keys, one_time, device)?)
        };
        (address, bundle)
    };
    if let Some(bundle) = bundle {
        signal.start_session(&address, &bundle).await.map_err(|e| MockError::Crypto(e.to_string()))?;
    }
    signal.encrypt(&address, plaintext).await.map_err(|e| MockError::Crypto(e.to_string()))
}

/// Sends `stanza` to the device's live connections, or keeps it for its
/// next login.
pub(crate) fn deliver(hub: &Hub, phone: &str, device: u16, stanza: Node) {
    let mut world = hub.world();
    let mut delivered = false;
    for entry in world.connections_of(phone, device) {
        entry.send(stanza.clone());
        delivered = true;
    }
    if !delivered && let Some(linked) = world.device_mut(phone, device) {
        linked.offline_queue.push(stanza);
    }
}

/// A contact sends a text to every linked device of an account.
pub(crate) async fn send_text(
    hub: &Hub,
    from_contact: &str,
    to_account: &str,
    text: &str,
) -> Result<String, MockError> {
    let (sender, contact_lid, devices) = {
        let world = hub.world();
        let contact = world.contacts.get(from_contact).ok_or(MockError::UnknownContact)?;
        let account = world.accounts.get(to_account).ok_or(MockError::UnknownAccount)?;
        let devices: Vec<u16> =
            account.devices.iter().filter(|(_, linked)| linked.keys.is_some()).map(|(id, _)| *id).collect();
        (contact.device.clone(), contact.lid.clone(), devices)
    };
    if devices.is_empty() {
        return Err(MockError::NotLinked);
    }
    let message = wa::Message { conversation: Some(text.to_owned()), ..Default::default() };
    let plaintext = wacore::messages::MessageUtils::encode_and_pad(&message);
    let id = format!("3EB0{}", random_id(8));
    for device in devices {
        let (enc_type, ciphertext) = encrypt_for_device(hub, &sender, to_account, device, &plaintext).await?;
        let stanza = NodeBuilder::new("message")
            .attr("from", Jid::pn(from_contact))
            .attr("id", id.as_str())
            .attr("type", "text")
            .attr("t", now_secs())
            .attr("notify", from_contact)
            .attr("sender_lid", Jid::lid(contact_lid.as_str()))
            .children([enc_node(enc_type, ciphertext)])
            .build();
        deliver(hub, to_account, device, stanza);
    }
    Ok(id)
}

fn enc_node(enc_type: &str, ciphertext: Vec<u8>) -> Node {
    NodeBuilder::new("enc").attr("v", "2").attr("type", enc_type).bytes(ciphertext).build()
}

/// The primary phone shares an app-state sync key with a freshly linked
/// device, as the real phone does; the client otherwise waits 10 s for it
/// before its first `Connected`.
pub(crate) async fn share_app_state_key(hub: Arc<Hub>, phone: String, device: u16) {
    let Some(primary) = hub.world().accounts.get(&phone).map(|account| account.primary.clone()) else {
        return;
    };
    let share = wa::message::AppStateSyncKeyShare {
        keys: vec![wa::message::AppStateSyncKey {
            key_id: buffa::MessageField::some(wa::message::AppStateSyncKeyId {
                key_id: Some(random_id(6).into_bytes()),
            }),
            key_data: buffa::MessageField::some(wa::message::AppStateSyncKeyData {
                key_data: Some(rand::random::<[u8; 32]>().to_vec()),
                fingerprint: buffa::MessageField::some(wa::message::AppStateSyncKeyFingerprint {
                    raw_id: Some(rand::random()),
                    current_index: Some(0),
                    device_indexes: vec![0, u32::from(device)],
                }),
                timestamp: Some(i64::try_from(now_secs() * 1000).unwrap_or_default()),
            }),
        }],
    };
    let message = wa::Message {
        protocol_message: buffa::MessageField::some(wa::message::ProtocolMessage {
            r#type: Some(wa::message::protocol_message::Type::APP_STATE_SYNC_KEY_SHARE),
            app_state_sync_key_share: buffa::MessageField::some(share),
            ..Default::default()
        }),
        ..Default::default()
    };
    let plaintext = wacore::messages::MessageUtils::encode_and_pad(&message);
    let encrypted = encrypt_for_device(&hub, &primary, &phone, device, &plaintext).await;
    let (enc_type, ciphertext) = match encrypted {
        Ok(encrypted) => encrypted,
        Err(error) => {
            tracing::warn!("wamock: app-state key share failed: {error}");
            return;
        }
    };
    let stanza = NodeBuilder::new("message")
        .attr("from", Jid::pn(phone.as_str()))
        .attr("id", format!("3EB0{}", random_id(8)))
        .attr("type", "text")
        .attr("category", "peer")
        .attr("t", now_secs())
        .children([enc_node(enc_type, ciphertext)])
        .build();
    deliver(&hub, &phone, device, stanza);
}
