//! The mapping engine (`idm_sync::mapping`): no database, no network.

mod correlation;
mod load;
mod policies;
mod properties;
mod scripts;
mod situations;

use std::path::PathBuf;
use std::time::Duration;

use idm_sync::mapping::SyncConfig;

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The shipped `conf/sync.json`.
pub fn shipped() -> SyncConfig {
    SyncConfig::load_with(&repo_path("conf"), &|_| None, Duration::from_millis(100)).unwrap()
}

/// The IDM 7.5 sample's own `sync.json`, unchanged.
pub fn sample() -> SyncConfig {
    let text = std::fs::read_to_string(repo_path("tests/fixtures/sample-sync.json")).unwrap();
    SyncConfig::from_json(&serde_json::from_str(&text).unwrap()).unwrap()
}

pub const INBOUND: &str = "systemSalesforceUser_managedUser";
pub const OUTBOUND: &str = "managedUser_systemSalesforceUser";
