//! Linking a new device: QR refs, the phone's scan (`pair-success` with a
//! signed ADV identity), the client's `pair-device-sign`, and the 515 restart.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use buffa::Message as _;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::oneshot;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID};
use waproto::whatsapp as wa;

use crate::hub::Hub;
use crate::nodes::{attr, child, now_secs, random_id};
use crate::phone;
use crate::session::stream_error;
use crate::state::{LinkedDevice, PairingInFlight};
use crate::{MockAccount, MockError};

/// Prefix of the message the phone's account key signs (ADV, E2EE account).
const ACCOUNT_SIGNATURE_PREFIX: [u8; 2] = [6, 0];

/// How long `scan` waits for the client's `pair-device-sign`.
const SIGN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause before the 515: sent at once, the client sometimes treats the
/// disconnect of the *next* connection as expected and drops it once.
const RESTART_DELAY: Duration = Duration::from_millis(300);

/// `<iq type=set xmlns=md><pair-device><ref>…</ref>…</pair-device></iq>`.
pub(crate) fn pair_device_iq(refs: &[String]) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", random_id(8))
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device")
            .children(
                refs.iter().map(|pairing_ref| NodeBuilder::new("ref").bytes(pairing_ref.as_bytes()).build()),
            )
            .build()])
        .build()
}

/// What the phone reads from a QR code.
struct ScannedQr {
    pairing_ref: String,
    noise_key: Vec<u8>,
    identity_key: Vec<u8>,
    adv_secret: Vec<u8>,
}

fn read_qr(qr: &str) -> Result<ScannedQr, MockError> {
    let fields: Vec<&str> = qr.split(',').collect();
    let (Some(pairing_ref), Some(noise), Some(identity), Some(adv)) =
        (fields.first(), fields.get(1), fields.get(2), fields.get(3))
    else {
        return Err(MockError::InvalidQr);
    };
    let decode = |field: &str| BASE64_STANDARD.decode(field).map_err(|_| MockError::InvalidQr);
    Ok(ScannedQr {
        pairing_ref: pairing_ref.to_string(),
        noise_key: decode(noise)?,
        identity_key: decode(identity)?,
        adv_secret: decode(adv)?,
    })
}

/// The phone scans `qr`: sends `pair-success` to the connection showing it
/// and waits until the client signed its identity.
pub(crate) async fn scan(hub: &Hub, qr: &str, account: &MockAccount) -> Result<(), MockError> {
    let scanned = read_qr(qr)?;
    let (done_tx, done_rx) = oneshot::channel();
    {
        let mut world = hub.world();
        let connection = world
            .connections
            .iter()
            .find(|(_, entry)| {
                entry.registration.as_ref().is_some_and(|registration| {
                    registration.refs.contains(&scanned.pairing_ref)
                        && registration.noise_key.as_slice() == scanned.noise_key.as_slice()
                        && registration.identity_key.as_slice() == scanned.identity_key.as_slice()
                })
            })
            .map(|(id, _)| *id)
            .ok_or(MockError::UnknownQr)?;
        let primary_identity = phone::ensure_account(hub, &mut world, account);
        let device = world
            .accounts
            .get(&account.phone)
            .and_then(|known| known.devices.keys().next_back().copied())
            .unwrap_or_default()
            + 1;
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(rand::random()),
            timestamp: Some(now_secs()),
            key_index: Some(u32::from(device)),
            ..Default::default()
        }
        .encode_to_vec();
        let mut signed_message = ACCOUNT_SIGNATURE_PREFIX.to_vec();
        signed_message.extend_from_slice(&details);
        signed_message.extend_from_slice(&scanned.identity_key);
        let account_signature = primary_identity
            .private_key()
            .calculate_signature(&signed_message, &mut rand::rng())
            .map_err(|error| MockError::Crypto(error.to_string()))?;
        let signed_identity = wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(primary_identity.public_key().public_key_bytes().to_vec()),
            account_signature: Some(account_signature.to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&scanned.adv_secret)
            .map_err(|_| MockError::InvalidQr)?;
        mac.update(&signed_identity);
        let container = wa::ADVSignedDeviceIdentityHMAC {
            details: Some(signed_identity),
            hmac: Some(mac.finalize().into_bytes().to_vec()),
            ..Default::default()
        }
        .encode_to_vec();

        let request_id = random_id(8);
        let success = pair_success_iq(&request_id, container, account, device);
        let Some(entry) = world.connections.get_mut(&connection) else {
            return Err(MockError::UnknownQr);
        };
        let Some(registration) = entry.registration.take() else {
            return Err(MockError::UnknownQr);
        };
        entry.pairing = Some(PairingInFlight {
            request_id,
            phone: account.phone.clone(),
            device,
            noise_key: registration.noise_key,
            done: done_tx,
        });
        entry.send(success);
    }
    match tokio::time::timeout(SIGN_TIMEOUT, done_rx).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(MockError::Disconnected),
        Err(_) => Err(MockError::Timeout),
    }
}

fn pair_success_iq(request_id: &str, identity: Vec<u8>, account: &MockAccount, device: u16) -> Node {
    NodeBuilder::new("iq")
        .attr("from", SERVER_JID)
        .attr("type", "set")
        .attr("id", request_id)
        .attr("xmlns", "md")
        .attr("t", now_secs())
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(identity).build(),
                NodeBuilder::new("platform").attr("name", "android").build(),
                NodeBuilder::new("device")
                    .attr("jid", Jid::pn_device(account.phone.as_str(), device))
                    .attr("lid", Jid::lid_device(account.lid.as_str(), device))
                    .build(),
                // The client takes this as its push name, so a restart from a
                // kept store needs no app-state sync to learn it.
                NodeBuilder::new("biz").attr("name", account.push_name.as_str()).build(),
            ])
            .build()])
        .build()
}

/// The client answered an IQ; if it is the `pair-device-sign` for a pairing
/// in flight, link the device and restart the stream with a 515.
pub(crate) fn on_iq_result(hub: &Arc<Hub>, connection: u64, iq: &Node) {
    let mut world = hub.world();
    let Some(entry) = world.connections.get_mut(&connection) else {
        return;
    };
    let is_signature = child(iq, "pair-device-sign").is_some();
    let matches = entry
        .pairing
        .as_ref()
        .is_some_and(|pairing| attr(iq, "id").as_deref() == Some(pairing.request_id.as_str()));
    if !is_signature || !matches {
        return;
    }
    let Some(pairing) = entry.pairing.take() else {
        return;
    };
    if let Some(account) = world.accounts.get_mut(&pairing.phone) {
        account.devices.insert(
            pairing.device,
            LinkedDevice {
                noise_key: pairing.noise_key,
                keys: None,
                awaits_key_share: true,
                offline_queue: Vec::new(),
            },
        );
    }
    drop(world);
    let _ = pairing.done.send(());
    let hub = Arc::clone(hub);
    tokio::spawn(async move {
        tokio::time::sleep(RESTART_DELAY).await;
        hub.send_to(connection, stream_error(515));
        hub.close(connection);
    });
}

/// Answers stage one of phone-number pairing (`companion_hello`) with a
/// pairing ref, which makes the client show its code. The phone side of the
/// flow (`primary_hello`, `companion_finish`) is not simulated.
pub(crate) fn answer_pairing_code_request(request: &Node) -> Node {
    crate::nodes::iq_result(request)
        .children([NodeBuilder::new("link_code_companion_reg")
            .children([NodeBuilder::new("link_code_pairing_ref").bytes(random_id(16).into_bytes()).build()])
            .build()])
        .build()
}
