//! A sandbox session's "credentials": the account it is linked to, kept in its store dir so
//! that a restart logs in again without a QR code, exactly like a real linked device.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wagate_core::Phone;

use crate::{Account, EngineError};

#[derive(Serialize, Deserialize)]
struct StoredDevice {
    phone: String,
    lid: Option<String>,
    push_name: Option<String>,
}

fn path(store_dir: &Path) -> PathBuf {
    store_dir.join("sandbox-device.json")
}

pub async fn load(store_dir: &Path) -> Result<Option<Account>, EngineError> {
    let bytes = match tokio::fs::read(path(store_dir)).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(EngineError::Other(format!("cannot read sandbox device: {err}"))),
    };
    let stored: StoredDevice = serde_json::from_slice(&bytes)
        .map_err(|err| EngineError::Other(format!("corrupt sandbox device file: {err}")))?;
    let phone = Phone::parse(&stored.phone, None)
        .map_err(|err| EngineError::Other(format!("corrupt sandbox device file: {err}")))?;
    Ok(Some(Account { phone, lid: stored.lid, push_name: stored.push_name }))
}

pub async fn save(store_dir: &Path, account: &Account) -> Result<(), EngineError> {
    let stored = StoredDevice {
        phone: account.phone.e164().to_owned(),
        lid: account.lid.clone(),
        push_name: account.push_name.clone(),
    };
    let io = |err: std::io::Error| EngineError::Other(format!("cannot store sandbox device: {err}"));
    tokio::fs::create_dir_all(store_dir).await.map_err(io)?;
    let tmp = store_dir.join("sandbox-device.json.tmp");
    let json = serde_json::to_vec_pretty(&stored).expect("plain struct serializes");
    tokio::fs::write(&tmp, json).await.map_err(io)?;
    tokio::fs::rename(&tmp, path(store_dir)).await.map_err(io)
}

pub async fn remove(store_dir: &Path) -> Result<(), EngineError> {
    match tokio::fs::remove_file(path(store_dir)).await {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(EngineError::Other(format!("cannot remove sandbox device: {err}"))),
    }
}
