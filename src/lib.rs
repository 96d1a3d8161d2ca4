//! idm-sync: keeps managed users in Postgres and Salesforce users in sync, the IDM
//! `sync-with-salesforce` way. One line per module:

// An index that could be out of range is a `get`, never a panic (tests may index).
#![cfg_attr(not(test), warn(clippy::indexing_slicing))]

pub mod admin; // the Admin UI under /admin: server-rendered pages, sessions, OAuth connect
pub mod api; // the REST API under /openidm, in IDM's shapes
pub mod app; // building the serve role (config, database, routes, listener)
pub mod authorize_cli; // `idm-sync salesforce authorize`: the OAuth web-server flow's local callback
pub mod config; // conf/ loading: IDM formats, &{env.X} substitution, validation
pub mod connectors; // the Salesforce connectors of conf/, one client per system, by name
pub mod credentials; // the admin password check shared by REST and the UI: throttle, hash cap
pub mod events; // Salesforce change events (Pub/Sub API) applied through the inbound mapping
// Reads of serde_json::Value summaries (Null when absent) are the only indexing there.
#[allow(clippy::indexing_slicing)]
pub mod demo; // `idm-sync demo`: emulator + every role + a printed walk-through
pub mod http_server; // the HTTP server of every listener: timeouts, connection cap, shutdown
pub mod managed; // managed objects: revisions, patch, policies, outbox per change
pub mod metrics; // Prometheus metrics on prometheus-client: the catalog, process figures
pub mod ops; // unauthenticated operations endpoints: /metrics, readiness, the roles' listener
pub mod outbound; // implicit sync: outbox relay, broker topology, change events
pub mod recon; // reconciliation: source and target phases, runs, summary, guard
#[allow(clippy::indexing_slicing)] // as in demo: serde_json::Value reads only
pub mod recon_cli; // `idm-sync recon`: one run in this process, progress on a terminal
pub mod repo; // Postgres: managed objects, outbox, queries compiled from filters
pub mod retry_delay; // the jittered exponential delay before a role tries again
pub mod scheduler; // conf/schedule-*.json: cron and simple triggers, exactly-once firings
pub mod secrets; // secrets at rest: sealing the stored Salesforce tokens and consumer secret
pub mod services; // the application layer the transports share: AppState, retries, resync
pub mod shutdown; // SIGINT/SIGTERM handling
pub mod supervise; // a process's tasks together: one failing stops the others, named
pub mod telemetry; // tracing setup (text or JSON)
pub mod tls; // HTTPS: PEM or self-signed certificates, rustls configuration, flags

// The pure core (crates/idm-core: filters, mappings and scripts, patches, request bounds), under
// the names the service has always used.
pub use idm_core::{audit_config, filter, limits, mapping, planner};
// The Salesforce client (crates/sf-client), under the name the service has always used.
pub use sf_client as salesforce;
