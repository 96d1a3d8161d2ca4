//! The pure core of idm-sync: what the service decides, with no database, no network and no
//! async runtime. Its only I/O is reading a `conf/` file (`conf_file`, `mapping::SyncConfig`).
//! The service (`idm-sync`) re-exports these modules under the same names.

// Hostile input reaches this crate (filters, patches, org answers): an index that could be out
// of range is a `get`, never a panic. Tests may index.
#![warn(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

pub mod audit_config; // conf/audit.json: which audit topics and entries are written
pub mod conf_file; // a conf/ file: read, parsed, &{env.X} substituted; errors naming file and path
pub mod env_subst; // IDM's &{env.X} property substitution
pub mod filter; // IDM query filters: grammar, parser, in-memory evaluation
pub mod limits; // the bounds every request is held to (sizes, depths, counts), in one place
pub mod mapping; // sync.json: mappings, scripts, property mapping, situations, policies
pub mod patch; // CREST patch operations, bounded while they apply
pub mod planner; // situation + action + what is known of the target → the write (recon and worker)
pub mod redact; // connection URLs with their passwords masked, for logs and Debug
