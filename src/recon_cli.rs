//! `idm-sync recon`: one reconciliation in this process, with a progress bar on a terminal
//! (log lines are written around it), the summary printed at the end (for a person, or as JSON
//! with `--json`). A signal cancels the run cleanly (at a page boundary).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
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
    let bar = std::io::stderr().is_terminal().then(progress_bar);
    let progress = bar.clone().map(|bar| {
        crate::telemetry::set_progress_bar(Some(bar.clone()));
        let engine = engine.clone();
        let id = id.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Ok(s) = engine.get(&id).await {
                    show(&bar, &s);
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
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
        crate::telemetry::set_progress_bar(None);
    }
    Ok(engine.get(&id).await?)
}

/// Users read (of the total Salesforce reported), written, rate and time left.
fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {elapsed} [{bar:24}] {pos}/{len} read, {per_sec}, ETA {eta}; {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn show(bar: &ProgressBar, summary: &Value) {
    let p = &summary["progress"];
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let total = p["source"]["existing"]["total"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .or_else(|| p["source"]["existing"]["total"].as_u64());
    if let Some(total) = total {
        bar.set_length(total);
    }
    bar.set_position(count(&p["source"]["existing"]["processed"]));
    bar.set_message(format!(
        "{} created, {} updated, {} deleted",
        count(&p["target"]["created"]),
        count(&p["target"]["updated"]),
        count(&p["target"]["deleted"]),
    ));
}

/// The summary for a person: what the run did, in a few lines.
pub fn describe(summary: &Value) -> String {
    let p = &summary["progress"];
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let mut out = format!(
        "reconciliation {} of {}: {}{}\n",
        summary["_id"].as_str().unwrap_or("?"),
        summary["mapping"].as_str().unwrap_or("?"),
        summary["state"].as_str().unwrap_or("?"),
        summary["duration"]
            .as_u64()
            .map(|ms| format!(" in {:.1} s", ms as f64 / 1000.0))
            .unwrap_or_default(),
    );
    out.push_str(&format!(
        "  source: {} processed; target: {} created, {} updated, {} deleted, {} unchanged\n",
        count(&p["source"]["existing"]["processed"]),
        count(&p["target"]["created"]),
        count(&p["target"]["updated"]),
        count(&p["target"]["deleted"]),
        count(&p["target"]["unchanged"]),
    ));
    if let Some(situations) = summary["situationSummary"].as_object() {
        let seen: Vec<String> = situations
            .iter()
            .filter(|(_, n)| count(n) > 0)
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        if !seen.is_empty() {
            out.push_str(&format!("  situations: {}\n", seen.join(", ")));
        }
    }
    if let Some(text) = summary["stageDescription"].as_str() {
        out.push_str(&format!("  {text}\n"));
    }
    out
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
