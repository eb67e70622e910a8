//! Delivery and read receipts, applied in batches: receipts arrive in bursts (one per message),
//! and one statement for many messages keeps the database's single writer free for the sends.

use std::collections::HashSet;
use std::sync::Weak;

use tokio::sync::mpsc;
use wagate_core::MessageStatus;
use wagate_engine::ReceiptKind;

use super::{Outbox, Sender};

/// At most this many receipts per batch.
const BATCH: usize = 500;

struct Receipt {
    sender: Sender,
    message_id: String,
    kind: ReceiptKind,
}

/// The queue of receipts not applied yet.
pub(super) struct Receipts(mpsc::UnboundedSender<Receipt>);

impl Receipts {
    /// Starts the task that applies receipts until the outbox is gone.
    pub(super) fn start(outbox: Weak<Outbox>) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(outbox, pending));
        Receipts(queue)
    }

    pub(super) fn push(&self, sender: &Sender, ids: Vec<String>, kind: ReceiptKind) {
        for message_id in ids {
            let _ = self.0.send(Receipt { sender: sender.clone(), message_id, kind });
        }
    }
}

async fn run(outbox: Weak<Outbox>, mut receipts: mpsc::UnboundedReceiver<Receipt>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = receipts.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match receipts.try_recv() {
                Ok(receipt) => batch.push(receipt),
                Err(_) => break,
            }
        }
        let Some(outbox) = outbox.upgrade() else { return };
        apply(&outbox, std::mem::take(&mut batch)).await;
    }
}

async fn apply(outbox: &Outbox, batch: Vec<Receipt>) {
    // Delivered before read, so a message with both in one batch takes both steps.
    for status in [MessageStatus::Delivered, MessageStatus::Read] {
        let receipts: Vec<&Receipt> = batch.iter().filter(|r| status_of(r.kind) == status).collect();
        if receipts.is_empty() {
            continue;
        }
        let mut seen = HashSet::new();
        let ids: Vec<&str> =
            receipts.iter().map(|r| r.message_id.as_str()).filter(|id| seen.insert(*id)).collect();
        let recorded =
            outbox.through_outage("record receipts", || outbox.store.transition_messages(&ids, status));
        let moved = match recorded.await {
            Ok(moved) => moved.into_iter().collect::<HashSet<String>>(),
            Err(err) => {
                tracing::error!(error = %err, count = ids.len(), "cannot record receipts");
                continue;
            }
        };
        let mut announced = HashSet::new();
        for receipt in receipts {
            if moved.contains(&receipt.message_id) && announced.insert(receipt.message_id.as_str()) {
                let change = receipt.sender.change(receipt.message_id.clone(), status, None, false);
                outbox.announce(change).await;
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
