//! The scheduler: fires `conf/schedule-*.json` (IDM's format) — reconciliations and liveSync
//! passes — exactly once per firing across replicas.

pub mod config;
pub mod cron;
pub mod jobs;
pub mod runner;

pub use config::{Invoke, Schedule};
pub use runner::{Claim, JobError, JobOutcome, JobRunner, Scheduler};
