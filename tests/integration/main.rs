//! The one integration-test binary: real Postgres (a database per test), real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod audit_retention;
mod auth;
mod browser;
mod compose;
mod config;
mod emulator;
mod filter_sql;
mod helpers;
mod managed_crud;
mod mapping;
mod metrics;
mod outbox;
mod patch;
mod policy;
mod query;
mod recon;
mod relay;
mod resync;
mod revisions;
mod salesforce;
mod scheduler;
mod system;
mod tls;
mod worker;
