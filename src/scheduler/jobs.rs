//! What a firing starts: `invokeService: "sync"` with `action: "reconcile"` starts a run of the
//! mapping on the recon engine. A run of that mapping still active (here or on another
//! replica) makes the firing a skip, which is what `concurrentExecution: false` asks for and
//! what the engine enforces for every run anyway.

use std::sync::Arc;

use super::config::Invoke;
use super::runner::{JobOutcome, JobRunner};
use crate::recon::{ReconEngine, ReconError, ReconRequest};

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
                        Err(e) => Err(crate::telemetry::error_chain(&e)),
                    }
                }
                Invoke::LiveSync { source } => Err(format!(
                    "liveSync of {source} is not available yet: schedule a reconcile instead"
                )),
            }
        })
    })
}
