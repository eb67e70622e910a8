//! Delivery and read receipts, applied in batches: receipts arrive in bursts (one per message),
//! and one statement for many messages keeps the database's single writer free for the sends.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;
use wagate_core::MessageStatus;
use wagate_engine::ReceiptKind;

use super::{Inner, Runtime, SessionManager};

/// At most this many receipts per batch.
const BATCH: usize = 500;

pub(super) struct Receipt {
    pub runtime: Arc<Runtime>,
    pub message_id: String,
    pub kind: ReceiptKind,
}

/// Applies receipts until the session manager is gone.
pub(super) async fn run(manager: Weak<Inner>, mut receipts: mpsc::UnboundedReceiver<Receipt>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = receipts.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match receipts.try_recv() {
                Ok(receipt) => batch.push(receipt),
                Err(_) => break,
            }
        }
        let Some(inner) = manager.upgrade() else { return };
        apply(&SessionManager { inner }, std::mem::take(&mut batch)).await;
    }
}

async fn apply(manager: &SessionManager, batch: Vec<Receipt>) {
    // Delivered before read, so a message with both in one batch takes both steps.
    for status in [MessageStatus::Delivered, MessageStatus::Read] {
        let receipts: Vec<&Receipt> = batch.iter().filter(|r| status_of(r.kind) == status).collect();
        if receipts.is_empty() {
            continue;
        }
        let mut seen = HashSet::new();
        let ids: Vec<&str> =
            receipts.iter().map(|r| r.message_id.as_str()).filter(|id| seen.insert(*id)).collect();
        let moved = match manager.store().transition_messages(&ids, status).await {
            Ok(moved) => moved.into_iter().collect::<HashSet<String>>(),
            Err(err) => {
                tracing::error!(error = %err, count = ids.len(), "cannot record receipts");
                continue;
            }
        };
        let mut published = HashSet::new();
        for receipt in receipts {
            if moved.contains(&receipt.message_id) && published.insert(receipt.message_id.as_str()) {
                manager
                    .publish_message_status(
                        &receipt.runtime,
                        receipt.message_id.clone(),
                        Some(status),
                        None,
                        false,
                    )
                    .await;
            }
        }
    }
}

fn status_of(kind: ReceiptKind) -> MessageStatus {
    match kind {
        ReceiptKind::Delivered => MessageStatus::Delivered,
        ReceiptKind::Read | ReceiptKind::Played => MessageStatus::Read,
    }
}
