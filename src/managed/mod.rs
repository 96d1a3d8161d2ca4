//! Managed objects as IDM defines them: revision rules, patch, policy validation, hashed
//! properties, and the outbox row that every real change writes in its own transaction.

pub mod hashing;
pub use idm_core::patch;
pub mod policy;
pub mod service;

pub use service::{ManagedError, ManagedObjects, Merged, Precondition};
