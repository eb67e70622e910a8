//! The `usync` namespace: number checks, LID lookups and device lists.
//!
//! Every known user (account or contact) has exactly one device, id 0: an
//! account's own companions are not listed, which spares the signed
//! `<key-index-list>` a companion list would need.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent};

use crate::hub::Hub;
use crate::nodes::{child, children, content_bytes, iq_result, jid_attr};
use crate::state::{Party, World};

/// Answers a usync query.
pub(crate) fn answer(hub: &Hub, iq: &Node) -> Node {
    let Some(usync) = child(iq, "usync") else {
        return iq_result(iq).build();
    };
    let protocols: Vec<&str> = child(usync, "query")
        .map(children)
        .unwrap_or_default()
        .iter()
        .map(|protocol| protocol.tag.as_ref())
        .collect();
    let world = hub.world();
    let users: Vec<Node> = child(usync, "list")
        .map(children)
        .unwrap_or_default()
        .iter()
        .filter(|user| user.tag == "user")
        .filter_map(requested_jid)
        .map(|jid| user_result(&world, &jid, &protocols))
        .collect();
    let list = NodeBuilder::new("list").children(users).build();
    let echoed = Node::new("usync", usync.attrs.clone(), Some(NodeContent::Nodes(vec![list])));
    iq_result(iq).children([echoed]).build()
}

/// The JID a `<user>` asks about: its `jid`, or the `+digits` of its
/// `<contact>` child (a number check).
fn requested_jid(user: &Node) -> Option<Jid> {
    if let Some(jid) = jid_attr(user, "jid") {
        return Some(jid.to_non_ad());
    }
    let number = content_bytes(child(user, "contact")?)?;
    let digits: String = String::from_utf8_lossy(number).chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| Jid::pn(digits))
}

fn user_result(world: &World, jid: &Jid, protocols: &[&str]) -> Node {
    let party = world.party(jid);
    let (phone, lid, business) = match &party {
        Some(Party::Account(account)) => (account.phone.clone(), account.lid.clone(), false),
        Some(Party::Contact(contact)) => (contact.phone.clone(), contact.lid.clone(), contact.business),
        None => (String::new(), String::new(), false),
    };
    let known = party.is_some();
    let mut results = Vec::new();
    for protocol in protocols {
        match *protocol {
            "contact" => results
                .push(NodeBuilder::new("contact").attr("type", if known { "in" } else { "out" }).build()),
            "lid" if known => {
                results.push(NodeBuilder::new("lid").attr("val", Jid::lid(lid.as_str())).build())
            }
            "devices" if known => results.push(
                NodeBuilder::new("devices")
                    .children([NodeBuilder::new("device-list")
                        .children([NodeBuilder::new("device").attr("id", 0u16).build()])
                        .build()])
                    .build(),
            ),
            "business" if business => results.push(NodeBuilder::new("business").build()),
            _ => {}
        }
    }
    let mut user = NodeBuilder::new("user").attr("jid", jid.clone());
    if known && jid.is_lid() {
        user = user.attr("pn_jid", Jid::pn(phone.as_str()));
    }
    user.children(results).build()
}
