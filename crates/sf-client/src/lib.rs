//! The Salesforce client idm-sync uses against a real org (and the emulator): OAuth with a shared
//! session, refreshed one at a time across every process sharing the database; rotated refresh
//! tokens stored durably before use; REST sObjects, SOQL query as a stream of pages, sObject
//! Collections; the one SOQL literal escaper; retries of transient errors; typed errors carrying
//! Salesforce's `errorCode`, `message` and `fields`. It knows IDM only through the query filters
//! it translates to SOQL (`idm-core`), and no database: its token store is a trait the service
//! implements.
//!
//! ```no_run
//! # async fn demo(cfg: sf_client::ClientConfig) -> Result<(), sf_client::SalesforceError> {
//! use futures_util::TryStreamExt;
//! use sf_client::{SalesforceClient, TokenStore};
//! let client = SalesforceClient::new(cfg, TokenStore::in_memory())?;
//! let mut pages = std::pin::pin!(client.query("SELECT Id, Username FROM User"));
//! let mut users = 0;
//! while let Some(page) = pages.try_next().await? {
//!     users += page.records.len();
//! }
//! # Ok(()) }
//! ```
//!
//! | file | responsibility |
//! |---|---|
//! | `config.rs` | typed client configuration, [`Secret`] |
//! | `http.rs` | the reqwest pool, connection permits, timeouts |
//! | `oauth.rs` | token-endpoint grants (refresh, code exchange), authorize URL |
//! | `session.rs` | the shared access token, single-flight refresh (in the process and across processes), connector state |
//! | `token_store.rs` | the store trait (refresh token, shared access token, refresh lock, saved credentials and enabled state), the memory store, which token to start with |
//! | `client.rs` | the client and its single-record operations |
//! | `query.rs` | SOQL as a stream of pages |
//! | `soql.rs` | the SOQL string-literal escaper and `=` / `IN` / `LIKE` conditions |
//! | `collections.rs` | batched create/update/delete (≤ 200 a call) |
//! | `access.rs` | permission sets, groups, roles: the catalog by name, a user's grants read set-wise |
//! | `retry.rs` | backoff of transient failures |
//! | `errors.rs` | typed errors, Salesforce error bodies |
//! | `limits.rs` | `Sforce-Limit-Info` and `/limits` |
//! | `observer.rs` | the hook that counts calls by operation and outcome |

// Hostile input reaches this crate (filters, patches, org answers): an index that could be out
// of range is a `get`, never a panic. Tests may index.
#![warn(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

pub mod access;
pub mod access_read;
mod client;
mod collections;
pub mod config;
pub mod errors;
mod http;
pub mod limits;
pub mod oauth;
pub mod observer;
pub mod pubsub;
mod query;
mod retry;
mod session;
pub mod soql;
pub mod soql_filter;
pub mod token_store;

pub use client::{Identity, Record, SalesforceClient, TestReport, USER, UpdatedIds};
pub use collections::{MAX_RECORDS_PER_CALL, RecordResult};
pub use config::{ClientConfig, Credentials, RetryConfig, Secret};
pub use errors::{ApiError, ErrorKind, SalesforceError};
pub use limits::{ApiUsage, Limit, Limits};
pub use oauth::{TokenGrant, authorize_url, pkce_verifier};
pub use observer::{CallObserver, CallOutcome, Observer};
pub use query::QueryPage;
pub use session::ConnectorState;
pub use token_store::{StoredToken, TokenBackend, TokenStore};

/// Makes ring the process's TLS crypto provider. reqwest (0.13, without its aws-lc default)
/// builds every client's TLS with the process default and panics without one; call this
/// before building a `reqwest::Client` (the Salesforce client does). Idempotent.
pub fn use_ring_for_tls() {
    // Err: a provider is installed already, which is all that is asked.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
