//! Messages a linked device sends: the server's ack (or 463 nack), the
//! recipient phone's decryption, and its delivered/read receipts.

use std::sync::Arc;
use std::time::Duration;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node};
use waproto::whatsapp as wa;

use crate::ReceivedMessage;
use crate::hub::Hub;
use crate::nodes::{attr, child, children, content_bytes, jid_attr, now_secs};
use crate::phone::linked_device_address;
use crate::state::{Party, SharedDevice};

/// How long after `delivered` the contact "reads" a message.
const READ_DELAY: Duration = Duration::from_millis(50);

/// The `enc` version whose plaintext padding we strip.
const ENC_VERSION: u8 = 2;

/// One `<enc>` addressed to a fake phone.
struct Ciphertext {
    reader: SharedDevice,
    to_contact: bool,
    enc_type: String,
    bytes: Vec<u8>,
}

/// Handles `<message>` from a logged-in connection.
pub(crate) async fn handle_outgoing(hub: &Arc<Hub>, connection: u64, message: &Node) {
    let (Some(to), Some(id)) = (jid_attr(message, "to"), attr(message, "id")) else {
        return;
    };
    let Some((sender_phone, sender_device)) =
        hub.world().connections.get(&connection).and_then(|entry| entry.session.clone())
    else {
        return;
    };

    let (recipient_phone, restricted, sender_lid, ciphertexts) = {
        let world = hub.world();
        let recipient_phone = world.phone_of(&to);
        let restricted = recipient_phone.as_ref().is_some_and(|phone| world.restricted.contains(phone));
        let sender_lid = world.lid_of(&sender_phone).unwrap_or_default();
        let ciphertexts = collect_ciphertexts(&world, &to, message);
        (recipient_phone, restricted, sender_lid, ciphertexts)
    };

    let mut ack = NodeBuilder::new("ack")
        .attr("class", "message")
        .attr("id", id.as_str())
        .attr("from", to.clone())
        .attr("t", now_secs());
    if restricted {
        ack = ack.attr("error", 463u16);
    }
    hub.send_to(connection, ack.build());
    if restricted {
        return;
    }

    let sender_address = linked_device_address(&sender_lid, sender_device);
    let mut delivered_to_contact = false;
    for ciphertext in ciphertexts {
        let plaintext = ciphertext
            .reader
            .lock()
            .await
            .decrypt(&sender_address, &ciphertext.enc_type, &ciphertext.bytes)
            .await;
        let plaintext = match plaintext {
            Ok(plaintext) => plaintext,
            Err(error) => {
                tracing::warn!("wamock: could not decrypt message {id}: {error}");
                continue;
            }
        };
        if !ciphertext.to_contact {
            continue;
        }
        let Ok(decoded) = wacore::messages::decode_plaintext(&plaintext, ENC_VERSION) else {
            tracing::warn!("wamock: message {id} is not a valid padded Message");
            continue;
        };
        delivered_to_contact = true;
        hub.record_received(ReceivedMessage {
            id: id.clone(),
            from: sender_phone.clone(),
            to: recipient_phone.clone().unwrap_or_default(),
            text: text_of(&decoded),
            message: decoded,
        });
    }

    if delivered_to_contact && hub.config.auto_receipts {
        hub.send_to(connection, receipt(&to, &id, None));
        let hub = Arc::clone(hub);
        tokio::spawn(async move {
            tokio::time::sleep(READ_DELAY).await;
            hub.send_to(connection, receipt(&to, &id, Some("read")));
        });
    }
}

/// A receipt from the recipient: delivered (no type) or `read`.
fn receipt(from: &Jid, id: &str, receipt_type: Option<&str>) -> Node {
    let mut receipt =
        NodeBuilder::new("receipt").attr("from", from.clone()).attr("id", id).attr("t", now_secs());
    if let Some(receipt_type) = receipt_type {
        receipt = receipt.attr("type", receipt_type);
    }
    receipt.build()
}

/// The `<enc>` payloads meant for fake phones: per device under
/// `<participants><to jid>`, or directly under the message.
fn collect_ciphertexts(world: &crate::state::World, to: &Jid, message: &Node) -> Vec<Ciphertext> {
    let mut addressed: Vec<(Jid, &Node)> = Vec::new();
    if let Some(participants) = child(message, "participants") {
        for target in children(participants).iter().filter(|n| n.tag == "to") {
            if let (Some(jid), Some(enc)) = (jid_attr(target, "jid"), child(target, "enc")) {
                addressed.push((jid, enc));
            }
        }
    }
    for enc in children(message).iter().filter(|n| n.tag == "enc") {
        addressed.push((to.clone(), enc));
    }
    addressed
        .into_iter()
        .filter_map(|(jid, enc)| {
            let (reader, to_contact) = match world.party(&jid)? {
                Party::Contact(contact) if jid.device == 0 => (contact.device.clone(), true),
                Party::Account(account) if jid.device == 0 => (account.primary.clone(), false),
                _ => return None,
            };
            Some(Ciphertext {
                reader,
                to_contact,
                enc_type: attr(enc, "type")?,
                bytes: content_bytes(enc)?.to_vec(),
            })
        })
        .collect()
}

/// The visible text of a message, for the common text kinds.
fn text_of(message: &wa::Message) -> Option<String> {
    if let Some(text) = &message.conversation {
        return Some(text.clone());
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        return extended.text.clone();
    }
    None
}
