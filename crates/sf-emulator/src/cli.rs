//! The `sf-emulator` command line: flags, the printed credentials, graceful shutdown. The binary
//! (`src/bin/sf-emulator.rs` of the service) only starts a runtime and calls [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::{Emulator, EmulatorConfig, FaultConfig};
use clap::Parser;

/// A local Salesforce API emulator (OAuth, REST sObjects/User, SOQL query, collections, limits,
/// fault injection).
#[derive(Debug, Parser)]
#[command(name = "sf-emulator", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090", env = "SF_EMULATOR_LISTEN")]
    listen: SocketAddr,
    /// Address of the Pub/Sub API (gRPC, plain HTTP/2) listener: change events of User.
    #[arg(
        long,
        default_value = "127.0.0.1:8091",
        env = "SF_EMULATOR_PUBSUB_LISTEN"
    )]
    pubsub_listen: SocketAddr,
    /// Seconds before a keepalive while a Pub/Sub subscriber is owed events (Salesforce: 270).
    #[arg(long, default_value_t = 270)]
    pubsub_keepalive_secs: u64,
    /// Hours change events are kept (Salesforce: 72).
    #[arg(long, default_value_t = 72)]
    pubsub_retention_hours: u64,
    /// Users to generate (ignored with --seed, or when the --state file exists).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Seed of the generated users (same seed, same users).
    #[arg(long, default_value_t = 42)]
    random_seed: u64,
    /// JSON file of users to start with: an array of User objects, or {"users":[…]}.
    #[arg(long = "seed")]
    seed_file: Option<PathBuf>,
    /// Persist the org and tokens here; loaded at start when it exists.
    #[arg(long = "state")]
    state_file: Option<PathBuf>,
    /// The URL clients reach the emulator at (instance_url), when not the listen address.
    #[arg(long, env = "SF_EMULATOR_PUBLIC_URL")]
    public_url: Option<String>,
    // Own env names, not the client's SF_CLIENT_ID…: a shell exported for a real org must not make
    // the emulator adopt (and print) real credentials.
    /// Consumer key of the emulated connected app.
    #[arg(
        long,
        default_value = "idm-sync-emulator-key",
        env = "SF_EMULATOR_CONSUMER_KEY"
    )]
    consumer_key: String,
    #[arg(
        long,
        default_value = "idm-sync-emulator-secret",
        env = "SF_EMULATOR_CONSUMER_SECRET",
        hide_env_values = true
    )]
    consumer_secret: String,
    #[arg(
        long,
        default_value = "idm-sync-emulator-refresh-token",
        env = "SF_EMULATOR_REFRESH_TOKEN",
        hide_env_values = true
    )]
    refresh_token: String,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    token_lifetime: u64,
    /// Data calls an access token serves before it expires (unlimited unless given).
    #[arg(long)]
    token_max_uses: Option<u64>,
    /// Each refresh returns a new refresh token and invalidates the old one.
    #[arg(long)]
    rotate_refresh_tokens: bool,
    /// The daily API allowance.
    #[arg(long, default_value_t = 100_000)]
    daily_limit: u64,
    /// Probability (0..=1) of a 503 SERVER_UNAVAILABLE on a data call.
    #[arg(long, default_value_t = 0.0)]
    fault_503_rate: f64,
    /// Probability (0..=1) of UNABLE_TO_LOCK_ROW on a record write.
    #[arg(long, default_value_t = 0.0)]
    fault_lock_rate: f64,
    /// Milliseconds added to every call.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Regular permission sets to add to the shipped five (Generated_Permission_Set_<n>).
    #[arg(long, default_value_t = 0)]
    extra_permission_sets: usize,
    /// Regular public groups to add to the shipped three (Generated_Group_<n>).
    #[arg(long, default_value_t = 0)]
    extra_groups: usize,
    /// Permission sets or permission set groups assigned to each generated user.
    #[arg(long, default_value_t = 0)]
    assignments_per_user: usize,
    /// Public groups each generated user is a member of.
    #[arg(long, default_value_t = 0)]
    memberships_per_user: usize,
    /// Child rows a parent-to-child subquery shows inline per parent; the rest are paged through
    /// the child result's nextRecordsUrl.
    #[arg(long, default_value_t = crate::DEFAULT_SUBQUERY_INLINE_ROWS)]
    subquery_inline_rows: usize,
}

/// Parses the command line, serves until Ctrl-C or SIGTERM, and says how it ended.
pub async fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let config = EmulatorConfig {
        users: cli.users,
        seed: cli.random_seed,
        seed_file: cli.seed_file,
        state_file: cli.state_file,
        consumer_key: cli.consumer_key,
        consumer_secret: cli.consumer_secret,
        refresh_token: cli.refresh_token,
        access_token_lifetime: Duration::from_secs(cli.token_lifetime),
        access_token_max_uses: cli.token_max_uses,
        rotate_refresh_tokens: cli.rotate_refresh_tokens,
        daily_api_limit: cli.daily_limit,
        faults: FaultConfig {
            rate_503: cli.fault_503_rate.clamp(0.0, 1.0),
            rate_lock_row: cli.fault_lock_rate.clamp(0.0, 1.0),
            latency_ms: cli.latency_ms,
            refuse_member_ranges: false,
        },
        public_url: cli.public_url,
        access: crate::AccessConfig {
            extra_permission_sets: cli.extra_permission_sets,
            extra_groups: cli.extra_groups,
            assignments_per_user: cli.assignments_per_user,
            memberships_per_user: cli.memberships_per_user,
        },
        subquery_inline_rows: cli.subquery_inline_rows,
        pubsub: crate::PubSubConfig {
            listen: Some(cli.pubsub_listen),
            keepalive: Duration::from_secs(cli.pubsub_keepalive_secs),
            retention: Duration::from_secs(cli.pubsub_retention_hours * 3600),
            ..crate::PubSubConfig::default()
        },
        ..EmulatorConfig::default()
    };
    let (key, secret, refresh) = (
        config.consumer_key.clone(),
        config.consumer_secret.clone(),
        config.refresh_token.clone(),
    );
    let emulator = match Emulator::build(config, cli.listen).await {
        Ok(e) => e,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("sf-emulator: {msg}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let handle = emulator.handle();
    // These are the emulator's own test credentials, printed on purpose so a developer can use them.
    println!("Salesforce emulator listening on {}", emulator.base_url());
    println!(
        "  Pub/Sub API    : {} (gRPC, plain HTTP/2; topic /data/UserChangeEvent)",
        emulator.pubsub_url()
    );
    println!(
        "  token endpoint : {}/services/oauth2/token",
        emulator.base_url()
    );
    println!("  consumer key   : {key}");
    println!("  consumer secret: {secret}");
    println!("  refresh token  : {refresh}");
    println!(
        "  org id         : {}  users: {}",
        handle.org_id(),
        handle.user_count()
    );
    // Ctrl-C, or SIGTERM (what `docker stop` sends), ends it gracefully: the state file is written.
    let shutdown = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    };
    match emulator.run_until(shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sf-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
