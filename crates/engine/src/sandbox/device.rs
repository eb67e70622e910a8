//! A sandbox session's "credentials": the account it is linked to, kept in the session's state
//! (see [`SessionState`](crate::SessionState)) so that a restart, on this node or another one
//! sharing the database, logs in again without a QR code, exactly like a real linked device.
//! Earlier versions kept it in `<store_dir>/sandbox-device.json`; such a file is moved into the
//! state when first read.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wagate_core::Phone;
use wagate_core::engine_state::{StateChange, StateEntry, StateRows};

use crate::{Account, EngineError, SessionSpec};

const SPACE: &str = "sandbox";
const NAME: &str = "device";

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    phone: String,
    lid: Option<String>,
    push_name: Option<String>,
}

fn file(store_dir: &Path) -> PathBuf {
    store_dir.join("sandbox-device.json")
}

fn failed(what: &str) -> impl Fn(crate::state::StateError) -> EngineError + '_ {
    move |err| EngineError::Other(format!("cannot {what} the sandbox device: {err}"))
}

pub async fn load(spec: &SessionSpec) -> Result<Option<Account>, EngineError> {
    let stored = spec.state.get(SPACE, "", &[NAME]).await.map_err(failed("read"))?;
    if let Some(entry) = stored.into_iter().next() {
        return parse(&entry.value).map(Some);
    }
    let legacy = file(&spec.store_dir);
    let bytes = match tokio::fs::read(&legacy).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(EngineError::Other(format!("cannot read sandbox device: {err}"))),
    };
    let account = parse(&bytes)?;
    save(spec, &account).await?;
    if let Err(err) = tokio::fs::remove_file(&legacy).await {
        tracing::warn!(session = %spec.id, error = %err, "sandbox: cannot remove the imported device file");
    }
    Ok(Some(account))
}

fn parse(bytes: &[u8]) -> Result<Account, EngineError> {
    let corrupt = |err: String| EngineError::Other(format!("corrupt sandbox device: {err}"));
    let stored: StoredDevice = serde_json::from_slice(bytes).map_err(|err| corrupt(err.to_string()))?;
    let phone = Phone::parse(&stored.phone, None).map_err(|err| corrupt(err.to_string()))?;
    Ok(Account { phone, lid: stored.lid, push_name: stored.push_name })
}

pub async fn save(spec: &SessionSpec, account: &Account) -> Result<(), EngineError> {
    let stored = StoredDevice {
        phone: account.phone.e164().to_owned(),
        lid: account.lid.clone(),
        push_name: account.push_name.clone(),
    };
    let json = serde_json::to_vec(&stored).expect("plain struct serializes");
    let entry = StateEntry::new(SPACE, "", NAME, json, 0);
    spec.state.change(vec![StateChange::Put(vec![entry])]).await.map_err(failed("store"))?;
    Ok(())
}

pub async fn remove(spec: &SessionSpec) -> Result<(), EngineError> {
    spec.state
        .change(vec![StateChange::Delete(StateRows::one(SPACE, "", NAME))])
        .await
        .map_err(failed("remove"))?;
    match tokio::fs::remove_file(file(&spec.store_dir)).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(EngineError::Other(format!("cannot remove sandbox device: {err}"))),
    }
}
