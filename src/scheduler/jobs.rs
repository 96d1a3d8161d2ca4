//! What a firing starts: `invokeService: "sync"` with `action: "reconcile"` starts a run of the
//! mapping on the recon engine. A run of that mapping still active (here or on another
//! replica) makes the firing a skip, which is what `concurrentExecution: false` asks for and
//! what the engine enforces for every run anyway. `invokeService: "provisioner"` with
//! `action: "liveSync"` runs one liveSync pass (`recon::live_sync`) and waits for it.
//!
//! Each job claims its firing (see [`JobRunner`]): a recon in the transaction that records
//! its run, everything else (a liveSync pass, a refusal) just before it acts.

use std::sync::Arc;

use super::config::Invoke;
use super::runner::{Claim, JobOutcome, JobRunner};
use crate::recon::live_sync::PassStatus;
use crate::recon::{LiveSync, ReconEngine, ReconError, ReconRequest};

pub fn runner(recon: Option<ReconEngine>) -> JobRunner {
    Arc::new(move |invoke: Invoke, claim: Claim| {
        let recon = recon.clone();
        Box::pin(async move {
            match invoke {
                Invoke::Reconcile { mapping } => {
                    let Some(engine) = recon else {
                        return claimed(&claim, Err("reconciliation is not configured (conf/ needs sync.json and the Salesforce provisioner)".to_owned())).await;
                    };
                    let request = ReconRequest {
                        mapping,
                        ..ReconRequest::default()
                    };
                    match engine.start_fired(request, claim.firing()).await {
                        Ok(Some(run)) => Ok(JobOutcome::Started(run.id)),
                        Ok(None) => Ok(JobOutcome::Taken),
                        // Claimed, as a skip, in the start's transaction.
                        Err(ReconError::AlreadyRunning(m)) => Ok(JobOutcome::Skipped(format!(
                            "a reconciliation of {m} is still running"
                        ))),
                        Err(ReconError::ConnectorDisabled) => {
                            claimed(
                                &claim,
                                Ok(JobOutcome::Skipped(
                                    "the Salesforce connector is disabled".to_owned(),
                                )),
                            )
                            .await
                        }
                        Err(e) => claimed(&claim, Err(crate::telemetry::error_chain(&e))).await,
                    }
                }
                Invoke::LiveSync { source } => {
                    let Some(engine) = recon else {
                        return claimed(&claim, Err(format!(
                            "liveSync of {source} is not configured (conf/ needs sync.json and the Salesforce provisioner)"
                        ))).await;
                    };
                    if !claim
                        .take()
                        .await
                        .map_err(|e| crate::telemetry::error_chain(&e))?
                    {
                        return Ok(JobOutcome::Taken);
                    }
                    // One pass, awaited: its runs are short (only the changed users), and the
                    // outcome says whether the token moved.
                    match LiveSync::new(engine).run_once(&source).await {
                        Ok(pass) => match pass.status {
                            PassStatus::Skipped(reason) => Ok(JobOutcome::Skipped(reason)),
                            PassStatus::Initialized | PassStatus::Synced => {
                                Ok(JobOutcome::Started(format!(
                                    "liveSync of {source}: {} changed users, token {}",
                                    pass.changes, pass.token.token
                                )))
                            }
                        },
                        Err(e) => Err(crate::telemetry::error_chain(&e)),
                    }
                }
            }
        })
    })
}

/// Claims the firing for an outcome decided without starting anything, so that it is recorded
/// once; [`JobOutcome::Taken`] when another replica has it.
async fn claimed(claim: &Claim, outcome: Result<JobOutcome, String>) -> Result<JobOutcome, String> {
    match claim.take().await {
        Ok(true) => outcome,
        Ok(false) => Ok(JobOutcome::Taken),
        Err(e) => Err(crate::telemetry::error_chain(&e)),
    }
}
