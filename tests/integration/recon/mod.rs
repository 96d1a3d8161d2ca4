//! The reconciliation engine against the in-process emulator and real Postgres.

mod cli;
mod grants;
mod guard_and_runs;
mod hooks;
mod inbound;
mod live_sync;
mod pipeline;
pub mod support;
