//! What a firing starts: `invokeService: "sync"` with `action: "reconcile"` starts a run of the
//! mapping on the recon engine. A run of that mapping still active (here or on another
//! replica) makes the firing a skip, which is what `concurrentExecution: false` asks for and
//! what the engine enforces for every run anyway. `invokeService: "provisioner"` with
//! `action: "liveSync"` runs one liveSync pass (`recon::live_sync`) and waits for it.

use std::sync::Arc;

use super::config::Invoke;
use super::runner::{JobOutcome, JobRunner};
use crate::recon::live_sync::PassStatus;
use crate::recon::{LiveSync, ReconEngine, ReconError, ReconRequest};

pub fn runner(recon: Option<ReconEngine>) -> JobRunner {
    Arc::new(move |invoke: Invoke| {
        let recon = recon.clone();
        Box::pin(async move {
            match invoke {
                Invoke::Reconcile { mapping } => {
                    let Some(engine) = recon else {
                        return Err("reconciliation is not configured (conf/ needs sync.json and the Salesforce provisioner)".to_owned());
                    };
                    let request = ReconRequest {
                        mapping,
                        ..ReconRequest::default()
                    };
                    match engine.start(request).await {
                        Ok(run) => Ok(JobOutcome::Started(run.id)),
                        Err(ReconError::AlreadyRunning(m)) => Ok(JobOutcome::Skipped(format!(
                            "a reconciliation of {m} is still running"
                        ))),
                        Err(ReconError::ConnectorDisabled) => Ok(JobOutcome::Skipped(
                            "the Salesforce connector is disabled".to_owned(),
                        )),
                        Err(e) => Err(crate::telemetry::error_chain(&e)),
                    }
                }
                Invoke::LiveSync { source } => {
                    let Some(engine) = recon else {
                        return Err(format!(
                            "liveSync of {source} is not configured (conf/ needs sync.json and the Salesforce provisioner)"
                        ));
                    };
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
