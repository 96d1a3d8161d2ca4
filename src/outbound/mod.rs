//! Implicit synchronization, outbound half: the relay (outbox → broker), the broker topology,
//! the change-event message, the worker (broker → Salesforce: `worker.rs` consumes and acks,
//! `sync.rs` applies a batch of changes through the mapping, `correlation.rs` matches unlinked
//! users with Salesforce users, `access.rs` the grants beyond the profile (permission sets, groups,
//! role) taken out of a user's write and applied after it, `authorization.rs` holds the worker while the Salesforce
//! connector needs an operator).

pub mod access;
pub mod assignment;
pub mod authorization;
pub mod broker;
pub mod correlation;
pub mod dead_letters;
pub mod message;
pub mod relay;
pub mod subscriptions;
pub mod sync;
pub mod topology;
pub mod worker;
