//! A local Salesforce API emulator, faithful to Salesforce's documented behaviour for what a user
//! sync needs: OAuth, REST sObjects/User, SOQL query with paging, sObject Collections, limits, and
//! fault injection. The `sf-emulator` binary is a thin CLI over [`Emulator`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), sf_emulator::EmulatorError> {
//! use sf_emulator::{Emulator, EmulatorConfig};
//! let emu = Emulator::build(EmulatorConfig { users: 100, ..Default::default() }, "127.0.0.1:0".parse().unwrap()).await?;
//! let running = emu.start(); // serves in the background
//! println!("{}", running.base_url());
//! running.stop().await?;
//! # Ok(()) }
//! ```
//!
//! State lives in memory behind short synchronous locks (never held across `.await`).

// Hostile input reaches this crate (SOQL text, JSON bodies, URLs): an index that could be out of
// range is a `get`, never a panic. Tests may index.
#![warn(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

mod access;
mod admin;
mod admin_users;
pub mod cli;
mod collections;
pub mod errors;
pub mod faults;
pub mod ids;
mod limits;
mod oauth;
mod org;
pub mod pubsub;
mod query;
mod rng;
pub mod schema;
mod seed;
mod sobjects;
pub mod soql;
mod state_file;
pub mod stats;
mod user_writes;
mod userinfo;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, patch, post};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

pub use access::catalog::AccessConfig;
pub use errors::EmulatorError;
pub use faults::{FaultConfig, FaultUpdate, GapOrder, GapType};
pub use pubsub::{ChangeType, PubSubConfig};
pub use stats::StatsSnapshot;

/// The lowest and highest REST API versions served (`vNN.0`).
pub const MIN_API_VERSION: u32 = 44;
pub const MAX_API_VERSION: u32 = 62;

/// Everything the emulator can be started with. `Default` gives the shipped defaults, which the
/// sample's `conf/provisioner.openicf-salesforce.json` uses when no environment overrides them.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Users to generate when neither a state file nor a seed file provides them.
    pub users: usize,
    /// Seed of the generated org (same seed, same users).
    pub seed: u64,
    /// JSON file of users to start with instead of generated ones.
    pub seed_file: Option<PathBuf>,
    /// Where the org and issued tokens persist across restarts; loaded at start when it exists.
    pub state_file: Option<PathBuf>,
    pub consumer_key: String,
    pub consumer_secret: String,
    /// A refresh token valid from the start (unless a state file says otherwise).
    pub refresh_token: String,
    /// Lifetime of access tokens (Salesforce's default session timeout is 2 hours).
    pub access_token_lifetime: Duration,
    /// Data calls an access token serves before it expires (`None`: no such limit). Salesforce
    /// expires sessions by time only; this makes tokens expire every few calls whatever the
    /// clock, which tests of refreshes under load need.
    pub access_token_max_uses: Option<u64>,
    /// Refresh-token rotation: each refresh answer carries a new refresh token, the old one dies.
    pub rotate_refresh_tokens: bool,
    /// The daily API allowance (`DailyApiRequests.Max`).
    pub daily_api_limit: u64,
    pub faults: FaultConfig,
    /// Open query cursors kept; the oldest is dropped beyond this.
    pub max_open_cursors: usize,
    /// Idle time after which a query cursor expires (`INVALID_QUERY_LOCATOR`).
    pub cursor_idle_timeout: Duration,
    /// The URL clients reach the emulator at (`instance_url`), when it differs from the bound
    /// address (containers, proxies). Default: `http://<bound ip>:<port>`.
    pub public_url: Option<String>,
    /// Delay between a change and its write to the state file (changes in between are batched).
    pub state_debounce: Duration,
    /// Extra permission sets and groups, and the assignments and memberships of generated users.
    pub access: AccessConfig,
    /// Child rows a parent-to-child subquery shows inline per parent record; the rest are paged
    /// through the child result's `nextRecordsUrl` (also set at run time, `subqueryInlineRows`).
    pub subquery_inline_rows: usize,
    /// The Pub/Sub API (change events): its listener, keepalive, retention.
    pub pubsub: PubSubConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            users: 100,
            seed: 42,
            seed_file: None,
            state_file: None,
            consumer_key: "idm-sync-emulator-key".to_owned(),
            consumer_secret: "idm-sync-emulator-secret".to_owned(),
            refresh_token: "idm-sync-emulator-refresh-token".to_owned(),
            access_token_lifetime: Duration::from_secs(2 * 3600),
            access_token_max_uses: None,
            rotate_refresh_tokens: false,
            daily_api_limit: 100_000,
            faults: FaultConfig::default(),
            max_open_cursors: 100,
            cursor_idle_timeout: Duration::from_secs(15 * 60),
            public_url: None,
            state_debounce: Duration::from_millis(250),
            access: AccessConfig::default(),
            subquery_inline_rows: DEFAULT_SUBQUERY_INLINE_ROWS,
            pubsub: PubSubConfig::default(),
        }
    }
}

/// Child rows shown inline per parent by default. Salesforce documents no figure; observed
/// answers hold a few hundred before a child `nextRecordsUrl` (README, "Salesforce emulator").
pub const DEFAULT_SUBQUERY_INLINE_ROWS: usize = 200;

/// The fixed part of the configuration, after start.
#[derive(Debug)]
pub(crate) struct RuntimeConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub access_token_lifetime: Duration,
    pub access_token_max_uses: Option<u64>,
    pub rotate_refresh_tokens: bool,
    pub base_url: String,
    /// `http://host:port` of the Pub/Sub API (gRPC) listener.
    pub pubsub_url: String,
    pub max_open_cursors: usize,
    pub cursor_idle_timeout: Duration,
    pub state_file: Option<PathBuf>,
    pub state_debounce: Duration,
}

/// State shared by all handlers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: RuntimeConfig,
    pub org: RwLock<org::Org>,
    pub tokens: Mutex<oauth::TokenStore>,
    pub cursors: Mutex<query::CursorStore>,
    pub faults: Mutex<FaultConfig>,
    pub api_used: AtomicU64,
    pub daily_limit: AtomicU64,
    /// Child rows shown inline per parent (at least 1).
    pub subquery_inline_rows: AtomicUsize,
    pub stats: stats::Stats,
    /// The event bus and settings of the Pub/Sub API.
    pub pubsub: pubsub::PubSub,
    pub rng: rng::SharedRng,
    dirty: AtomicBool,
    dirty_notify: Notify,
}

impl Shared {
    /// Notes that the org or the tokens changed, for the state-file writer.
    pub fn mark_dirty(&self) {
        if self.config.state_file.is_some() {
            self.dirty.store(true, Ordering::Release);
            self.dirty_notify.notify_one();
        }
    }

    pub fn random_token(&self, len: usize) -> String {
        ids::random_base62(len, || self.rng.next_u64())
    }

    pub fn faults(&self) -> FaultConfig {
        lock(&self.faults).clone()
    }
}

/// Locks a mutex, ignoring poisoning: a panicking handler cannot leave these maps half-updated in a
/// way that matters more than serving the next call.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// A handle on a built or running emulator: tests use it to set faults and read counters directly.
#[derive(Debug, Clone)]
pub struct EmulatorHandle {
    shared: Arc<Shared>,
}

impl EmulatorHandle {
    /// Applies a fault update (the same as `POST /__emulator/faults`).
    pub fn update_faults(&self, update: &FaultUpdate) {
        admin::apply_faults(&self.shared, update);
    }

    pub fn faults(&self) -> FaultConfig {
        self.shared.faults()
    }

    /// Expires every issued access token now (the next data call gets 401 `INVALID_SESSION_ID`).
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_all_access();
        self.shared.mark_dirty();
    }

    pub fn stats(&self) -> StatsSnapshot {
        admin::snapshot(&self.shared)
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    /// Number of users in the org.
    pub fn user_count(&self) -> usize {
        read(&self.shared.org).users.len()
    }

    /// A user as JSON (all modelled fields), by 15- or 18-char id.
    pub fn user(&self, id: &str) -> Option<serde_json::Value> {
        let org = read(&self.shared.org);
        org.find(id)
            .and_then(|i| org.users.get(i))
            .map(schema::record_to_json)
    }

    /// A user as JSON, by `Username` (the demo watches a user's copy change through it).
    pub fn user_by_username(&self, username: &str) -> Option<serde_json::Value> {
        let org = read(&self.shared.org);
        org.find_username(username)
            .and_then(|i| org.users.get(i))
            .map(schema::record_to_json)
    }

    /// Test-only: moves a user's `LastModifiedDate` and `SystemModstamp` back by `by`, as if its
    /// last change had happened then. `sobjects/User/updated` never covers the current minute
    /// (as Salesforce), so a test of incremental polling would otherwise wait up to a minute for
    /// a change to become visible. Returns false for an unknown id.
    pub fn backdate_user(&self, id: &str, by: chrono::Duration) -> bool {
        let mut org = write(&self.shared.org);
        let Some(rec) = org.find(id).and_then(|i| org.users.get_mut(i)) else {
            return false;
        };
        for field in [
            schema::idx::LAST_MODIFIED_DATE,
            schema::idx::SYSTEM_MODSTAMP,
        ] {
            if let schema::Val::DateTime(d) = rec[field] {
                rec[field] = schema::Val::DateTime(d - by);
            }
        }
        drop(org);
        self.shared.mark_dirty();
        true
    }

    /// The id of a profile by name (e.g. "Standard User").
    pub fn profile_id(&self, name: &str) -> Option<String> {
        read(&self.shared.org).profile_id(name).map(str::to_owned)
    }

    /// The id of a permission set by `Name`, a permission set group, public group or role by
    /// `DeveloperName`, or a user license by `Name` (`sobject` names which).
    pub fn access_id(&self, sobject: &str, name: &str) -> Option<String> {
        let org = read(&self.shared.org);
        let a = &org.access;
        let id = match access::Obj::named(sobject)? {
            access::Obj::PermissionSet => a
                .permission_sets
                .iter()
                .find(|p| p.name == name)?
                .id
                .clone(),
            access::Obj::PermissionSetGroup => a
                .ps_groups
                .iter()
                .find(|g| g.developer_name == name)?
                .id
                .clone(),
            access::Obj::Group => a
                .groups
                .iter()
                .find(|g| g.developer_name == name)?
                .id
                .clone(),
            access::Obj::UserRole => a
                .roles
                .iter()
                .find(|r| r.developer_name == name)?
                .id
                .clone(),
            access::Obj::UserLicense => a.licenses.iter().find(|l| l.name == name)?.id.clone(),
            access::Obj::Profile => org.profile_id(name)?.to_owned(),
            access::Obj::PermissionSetAssignment | access::Obj::GroupMember => return None,
        };
        Some(id)
    }

    /// How many records each access object has (`PermissionSetAssignment` → n, …).
    pub fn access_counts(&self) -> Vec<(&'static str, usize)> {
        let org = read(&self.shared.org);
        org.access
            .counts(org.profiles.len())
            .into_iter()
            .map(|(o, n)| (o.name(), n))
            .collect()
    }

    /// The organization id (`00D…`, 18 chars).
    pub fn org_id(&self) -> String {
        read(&self.shared.org).org_id.clone()
    }

    pub fn base_url(&self) -> &str {
        &self.shared.config.base_url
    }

    /// `http://127.0.0.1:PORT`: the Pub/Sub API (gRPC, plain HTTP/2).
    pub fn pubsub_url(&self) -> &str {
        &self.shared.config.pubsub_url
    }

    /// The id of the `UserChangeEvent` schema events carry now.
    pub fn pubsub_schema_id(&self) -> String {
        self.shared.pubsub.schema.id.clone()
    }

    /// How long change events are kept (default 72 hours); older ones are dropped now.
    pub fn set_pubsub_retention(&self, retention: Duration) {
        self.shared
            .pubsub
            .bus
            .set_retention(retention, chrono::Utc::now());
    }

    /// Longest wait before a keepalive while a subscriber is owed events (default 270 s).
    pub fn set_pubsub_keepalive(&self, keepalive: Duration) {
        self.shared.pubsub.set_keepalive(keepalive);
    }

    /// How long a stream owed nothing waits for a `FetchRequest` before closing (default 60 s).
    pub fn set_pubsub_idle_timeout(&self, timeout: Duration) {
        self.shared.pubsub.set_idle_timeout(timeout);
    }

    /// Publishes a gap event (`GapCreate`, `GapUpdate`, `GapDelete`, `GapUndelete`: header only,
    /// no field data) for `record_ids`, or with `GapOverflow` an overflow event (no record id).
    pub fn inject_gap(&self, change_type: ChangeType, record_ids: &[&str]) {
        let ids = record_ids.iter().map(|s| (*s).to_owned()).collect();
        admin::publish_gap(&self.shared, change_type, ids);
    }

    /// Ends the Pub/Sub streams open now with `UNAVAILABLE`, each after `after_events` more
    /// events (0: at once). Streams opened later are not affected.
    pub fn drop_pubsub_streams(&self, after_events: u32) {
        self.shared.pubsub.bus.drop_streams(after_events);
    }

    /// Change events the bus keeps now.
    pub fn pubsub_event_count(&self) -> usize {
        self.shared.pubsub.bus.len()
    }

    /// The user the OAuth tokens act as (`commitUser` of REST writes).
    pub fn integration_user_id(&self) -> String {
        read(&self.shared.org).integration_user_id()
    }

    /// The user the admin edits act as (`commitUser` of [`Self::admin_update_user`]).
    pub fn admin_user_id(&self) -> String {
        read(&self.shared.org).admin_user_id()
    }

    /// Creates a user as an administrator would in Salesforce's UI (not through the API: no
    /// API call counted, `changeOrigin` empty, `commitUser` [`Self::admin_user_id`]); the body
    /// is a REST create body. Returns the new id, or Salesforce's error code and message.
    pub fn admin_create_user(&self, body: &serde_json::Value) -> Result<String, (String, String)> {
        admin_users::create(&self.shared, body).map_err(errors::ApiError::code_and_message)
    }

    /// Updates a user as an administrator would (see [`Self::admin_create_user`]).
    pub fn admin_update_user(
        &self,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<(), (String, String)> {
        admin_users::update(&self.shared, id, body).map_err(errors::ApiError::code_and_message)
    }

    /// Writes the state file now (no-op without one).
    pub async fn flush_state(&self) -> Result<(), EmulatorError> {
        state_file::write_now(&self.shared).await
    }
}

/// A built emulator, bound to its port, not yet serving.
#[derive(Debug)]
pub struct Emulator {
    listener: TcpListener,
    pubsub_listener: TcpListener,
    port: u16,
    shared: Arc<Shared>,
}

impl Emulator {
    /// Binds `listen` (port 0 picks a free port), loads or generates the org, and prepares the
    /// routes. The org comes from the state file if it exists, else the seed file, else is generated.
    pub async fn build(
        config: EmulatorConfig,
        listen: SocketAddr,
    ) -> Result<Emulator, EmulatorError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: listen,
                source,
            })?;
        let local = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: listen,
                source,
            })?;
        let host = host_of(local);
        let base_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("http://{host}:{}", local.port()));

        let pubsub_addr = config
            .pubsub
            .listen
            .unwrap_or_else(|| SocketAddr::new(local.ip(), 0));
        let pubsub_listener =
            TcpListener::bind(pubsub_addr)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: pubsub_addr,
                    source,
                })?;
        let pubsub_url = pubsub_listener
            .local_addr()
            .map(|a| format!("http://{}:{}", host_of(a), a.port()))
            .map_err(|source| EmulatorError::Bind {
                addr: pubsub_addr,
                source,
            })?;
        let pubsub = pubsub::PubSub::new(&config.pubsub)?;

        let now = chrono::Utc::now();
        let (org, tokens) = match config.state_file.as_deref().filter(|p| p.exists()) {
            Some(path) => state_file::load(path)?,
            None => {
                let org = match &config.seed_file {
                    Some(path) => {
                        let mut org = seed::from_file(path, now)?;
                        access::catalog::extend(&mut org, &config.access, config.seed, now);
                        org
                    }
                    None => seed::generate_with(config.users, config.seed, now, &config.access),
                };
                (
                    org,
                    oauth::TokenStore::with_refresh_token(&config.refresh_token),
                )
            }
        };
        let shared = Arc::new(Shared {
            config: RuntimeConfig {
                consumer_key: config.consumer_key,
                consumer_secret: config.consumer_secret,
                access_token_lifetime: config.access_token_lifetime,
                access_token_max_uses: config.access_token_max_uses.map(|n| n.max(1)),
                rotate_refresh_tokens: config.rotate_refresh_tokens,
                base_url,
                pubsub_url,
                max_open_cursors: config.max_open_cursors.max(1),
                cursor_idle_timeout: config.cursor_idle_timeout,
                state_file: config.state_file,
                state_debounce: config.state_debounce,
            },
            org: RwLock::new(org),
            tokens: Mutex::new(tokens),
            cursors: Mutex::new(query::CursorStore::default()),
            faults: Mutex::new(config.faults),
            api_used: AtomicU64::new(0),
            daily_limit: AtomicU64::new(config.daily_api_limit),
            subquery_inline_rows: AtomicUsize::new(config.subquery_inline_rows.max(1)),
            stats: stats::Stats::default(),
            pubsub,
            rng: rng::SharedRng::from_clock(),
            dirty: AtomicBool::new(false),
            dirty_notify: Notify::new(),
        });
        // A fresh org is written at once, so a restart finds the same users and tokens.
        shared.mark_dirty();
        Ok(Emulator {
            listener,
            pubsub_listener,
            port: local.port(),
            shared,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://host:port` (or the configured public URL): the `instance_url` and token endpoint host.
    pub fn base_url(&self) -> &str {
        &self.shared.config.base_url
    }

    /// `http://host:port` of the Pub/Sub API (gRPC) listener.
    pub fn pubsub_url(&self) -> &str {
        &self.shared.config.pubsub_url
    }

    pub fn handle(&self) -> EmulatorHandle {
        EmulatorHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves REST and the Pub/Sub API until `shutdown` completes, then writes the state file one
    /// last time.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), EmulatorError> {
        let writer = state_file::spawn_writer(self.shared.clone());
        let app = router(self.shared.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let shared = self.shared.clone();
        let trigger = tokio::spawn(async move {
            shutdown.await;
            // Subscriptions end first, or the gRPC server would wait for them forever.
            shared.pubsub.bus.shutdown();
            let _ = stop_tx.send(true);
        });
        let (served, pubsub_served) = tokio::join!(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(stopped(stop_rx.clone()))
                .into_future(),
            pubsub::serve(self.shared.clone(), self.pubsub_listener, stopped(stop_rx)),
        );
        trigger.abort();
        if let Some(w) = writer {
            w.abort();
        }
        state_file::write_now(&self.shared).await?;
        served.map_err(EmulatorError::Serve)?;
        pubsub_served.map_err(EmulatorError::PubSubServe)
    }

    /// Serves in a background task; the returned value stops it.
    pub fn start(self) -> RunningEmulator {
        let handle = self.handle();
        let (tx, rx) = oneshot::channel::<()>();
        let join = tokio::spawn(self.run_until(async move {
            let _ = rx.await;
        }));
        RunningEmulator {
            handle,
            stop: tx,
            join,
        }
    }
}

/// An emulator serving in the background.
#[derive(Debug)]
pub struct RunningEmulator {
    handle: EmulatorHandle,
    stop: oneshot::Sender<()>,
    join: tokio::task::JoinHandle<Result<(), EmulatorError>>,
}

impl RunningEmulator {
    pub fn handle(&self) -> EmulatorHandle {
        self.handle.clone()
    }

    pub fn base_url(&self) -> &str {
        self.handle.base_url()
    }

    /// `http://127.0.0.1:PORT`: the Pub/Sub API (gRPC, plain HTTP/2, no TLS).
    pub fn pubsub_url(&self) -> String {
        self.handle.pubsub_url().to_owned()
    }

    /// Stops serving (gracefully) and writes the state file; returns when the port is released.
    pub async fn stop(self) -> Result<(), EmulatorError> {
        let _ = self.stop.send(());
        match self.join.await {
            Ok(r) => r,
            Err(e) => Err(EmulatorError::Serve(std::io::Error::other(e))),
        }
    }
}

/// An address's IP as a URL host: brackets for IPv6, loopback for the unspecified address.
fn host_of(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else if addr.is_ipv6() {
        format!("[{}]", addr.ip())
    } else {
        addr.ip().to_string()
    }
}

/// All routes: Salesforce's (counted in stats) and the emulator's own admin routes.
fn router(shared: Arc<Shared>) -> Router {
    let data = Router::new()
        .route("/services/data/{version}/limits", get(limits::limits))
        .route("/services/data/{version}/limits/", get(limits::limits))
        .route("/services/data/{version}/query", get(query::query))
        .route("/services/data/{version}/query/", get(query::query))
        .route(
            "/services/data/{version}/query/{locator}",
            get(query::query_more),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}",
            post(sobjects::create),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe",
            get(sobjects::describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/describe/",
            get(sobjects::describe),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/updated",
            get(sobjects::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/updated/",
            get(sobjects::updated),
        )
        .route(
            "/services/data/{version}/sobjects/{sobject}/{id}",
            get(sobjects::get_one)
                .patch(sobjects::update)
                .delete(sobjects::delete)
                .post(sobjects::post_on_id),
        )
        .route(
            "/services/data/{version}/composite/sobjects",
            post(collections::save)
                .patch(collections::save)
                .delete(collections::delete),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            limits::guard,
        ));
    let salesforce = Router::new()
        .route("/services/data", get(limits::versions))
        .route("/services/data/", get(limits::versions))
        .route("/services/oauth2/token", post(oauth::token))
        .route("/services/oauth2/userinfo", get(userinfo::userinfo))
        .route(
            "/services/oauth2/authorize",
            get(oauth::authorize_page).post(oauth::authorize_submit),
        )
        .route(
            "/services/oauth2/revoke",
            post(oauth::revoke_post).get(oauth::revoke_get),
        )
        .merge(data)
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            limits::count_and_delay,
        ));
    Router::new()
        .merge(salesforce)
        .route(
            "/__emulator/faults",
            get(admin::get_faults).post(admin::post_faults),
        )
        .route("/__emulator/stats", get(admin::get_stats))
        .route("/__emulator/access", get(admin::get_access))
        .route("/__emulator/reset-stats", post(admin::reset_stats))
        .route("/__emulator/users", post(admin_users::post_create))
        .route("/__emulator/users/{id}", patch(admin_users::patch_update))
        .fallback(limits::not_found)
        .with_state(shared)
}
