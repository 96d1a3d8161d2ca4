//! `idm-sync demo`: the product in one command. Starts a Salesforce emulator in this process,
//! runs every role (`all`) against a copy of `conf/` pointed at it, then walks through a
//! reconciliation, an edit, a create and an edit made in Salesforce (change events), printing
//! what each step did and how long it took, and keeps serving until Ctrl-C.

mod args;
mod client;
mod conf;
mod preflight;
mod report;
mod steps;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

pub use args::DemoArgs;

use crate::config::Conf;
use crate::config::authentication::{DEFAULT_PASSWORD, StoredPassword};
use crate::http_server::HttpLimitsArgs;
use crate::outbound::topology::{Topology, lanes_in};
use crate::shutdown::{self, Shutdown};
use crate::tls::TlsArgs;
use client::Rest;
use report::Step;
use sf_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

const STEPS: usize = 7;
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What `all` is started with; the binary turns it into its own `all` arguments, so the
/// demo runs exactly the roles `idm-sync all` runs.
/// No `Debug`: the URLs may carry passwords.
#[derive(Clone)]
pub struct RolesPlan {
    pub conf_dir: PathBuf,
    pub listen: String,
    pub database_url: String,
    pub db_max_connections: u32,
    pub amqp_url: String,
    pub broker_prefix: String,
    pub partitions: u16,
    pub relay_batch: i64,
    pub outbox_retention_hours: u64,
    pub tls: TlsArgs,
    pub http: HttpLimitsArgs,
    /// The secrets key file, under the data directory.
    pub secrets_key_file: PathBuf,
}

/// Runs the demo. `roles` runs `idm-sync all` with a plan until its shutdown completes.
/// The top of a command, so errors are `anyhow` with context here.
pub async fn run<F, Fut>(args: DemoArgs, shutdown: Shutdown, roles: F) -> anyhow::Result<()>
where
    F: FnOnce(RolesPlan, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    println!("idm-sync demo: Salesforce emulator + every idm-sync role in one process");
    // The walk-through talks to the plain listener (a loopback client needs no certificate).
    if args.tls.no_http {
        anyhow::bail!(
            "the demo's walk-through uses the HTTP listener: drop --no-http (HTTPS can run beside it with --tls-listen)"
        );
    }

    let step = Step::start(
        1,
        STEPS,
        "preflight",
        "check PostgreSQL and RabbitMQ, reset the demo database",
    );
    let database = preflight::reset_database(&args.database_url).await?;
    // The lanes of the sync.json the demo's configuration is written from.
    let lanes = lanes_in(&args.conf_dir).context("the demo's sync.json is invalid")?;
    let topology = Topology::new(&args.broker_prefix, args.partitions).with_lanes(lanes);
    preflight::check_broker(&args.amqp_url, topology).await?;
    step.done(&format!(
        "PostgreSQL and RabbitMQ reachable; database {database} dropped (re-created at start-up)"
    ));

    let step = Step::start(
        2,
        STEPS,
        "emulator",
        &format!("start a Salesforce emulator with {} users", args.users),
    );
    let config = EmulatorConfig {
        users: args.users,
        ..EmulatorConfig::default()
    };
    let emulator = Emulator::build(config.clone(), args.emulator_listen)
        .await
        .context("the Salesforce emulator could not start")?;
    let emulator_url = emulator.base_url().to_owned();
    let conf_dir = args.tls.data_dir.join("demo").join("conf");
    let token_url = format!("{emulator_url}/services/oauth2/token");
    conf::write(
        &args.conf_dir,
        &conf_dir,
        &conf::EmulatorApp {
            token_url: &token_url,
            client_id: &config.consumer_key,
            client_secret: &config.consumer_secret,
            refresh_token: &config.refresh_token,
            pubsub_url: emulator.pubsub_url(),
        },
    )
    .context("cannot write the demo configuration")?;
    let conf = Conf::load(&conf_dir).context("the demo configuration is invalid")?;
    let key_file = args.tls.data_dir.join("secrets.key");
    let key_created =
        crate::secrets::ensure_file(&key_file).context("cannot create the secrets key file")?;
    let emulator = emulator.start();
    let handle = emulator.handle();
    step.done(&format!(
        "{} users on {emulator_url}; connector configured in {}; stored secrets sealed with the key in {}{}",
        handle.user_count(),
        conf_dir.display(),
        key_file.display(),
        if key_created { " (new)" } else { "" }
    ));

    let password = match &conf.auth.password {
        StoredPassword::Clear(p) => p.clone(),
        _ => anyhow::bail!(
            "{}/authentication.json stores the admin password hashed; the demo logs in over REST and needs it in clear text (IDM_ADMIN_PASSWORD)",
            args.conf_dir.display()
        ),
    };
    let base = format!("http://{}/openidm", client_addr(&args.listen));
    let rest = Rest::new(base, conf.auth.username.clone(), password.clone())?;

    // Our own trigger: Ctrl-C trips it, and so does a failed step, so the roles always stop.
    let (trigger, inner) = shutdown::channel();
    let trigger = Arc::new(trigger);
    let forward = trigger.clone();
    tokio::spawn(async move {
        shutdown.wait().await;
        forward.trigger();
    });
    let plan = RolesPlan {
        conf_dir: conf_dir.clone(),
        listen: args.listen.clone(),
        database_url: args.database_url.clone(),
        db_max_connections: args.db_max_connections,
        amqp_url: args.amqp_url.clone(),
        broker_prefix: args.broker_prefix.clone(),
        partitions: args.partitions,
        relay_batch: args.relay_batch,
        outbox_retention_hours: args.outbox_retention_hours,
        tls: args.tls.clone(),
        http: args.http.clone(),
        secrets_key_file: key_file,
    };
    let roles = roles(plan, inner);
    tokio::pin!(roles);

    let walk = walk_through(&rest, &handle);
    let outcome = tokio::select! {
        ended = &mut roles => {
            // The roles end early only on Ctrl-C (Ok) or a start-up failure (Err).
            let stopped = emulator.stop().await;
            ended?;
            stopped.context("the Salesforce emulator failed")?;
            println!("\nstopped during the walk-through");
            return Ok(());
        }
        outcome = walk => outcome,
    };
    if let Err(e) = outcome {
        trigger.trigger();
        let _ = roles.await;
        let _ = emulator.stop().await;
        return Err(e).context("the demo walk-through failed");
    }
    print_running(&args, &conf.auth.username, &password, &emulator_url);
    let ended = roles.await;
    let stopped = emulator.stop().await;
    ended?;
    stopped.context("the Salesforce emulator failed")?;
    println!("idm-sync demo stopped");
    Ok(())
}

/// Steps 3 to 7: wait for the API, reconcile, edit a user, create a user, edit it in
/// Salesforce.
async fn walk_through(rest: &Rest, emulator: &EmulatorHandle) -> anyhow::Result<()> {
    let step = Step::start(
        3,
        STEPS,
        "start",
        "idm-sync all: serve (REST API + outbox relay), worker, scheduler, events",
    );
    rest.wait_ready(READY_TIMEOUT).await?;
    step.done(&format!("REST API ready on {}", rest.base()));

    let step = Step::start(
        4,
        STEPS,
        "reconcile",
        &format!(
            "POST /openidm/recon?_action=recon&mapping={}&waitForCompletion=true",
            steps::MAPPING
        ),
    );
    steps::reconcile(rest).await?;
    step.done("Salesforce users are managed users now");

    let step = Step::start(
        5,
        STEPS,
        "edit",
        "PATCH one managed user's sn; watch LastName change in Salesforce",
    );
    steps::edit_user(rest, emulator).await?;
    step.done("implicit sync pushed the edit");

    let step = Step::start(
        6,
        STEPS,
        "create",
        "create a managed user; watch it appear in Salesforce with the mapping's defaults",
    );
    steps::create_user(rest, emulator).await?;
    step.done("implicit sync created the Salesforce user");

    let step = Step::start(
        7,
        STEPS,
        "inbound",
        "edit that user in Salesforce as an administrator; watch the managed user follow",
    );
    steps::salesforce_edit(rest, emulator).await?;
    step.done("a change event brought the edit in");
    Ok(())
}

/// Where a local client reaches a listen address: an unspecified IP becomes loopback.
fn client_addr(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let ip = if addr.is_ipv6() { "[::1]" } else { "127.0.0.1" };
            format!("{ip}:{}", addr.port())
        }
        _ => listen.to_owned(),
    }
}

fn print_running(args: &DemoArgs, username: &str, password: &str, emulator_url: &str) {
    let addr = client_addr(&args.listen);
    // Only the shipped default is printed: a password someone chose stays off the terminal.
    let shown = if password == DEFAULT_PASSWORD {
        password
    } else {
        "(the one you set: IDM_ADMIN_PASSWORD or conf/authentication.json)"
    };
    println!("\nidm-sync demo is running; Ctrl-C stops it.");
    println!("  Admin UI     http://{addr}/admin");
    println!("  REST API     http://{addr}/openidm");
    if let Some(tls) = &args.tls.tls_listen {
        let cert = match &args.tls.tls_cert {
            Some(cert) => cert.display().to_string(),
            None => format!(
                "{} (self-signed)",
                args.tls.data_dir.join("tls/cert.pem").display()
            ),
        };
        println!(
            "  HTTPS        https://{}/openidm  certificate {cert}",
            client_addr(tls)
        );
    }
    println!("  admin        {username} / {shown}");
    println!("  Salesforce   {emulator_url} (emulator; GET {emulator_url}/__emulator/stats)");
    println!(
        "  try          curl -s -u {username}:<password> 'http://{addr}/openidm/managed/user?_queryFilter=true&_pageSize=5'"
    );
}
