//! Routes each stanza a client sends to the module that answers it.

use std::sync::Arc;

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::hub::Hub;
use crate::nodes::{attr, child, children, iq_result};
use crate::session::offline_done;
use crate::{messages, pairing, prekeys, usync};

/// Handles one decrypted stanza from a connection.
pub(crate) async fn dispatch(hub: &Arc<Hub>, connection: u64, node: Node) {
    match node.tag.as_ref() {
        "iq" => handle_iq(hub, connection, &node).await,
        "message" => messages::handle_outgoing(hub, connection, &node).await,
        // Receipts, acks, presence, chat states and `ib` need no answer.
        _ => {}
    }
}

async fn handle_iq(hub: &Arc<Hub>, connection: u64, iq: &Node) {
    let kind = attr(iq, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        pairing::on_iq_result(hub, connection, iq);
        return;
    }
    let session = hub.world().connections.get(&connection).and_then(|entry| entry.session.clone());
    let namespace = attr(iq, "xmlns").unwrap_or_default();
    let answer = match namespace.as_str() {
        "passive" if child(iq, "active").is_some() => {
            hub.send_to(connection, iq_result(iq).build());
            flush_offline_queue(hub, connection, session);
            return;
        }
        "encrypt" => prekeys::handle(hub, session, iq).await,
        "usync" => usync::answer(hub, iq),
        "w:sync:app:state" => echo_app_state_collections(iq),
        "abt" if child(iq, "props").is_some() => iq_result(iq)
            .children([NodeBuilder::new("props").attr("protocol", "1").attr("hash", "wamock").build()])
            .build(),
        "privacy" if child(iq, "privacy").is_some() => {
            iq_result(iq).children([NodeBuilder::new("privacy").build()]).build()
        }
        "w:g2" if child(iq, "participating").is_some() => {
            iq_result(iq).children([NodeBuilder::new("groups").build()]).build()
        }
        "md" if child(iq, "link_code_companion_reg").is_some() => pairing::answer_pairing_code_request(iq),
        _ => iq_result(iq).build(),
    };
    hub.send_to(connection, answer);
}

/// Answers an app-state sync with every requested collection at version 0
/// and no patches: the client then counts them as synced (an empty result
/// or an error leaves them pending and `Connected` never fires).
fn echo_app_state_collections(iq: &Node) -> Node {
    let collections: Vec<Node> = child(iq, "sync")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|collection| collection.tag == "collection")
        .filter_map(|collection| {
            Some(
                NodeBuilder::new("collection")
                    .attr("name", attr(collection, "name")?)
                    .attr("version", 0u64)
                    .build(),
            )
        })
        .collect();
    iq_result(iq).children([NodeBuilder::new("sync").children(collections).build()]).build()
}

/// After the client went active: queued messages, then the end of the
/// offline backlog (the client waits for it before `Connected`).
fn flush_offline_queue(hub: &Hub, connection: u64, session: Option<(String, u16)>) {
    let mut world = hub.world();
    let queued = session
        .and_then(|(phone, device)| world.device_mut(&phone, device))
        .map(|linked| std::mem::take(&mut linked.offline_queue))
        .unwrap_or_default();
    let Some(entry) = world.connections.get(&connection) else {
        return;
    };
    let count = queued.len();
    for stanza in queued {
        entry.send(stanza);
    }
    entry.send(offline_done(count));
}
