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
use super::runner::{Claim, JobError, JobOutcome, JobRunner};
use crate::recon::live_sync::PassStatus;
use crate::recon::{LiveSync, ReconEngine, ReconError, ReconRequest};

pub fn runner(recon: Option<ReconEngine>) -> JobRunner {
    Arc::new(move |invoke: Invoke, claim: Claim| {
        let recon = recon.clone();
        Box::pin(async move {
            match invoke {
                Invoke::Reconcile { mapping } => {
                    let Some(engine) = recon else {
                        let error = JobError::NotConfigured("reconciliation".to_owned());
                        return claimed(&claim, Err(error)).await;
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
                        Err(ReconError::ConnectorDisabled(system)) => {
                            claimed(
                                &claim,
                                Ok(JobOutcome::Skipped(format!(
                                    "the Salesforce connector {system} is disabled"
                                ))),
                            )
                            .await
                        }
                        Err(e) => claimed(&claim, Err(e.into())).await,
                    }
                }
                Invoke::LiveSync { source } => {
                    let Some(engine) = recon else {
                        let error = JobError::NotConfigured(format!("liveSync of {source}"));
                        return claimed(&claim, Err(error)).await;
                    };
                    if !claim.take().await? {
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
                        Err(e) => Err(e.into()),
                    }
                }
            }
        })
    })
}

/// Claims the firing for an outcome decided without starting anything, so that it is recorded
/// once; [`JobOutcome::Taken`] when another replica has it.
async fn claimed(
    claim: &Claim,
    outcome: Result<JobOutcome, JobError>,
) -> Result<JobOutcome, JobError> {
    match claim.take().await? {
        true => outcome,
        false => Ok(JobOutcome::Taken),
    }
}
