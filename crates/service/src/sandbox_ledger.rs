//! The sandbox's simulated network kept in the database that nodes share, so that a sandbox
//! session on one node messages a session on another, groups are seen by every node, and any
//! node shows every inbox.

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wagate_engine::sandbox::{Delivery, InboxEntry, LedgerError, SandboxGroup, SharedLedger};
use wagate_store::{Store, StoreError};

pub struct StoreLedger {
    store: Store,
}

impl StoreLedger {
    pub fn new(store: Store) -> Self {
        StoreLedger { store }
    }
}

fn failed(err: StoreError) -> LedgerError {
    LedgerError(err.to_string())
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("the sandbox's values serialize")
}

fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, LedgerError> {
    serde_json::from_str(json).map_err(|err| LedgerError(format!("unreadable sandbox record: {err}")))
}

#[async_trait]
impl SharedLedger for StoreLedger {
    async fn record(&self, delivery: &Delivery) -> Result<bool, LedgerError> {
        let entry = &delivery.entry;
        self.store.sandbox_record(&entry.to, &entry.id, &to_json(delivery)).await.map_err(failed)
    }

    async fn inbox(&self, phone: &str) -> Result<Vec<InboxEntry>, LedgerError> {
        let rows = self.store.sandbox_inbox(phone).await.map_err(failed)?;
        rows.iter().map(|json| from_json::<Delivery>(json).map(|delivery| delivery.entry)).collect()
    }

    async fn since(&self, cursor: i64, limit: usize) -> Result<Vec<(i64, Delivery)>, LedgerError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let rows = self.store.sandbox_since(cursor, limit).await.map_err(failed)?;
        rows.iter().map(|(seq, json)| Ok((*seq, from_json(json)?))).collect()
    }

    async fn latest(&self) -> Result<i64, LedgerError> {
        self.store.sandbox_latest().await.map_err(failed)
    }

    async fn keep_latest(&self, keep: usize) -> Result<(), LedgerError> {
        self.store.sandbox_keep_latest(keep as u64).await.map_err(failed)?;
        Ok(())
    }

    async fn put_group(&self, jid: &str, group: &SandboxGroup) -> Result<(), LedgerError> {
        self.store.sandbox_put_group(jid, &to_json(group)).await.map_err(failed)
    }

    async fn group(&self, jid: &str) -> Result<Option<SandboxGroup>, LedgerError> {
        let json = self.store.sandbox_group(jid).await.map_err(failed)?;
        json.as_deref().map(from_json).transpose()
    }

    async fn groups(&self) -> Result<Vec<(String, SandboxGroup)>, LedgerError> {
        let rows = self.store.sandbox_groups().await.map_err(failed)?;
        rows.iter().map(|(jid, json)| Ok((jid.clone(), from_json(json)?))).collect()
    }
}
