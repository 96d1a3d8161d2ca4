//! Implicit synchronization, outbound half: the relay (outbox → broker), the broker topology,
//! and the change-event message. The worker (broker → Salesforce) arrives with the mapping
//! engine and the Salesforce client.

pub mod broker;
pub mod message;
pub mod relay;
pub mod sync;
pub mod topology;
pub mod worker;
