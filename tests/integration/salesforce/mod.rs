//! The Salesforce client against the emulator over HTTP, with the token store in Postgres.

mod auth;
mod conf;
mod faults;
mod query;
pub mod support;
mod writes;
