//! The Salesforce emulator over real HTTP.

mod collections;
mod entitlements;
mod faults_limits;
mod oauth;
mod pubsub;
mod query;
mod set_wise_grants;
mod sobjects;
mod state;
mod support;
