//! The Salesforce client against the emulator over HTTP, with the token store in Postgres.

mod access;
mod auth;
mod conf;
mod faults;
mod query;
mod refresh_across_processes;
mod soql_literals;
pub mod support;
mod writes;
