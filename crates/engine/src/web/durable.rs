//! Received messages are stored before WhatsApp is told they arrived: the client calls this
//! hook before acknowledging them, and a message whose storing did not finish is delivered
//! again after a reconnect (storing is idempotent, by WhatsApp message id).

use std::sync::Arc;

use async_trait::async_trait;
use whatsapp_rust::client::Client;
use whatsapp_rust::types::durability_hook::InboundDurabilityHook;
use whatsapp_rust::types::events::InboundMessage;

use super::inbound::convert;
use super::session::Shared;
use crate::EngineEvent;

pub(super) struct StoreBeforeAck(pub Arc<Shared>);

#[async_trait]
impl InboundDurabilityHook for StoreBeforeAck {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        for message in batch {
            let Some(inbound) = convert(&self.0, message).await else { continue };
            if !self.0.events.emit_and_wait(EngineEvent::Inbound(inbound)).await {
                whatsapp_rust::anyhow::bail!("the session closed before the message was stored");
            }
        }
        Ok(())
    }
}
