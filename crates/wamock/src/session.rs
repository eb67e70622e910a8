//! What happens right after the handshake: a new device is offered QR refs,
//! a known device is logged in (or refused with 401).

use buffa::Message as _;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, SERVER_JID};

use crate::hub::Hub;
use crate::nodes::{now_secs, random_id};
use crate::pairing;
use crate::state::{LoginRefusal, PendingRegistration};

/// How many QR refs a new device gets (the client shows one after another).
const QR_REF_COUNT: usize = 6;

/// Reads the ClientPayload and starts pairing or logs the device in.
pub(crate) fn open(hub: &Hub, connection: u64, client_static: [u8; 32], payload: &[u8]) {
    let Ok(payload) = waproto::whatsapp::ClientPayload::decode_from_slice(payload) else {
        hub.close(connection);
        return;
    };
    if let Some(username) = payload.username {
        let device = payload.device.unwrap_or_default();
        log_in(
            hub,
            connection,
            &username.to_string(),
            u16::try_from(device).unwrap_or(u16::MAX),
            client_static,
        );
        return;
    }
    let Some(registration) = payload.device_pairing_data.as_option() else {
        hub.close(connection);
        return;
    };
    let Some(identity_key) =
        registration.e_ident.as_deref().and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
    else {
        hub.close(connection);
        return;
    };
    let refs: Vec<String> = (0..QR_REF_COUNT).map(|_| format!("2@{}", random_id(16))).collect();
    let offer = pairing::pair_device_iq(&refs);
    let mut world = hub.world();
    if let Some(entry) = world.connections.get_mut(&connection) {
        entry.registration = Some(PendingRegistration { refs, noise_key: client_static, identity_key });
        entry.send(offer);
    }
}

fn log_in(hub: &Hub, connection: u64, phone: &str, device: u16, noise_key: [u8; 32]) {
    let mut world = hub.world();
    let lid = world.accounts.get(phone).and_then(|account| {
        let known = account.devices.get(&device)?;
        (known.noise_key == noise_key).then(|| account.lid.clone())
    });
    let refusal = world.refusals.get(phone).copied();
    let logged_in_elsewhere = world.connections.iter().any(|(other, entry)| {
        *other != connection
            && !entry.closed_by_client
            && entry.session.as_ref().is_some_and(|(p, d)| p == phone && *d == device)
    });
    if lid.is_some() && refusal.is_none() && logged_in_elsewhere {
        world.overlapping_logins.push(phone.to_owned());
    }
    let Some(entry) = world.connections.get_mut(&connection) else {
        return;
    };
    if let Some(refusal) = refusal {
        entry.send(refusal_node(refusal));
        let _ = entry.outbound.send(crate::state::Outbound::Close);
        return;
    }
    match lid {
        Some(lid) => {
            entry.session = Some((phone.to_owned(), device));
            entry.send(success_node(&lid));
        }
        None => {
            entry.send(failure_node(401));
            let _ = entry.outbound.send(crate::state::Outbound::Close);
        }
    }
}

fn success_node(lid: &str) -> Node {
    NodeBuilder::new("success")
        .attr("t", now_secs())
        .attr("lid", Jid::lid(lid))
        .attr("location", "wamock")
        .attr("props", "1")
        .build()
}

/// `<failure reason=…/>`: the server refuses the login.
pub(crate) fn failure_node(reason: u16) -> Node {
    NodeBuilder::new("failure").attr("reason", reason).attr("location", "wamock").build()
}

fn refusal_node(refusal: LoginRefusal) -> Node {
    match refusal {
        LoginRefusal::Banned { code, expire_secs } => NodeBuilder::new("failure")
            .attr("reason", 402u16)
            .attr("code", code)
            .attr("expire", expire_secs)
            .attr("location", "wamock")
            .build(),
        LoginRefusal::Outdated => failure_node(405),
    }
}

/// `<stream:error><conflict type="replaced"/></stream:error>`: another client took over.
pub(crate) fn stream_replaced() -> Node {
    NodeBuilder::new("stream:error")
        .children([NodeBuilder::new("conflict").attr("type", "replaced").build()])
        .build()
}

/// `<stream:error code=…/>`: the server ends the session.
pub(crate) fn stream_error(code: u16) -> Node {
    NodeBuilder::new("stream:error").attr("code", code).build()
}

/// `<ib><offline count="0"/></ib>`: tells the client the offline backlog is
/// done (without it the client waits a minute before `Connected`).
pub(crate) fn offline_done(count: usize) -> Node {
    NodeBuilder::new("ib")
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("offline").attr("count", count).build()])
        .build()
}
