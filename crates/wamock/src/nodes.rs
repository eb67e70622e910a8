//! Small helpers for reading and building binary XMPP-like nodes.

use std::time::{SystemTime, UNIX_EPOCH};

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Jid, Node, NodeContent, SERVER_JID};

/// The string value of an attribute.
pub(crate) fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|value| value.as_str().into_owned())
}

/// An attribute parsed as a JID.
pub(crate) fn jid_attr(node: &Node, key: &str) -> Option<Jid> {
    node.attrs.get(key).and_then(|value| value.to_jid())
}

/// The first child with that tag.
pub(crate) fn child<'a>(node: &'a Node, tag: &str) -> Option<&'a Node> {
    node.get_optional_child(tag)
}

/// The children of a node (empty when it has none).
pub(crate) fn children(node: &Node) -> &[Node] {
    node.children().unwrap_or_default()
}

/// The binary content of a node; string content is returned as its bytes.
pub(crate) fn content_bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(bytes)) => Some(bytes),
        Some(NodeContent::String(text)) => Some(text.as_bytes()),
        _ => None,
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or_default()
}

/// A `type="result"` answer to an IQ, without content.
pub(crate) fn iq_result(request: &Node) -> NodeBuilder {
    NodeBuilder::new("iq")
        .attr("id", attr(request, "id").unwrap_or_default())
        .attr("type", "result")
        .attr("from", SERVER_JID)
}

/// A `type="error"` answer to an IQ.
pub(crate) fn iq_error(request: &Node, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", attr(request, "id").unwrap_or_default())
        .attr("type", "error")
        .attr("from", SERVER_JID)
        .children([NodeBuilder::new("error").attr("code", code).attr("text", text).build()])
        .build()
}

/// A short random hexadecimal identifier, e.g. for stanza ids.
pub(crate) fn random_id(bytes: usize) -> String {
    use rand::RngExt;
    let mut rng = rand::rng();
    (0..bytes).map(|_| format!("{:02X}", rng.random::<u8>())).collect()
}
