//! The `encrypt` namespace: prekey uploads from linked devices, prekey
//! fetches for fake phones (and linked devices), counts and digests.

use std::collections::VecDeque;
use std::sync::Arc;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};

use crate::hub::Hub;
use crate::nodes::{child, children, content_bytes, iq_error, iq_result, jid_attr};
use crate::phone;
use crate::signal_store::PublishedBundle;
use crate::state::{Party, SharedDevice, UploadedKeys};

/// Handles an `iq xmlns=encrypt` from a logged-in device.
pub(crate) async fn handle(hub: &Arc<Hub>, session: Option<(String, u16)>, iq: &Node) -> Node {
    if child(iq, "registration").is_some() {
        return store_upload(hub, session, iq);
    }
    if let Some(request) = child(iq, "key") {
        return answer_fetch(hub, iq, request).await;
    }
    if child(iq, "count").is_some() {
        let count = session
            .and_then(|(phone, device)| {
                let mut world = hub.world();
                let keys = world.device_mut(&phone, device)?.keys.as_ref()?;
                Some(keys.one_time_pre_keys.len())
            })
            .unwrap_or_default();
        return iq_result(iq).children([NodeBuilder::new("count").attr("value", count).build()]).build();
    }
    if child(iq, "digest").is_some() {
        let has_keys = session.is_some_and(|(phone, device)| {
            hub.world().device_mut(&phone, device).is_some_and(|linked| linked.keys.is_some())
        });
        // 404 makes the client upload its keys again (e.g. after the mock
        // restarted); with keys on file an empty result skips the check.
        return if has_keys { iq_result(iq).build() } else { iq_error(iq, 404, "item-not-found") };
    }
    iq_result(iq).build()
}

fn store_upload(hub: &Arc<Hub>, session: Option<(String, u16)>, iq: &Node) -> Node {
    let Some((phone, device)) = session else {
        return iq_error(iq, 401, "not-authorized");
    };
    let Some(keys) = parse_upload(iq) else {
        return iq_error(iq, 400, "bad-request");
    };
    let share_key = {
        let mut world = hub.world();
        match world.device_mut(&phone, device) {
            Some(linked) => {
                linked.keys = Some(keys);
                std::mem::take(&mut linked.awaits_key_share)
            }
            None => false,
        }
    };
    if share_key {
        tokio::spawn(phone::share_app_state_key(Arc::clone(hub), phone, device));
    }
    iq_result(iq).build()
}

/// Reads `<registration/><type/><identity/><list><key>…</key></list><skey/>`.
fn parse_upload(iq: &Node) -> Option<UploadedKeys> {
    let registration = content_bytes(child(iq, "registration")?)?;
    let registration_id = u32::from_be_bytes(registration.try_into().ok()?);
    let identity = key32(content_bytes(child(iq, "identity")?)?)?;
    let signed = child(iq, "skey")?;
    let one_time_pre_keys: VecDeque<(u32, [u8; 32])> = child(iq, "list")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter_map(|key| {
            let id = key_id(content_bytes(child(key, "id")?)?)?;
            Some((id, key32(content_bytes(child(key, "value")?)?)?))
        })
        .collect();
    Some(UploadedKeys {
        registration_id,
        identity,
        signed_pre_key_id: key_id(content_bytes(child(signed, "id")?)?)?,
        signed_pre_key: key32(content_bytes(child(signed, "value")?)?)?,
        signed_pre_key_signature: content_bytes(child(signed, "signature")?)?.to_vec(),
        one_time_pre_keys,
    })
}

fn key32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

/// A 3-byte big-endian key id.
fn key_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [a, b, c] => Some(u32::from_be_bytes([0, *a, *b, *c])),
        _ => None,
    }
}

fn id_bytes(id: u32) -> Vec<u8> {
    id.to_be_bytes()[1..].to_vec()
}

/// Where a requested JID's keys come from.
enum KeySource {
    Fake(SharedDevice),
    Linked(Box<PublishedBundle>),
    Unknown,
}

async fn answer_fetch(hub: &Hub, iq: &Node, request: &Node) -> Node {
    let mut users = Vec::new();
    for user in children(request).iter().filter(|user| user.tag == "user") {
        let Some(jid) = jid_attr(user, "jid") else {
            continue;
        };
        let source = key_source(hub, &jid);
        let bundle = match source {
            KeySource::Fake(device) => Some(device.lock().await.publish_bundle()),
            KeySource::Linked(bundle) => Some(*bundle),
            KeySource::Unknown => None,
        };
        users.push(match bundle {
            Some(bundle) => bundle_node(&jid, &bundle),
            None => NodeBuilder::new("user")
                .attr("jid", jid)
                .children([NodeBuilder::new("error")
                    .attr("code", 404)
                    .attr("text", "item-not-found")
                    .build()])
                .build(),
        });
    }
    iq_result(iq).children([NodeBuilder::new("list").children(users).build()]).build()
}

fn key_source(hub: &Hub, jid: &Jid) -> KeySource {
    let mut world = hub.world();
    let linked_phone = match world.party(jid) {
        Some(Party::Contact(contact)) if jid.device == 0 => {
            return KeySource::Fake(contact.device.clone());
        }
        Some(Party::Account(account)) if jid.device == 0 => {
            return KeySource::Fake(account.primary.clone());
        }
        Some(Party::Account(account)) => account.phone.clone(),
        _ => return KeySource::Unknown,
    };
    let Some(keys) = world.device_mut(&linked_phone, jid.device).and_then(|linked| linked.keys.as_mut())
    else {
        return KeySource::Unknown;
    };
    let one_time_pre_key = keys.one_time_pre_keys.pop_front().unwrap_or((0, [0; 32]));
    KeySource::Linked(Box::new(PublishedBundle {
        registration_id: keys.registration_id,
        identity: keys.identity,
        signed_pre_key_id: keys.signed_pre_key_id,
        signed_pre_key: keys.signed_pre_key,
        signed_pre_key_signature: keys.signed_pre_key_signature.clone(),
        one_time_pre_key,
    }))
}

fn bundle_node(jid: &Jid, bundle: &PublishedBundle) -> Node {
    let bytes_node = |tag: &'static str, bytes: Vec<u8>| NodeBuilder::new(tag).bytes(bytes).build();
    let (one_time_id, one_time_key) = bundle.one_time_pre_key;
    let mut parts = vec![
        bytes_node("registration", bundle.registration_id.to_be_bytes().to_vec()),
        bytes_node("type", vec![5]),
        bytes_node("identity", bundle.identity.to_vec()),
        NodeBuilder::new("skey")
            .children([
                bytes_node("id", id_bytes(bundle.signed_pre_key_id)),
                bytes_node("value", bundle.signed_pre_key.to_vec()),
                bytes_node("signature", bundle.signed_pre_key_signature.clone()),
            ])
            .build(),
    ];
    if one_time_id != 0 {
        parts.push(
            NodeBuilder::new("key")
                .children([
                    bytes_node("id", id_bytes(one_time_id)),
                    bytes_node("value", one_time_key.to_vec()),
                ])
                .build(),
        );
    }
    NodeBuilder::new("user").attr("jid", jid.clone()).children(parts).build()
}
