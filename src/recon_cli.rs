//! `idm-sync recon`: one reconciliation in this process, with a progress line on a terminal,
//! the summary printed at the end. A signal cancels the run cleanly (at a page boundary).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::app::{Components, StartError};
use crate::recon::{ReconEngine, ReconError, ReconRequest, TARGET_RESOURCE};
use crate::repo::db::DbSettings;

/// What `idm-sync recon` was asked.
#[derive(Debug, Clone)]
pub struct ReconCommand {
    pub conf_dir: PathBuf,
    pub database: DbSettings,
    /// `None`: the inbound mapping of sync.json.
    pub mapping: Option<String>,
    pub analyze: bool,
    pub allow_mass_change: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(
        "reconciliation is not configured: {0} needs sync.json and provisioner.openicf-salesforce.json"
    )]
    NotConfigured(String),
    #[error(transparent)]
    Recon(#[from] ReconError),
    #[error(
        "sync.json has no mapping into {TARGET_RESOURCE} that idm-sync reconciles: name one with --mapping"
    )]
    NoInboundMapping,
    #[error(
        "sync.json has several mappings into {TARGET_RESOURCE} ({0}): choose one with --mapping"
    )]
    SeveralInboundMappings(String),
}

/// Runs the reconciliation to its end (or until `shutdown` cancels it) and returns its summary.
pub async fn run(
    cmd: &ReconCommand,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Value, CliError> {
    let parts = Components::build(&cmd.conf_dir, &cmd.database).await?;
    let engine = parts
        .recon
        .ok_or_else(|| CliError::NotConfigured(cmd.conf_dir.display().to_string()))?;
    let mapping = match &cmd.mapping {
        Some(name) => name.clone(),
        None => inbound_mapping(&engine)?,
    };
    let mut started = engine
        .start(ReconRequest {
            mapping,
            analyze: cmd.analyze,
            allow_mass_change: cmd.allow_mass_change,
            ..ReconRequest::default()
        })
        .await?;
    let id = started.id.clone();
    let progress = std::io::stderr().is_terminal().then(|| {
        let engine = engine.clone();
        let id = id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(s) = engine.get(&id).await {
                    let p = &s["progress"];
                    eprint!(
                        "\r{:<28} source {}/{}  target {}  created {}  updated {}  unchanged {}   ",
                        s["stage"].as_str().unwrap_or(""),
                        p["source"]["existing"]["processed"],
                        p["source"]["existing"]["total"].as_str().unwrap_or("?"),
                        p["target"]["existing"]["processed"],
                        p["target"]["created"],
                        p["target"]["updated"],
                        p["target"]["unchanged"],
                    );
                }
            }
        })
    });
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut started.task => {}
        () = &mut shutdown => {
            tracing::info!(recon_id = %id, "signal received: cancelling the reconciliation");
            engine.cancel(&id).await?;
            let _ = (&mut started.task).await;
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    Ok(engine.get(&id).await?)
}

/// The one mapping into managed users that reconciliation runs (its own links, not another's).
fn inbound_mapping(engine: &ReconEngine) -> Result<String, CliError> {
    let names: Vec<&str> = engine
        .sync_config()
        .mappings
        .iter()
        .filter(|m| m.target == TARGET_RESOURCE && !m.links_reversed())
        .map(|m| m.name.as_str())
        .collect();
    match names.as_slice() {
        [] => Err(CliError::NoInboundMapping),
        [one] => Ok((*one).to_owned()),
        several => Err(CliError::SeveralInboundMappings(several.join(", "))),
    }
}
