//! Implicit sync end to end (issue 5's figures): managed-user changes committed in Postgres →
//! outbox → relay → RabbitMQ → worker(s) → the emulator (its own process).
//!
//! (a) single-edit latency, REST commit → applied in Salesforce, over sequential edits (p50/p99,
//!     from the worker's audit: outbox commit time to Salesforce's answer);
//! (b) N edits across N users, committed in bulk: changes/s (from the edits' commit to the
//!     transaction recording the last Salesforce answer, on the database's clock) and Salesforce
//!     API calls per change. The rate from the edits' transaction start is printed beside it: it
//!     also counts the bench's own N-row UPDATE (about 0.75 s at 20,000 rows), during which
//!     nothing is visible to the relay yet;
//! (d) 10,000 of the users given 3 permission sets and 1 public group in one bulk edit: the
//!     write and query calls it took;
//! (c) the same as (b) with 100 ms of emulator latency per call, with 1, 2 and 4 workers: separate
//!     worker instances (own broker connection, own consumers, own membership row) that split
//!     the 16 partitions between them before the edits start.
//!
//! Run: `cargo bench --bench implicit_sync` (BENCH_SYNC_USERS, default 20000; BENCH_PG_URL;
//! BENCH_SYNC_ONLY_C=1 runs (c) alone; BENCH_SYNC_LATENCY_MS, default 100, is (c)'s latency).
//! The database `idm_bench_sync` is dropped and re-created; broker names use the prefix
//! `bench-sync` and are deleted at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/app.rs"]
mod app;
#[path = "support/emulator.rs"]
mod emulator;
#[path = "support/inbound.rs"]
mod inbound;
use app::fresh_app;
use emulator::start_emulator;
use inbound::reconcile_inbound;
use std::path::Path;
use std::time::{Duration, Instant};

use idm_sync::outbound::broker::{BrokerSettings, BrokerStatus};
use idm_sync::outbound::relay::{Relay, RelaySettings};
use idm_sync::outbound::topology::Topology;
use idm_sync::outbound::worker::{OUTBOUND_MAPPING, WorkerSettings};
use idm_sync::secrets::{KEY_LEN, Sealer};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use sqlx::PgPool;

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The key the bench's server and workers seal the Salesforce secrets under.
const BENCH_SECRETS_KEY: [u8; KEY_LEN] = [7; KEY_LEN];

fn main() {
    idm_sync::salesforce::use_ring_for_tls();
    let users: i64 = std::env::var("BENCH_SYNC_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let (_emulator, base) = start_emulator(users as usize + 1, &[]);
    // Before any thread starts: the shipped conf reads the token URL from the environment.
    unsafe { std::env::set_var("SF_LOGIN_URL", format!("{base}/services/oauth2/token")) };
    unsafe { std::env::set_var("IDM_RECON_SCHEDULE_ENABLED", "false") };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(users, server, base));
}

async fn run(users: i64, server: String, base: String) {
    let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let topology = Topology::new("bench-sync", 16).with_lanes([OUTBOUND_MAPPING]);
    let broker = BrokerSettings {
        url: AMQP.into(),
        topology: topology.clone(),
        connection_name: "bench".into(),
    };
    let app = fresh_app(&server, "idm_bench_sync", BENCH_SECRETS_KEY).await;
    let rest = format!("http://127.0.0.1:{}/openidm", app.port());
    let pool = app.pool().clone();
    let engine = app.recon().unwrap().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let relay = RelaySettings {
        broker: broker.clone(),
        batch_size: 500,
        poll_interval: Duration::from_millis(200),
        retention: Duration::from_secs(3600),
        confirm_timeout: idm_sync::outbound::relay::DEFAULT_CONFIRM_TIMEOUT,
    };
    tokio::spawn(
        Relay::new(pool.clone(), relay, BrokerStatus::default()).run_until(std::future::pending()),
    );
    let http = reqwest::Client::new();

    let (_, secs) = reconcile_inbound(&engine).await;
    println!("set-up: recon of {users} users in {secs:.1} s");

    if std::env::var("BENCH_SYNC_ONLY_C").is_err() {
        single_worker(&conf_dir, &pool, &broker, &http, &rest, &base, users).await;
    }
    scaling(&conf_dir, &pool, &broker, &http, &base).await;
    delete_topology(&topology).await;
}

/// (a) and (b), with one worker.
async fn single_worker(
    conf_dir: &Path,
    pool: &PgPool,
    broker: &BrokerSettings,
    http: &reqwest::Client,
    rest: &str,
    base: &str,
    users: i64,
) {
    let (stop1, rx1) = tokio::sync::watch::channel(false);
    spawn_worker(conf_dir, pool, broker, rx1.clone());
    wait_in_step(pool).await; // the recon's changes cause no Salesforce writes: nothing to wait for

    // (a) sequential single edits over REST.
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT second_id FROM links ORDER BY second_id LIMIT 1000")
            .fetch_all(pool)
            .await
            .unwrap();
    let t = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        let res = http
            .patch(format!("{rest}/managed/user/{id}"))
            .basic_auth("openidm-admin", Some("openidm-admin"))
            .json(&serde_json::json!([{"operation": "replace", "field": "/sn", "value": format!("Edited{i}")}]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        wait_user(pool, id).await;
    }
    let mut lat: Vec<i64> = sqlx::query_scalar(
        "SELECT (body->>'latencyMs')::bigint FROM sync_audit WHERE body->>'action' = 'UPDATE' AND body->>'status' = 'SUCCESS'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "(a) {} sequential REST edits in {:.1} s: commit → applied in Salesforce p50 {} ms, p99 {} ms",
        ids.len(),
        t.elapsed().as_secs_f64(),
        pct(0.5),
        pct(0.99)
    );

    // (b) N edits across N users, committed in bulk.
    let bulk = bulk_edits(pool, http, base, "b").await;
    println!(
        "(b) {users} edits of {users} users: {:.0} changes/s ({:.0} from the transaction start), {:.4} Salesforce API calls per change",
        bulk.rate, bulk.rate_from_start, bulk.calls
    );
    grants(pool, http, base, users.min(10_000)).await;
    stop1.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// (c): bulk edits with slow Salesforce calls, 1, 2 and 4 workers.
async fn scaling(
    conf_dir: &Path,
    pool: &PgPool,
    broker: &BrokerSettings,
    http: &reqwest::Client,
    base: &str,
) {
    let latency: u64 = std::env::var("BENCH_SYNC_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let topology = &broker.topology;

    http.post(format!("{base}/__emulator/faults"))
        .json(&serde_json::json!({"latencyMs": latency}))
        .send()
        .await
        .unwrap();
    let mut single = Bulk::default();
    for workers in [1usize, 2, 4] {
        let (stop, rx) = tokio::sync::watch::channel(false);
        for _ in 0..workers {
            spawn_worker(conf_dir, pool, broker, rx.clone());
        }
        wait_split(pool, workers, topology.partitions).await;
        let bulk = bulk_edits(pool, http, base, &format!("c{workers}")).await;
        if workers == 1 {
            single = bulk;
        }
        println!(
            "(c) {latency} ms per call, {workers} worker(s): {:.0} changes/s ({:.2}× one worker; from the transaction start {:.0}, {:.2}×), {:.4} calls per change",
            bulk.rate,
            bulk.rate / single.rate,
            bulk.rate_from_start,
            bulk.rate_from_start / single.rate_from_start,
            bulk.calls
        );
        stop.send(true).unwrap();
        wait_split(pool, 0, topology.partitions).await; // every worker deregistered
    }
}

async fn delete_topology(topology: &Topology) {
    let conn = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for queue in topology.queues() {
        let _ = ch
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
    }
    let _ = ch
        .queue_delete(
            topology.dead_letter_queue().into(),
            QueueDeleteOptions::default(),
        )
        .await;
    let _ = ch
        .exchange_delete(topology.exchange().into(), ExchangeDeleteOptions::default())
        .await;
    let _ = ch
        .exchange_delete(
            topology.dead_letter_exchange().into(),
            ExchangeDeleteOptions::default(),
        )
        .await;
}

fn spawn_worker(
    conf_dir: &Path,
    pool: &PgPool,
    broker: &BrokerSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut workers = idm_sync::app::outbound_workers(
        conf_dir,
        pool.clone(),
        idm_sync::repo::salesforce_store::postgres(
            pool.clone(),
            Sealer::new(&BENCH_SECRETS_KEY).unwrap(),
        ),
        WorkerSettings::new(broker.clone()),
        BrokerStatus::default(),
    )
    .unwrap();
    assert_eq!(
        workers.len(),
        1,
        "the bench's conf/ has one outbound mapping"
    );
    let worker = workers.remove(0);
    tokio::spawn(worker.run_until(async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
}

/// (d) `n` users each given 3 permission sets and 1 public group in one bulk edit (an outbox
/// row each, as REST writes make): the Salesforce write calls it took (issue 16: at most
/// ⌈4n / 200⌉ + 10) and the query calls (the catalog, read once).
async fn grants(pool: &PgPool, http: &reqwest::Client, emulator: &str, n: i64) {
    let before = call_counts(http, emulator).await;
    let rev_before: i64 = sqlx::query_scalar("SELECT coalesce(max(rev), 0) FROM managed_objects")
        .fetch_one(pool)
        .await
        .unwrap();
    let t = Instant::now();
    let edited: i64 = sqlx::query_scalar(
        "WITH picked AS (
             SELECT m.id FROM managed_objects m JOIN links l ON l.second_id = m.id
             WHERE m.object_type = 'user' ORDER BY m.id LIMIT $1)
         , changed AS (
             UPDATE managed_objects m SET body = m.body
                    || '{\"permissionSets\": [\"Sales_Operations\", \"Support_Console\", \"Report_Builder\"], \"publicGroups\": [\"Sales_Team\"]}'::jsonb,
                    rev = nextval('managed_object_rev_seq'), updated_at = now()
             FROM picked WHERE m.id = picked.id AND m.object_type = 'user'
             RETURNING m.id, m.rev)
         , rows AS (INSERT INTO outbox (object_type, object_id, rev, operation, changed_fields)
                    SELECT 'user', id, rev, 'update', '{permissionSets,publicGroups}' FROM changed
                    RETURNING 1)
         SELECT count(*) FROM rows",
    )
    .bind(n)
    .fetch_one(pool)
    .await
    .unwrap();
    wait_synced_past(pool, rev_before, edited).await;
    let took = t.elapsed().as_secs_f64();
    let after = call_counts(http, emulator).await;
    let writes = after.0 - before.0;
    let queries = after.1 - before.1;
    let held: serde_json::Value = http
        .get(format!("{emulator}/__emulator/access"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "(d) {edited} users given 3 permission sets + 1 public group: in step after {took:.1} s; {writes} write calls (⌈4n/200⌉ + 10 = {}), {queries} query calls; the org holds {held}",
        (4 * edited + 199) / 200 + 10
    );
}

/// Collections write calls and query calls the emulator answered so far.
async fn call_counts(http: &reqwest::Client, emulator: &str) -> (u64, u64) {
    let s: serde_json::Value = http
        .get(format!("{emulator}/__emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = s["calls"].as_object().unwrap();
    let count = |pred: &dyn Fn(&str) -> bool| -> u64 {
        calls
            .iter()
            .filter(|(k, _)| pred(k))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    };
    (
        count(&|k| k.contains("/composite/sobjects") && !k.starts_with("GET")),
        count(&|k| k.contains("/query")),
    )
}

/// A bulk run's figures: changes/s from the edits' commit and from their transaction start,
/// and Salesforce API calls per change.
#[derive(Clone, Copy, Default)]
struct Bulk {
    rate: f64,
    rate_from_start: f64,
    calls: f64,
}

/// Edits every linked user's `sn` in one statement (with one outbox row each, as a REST write
/// makes), then waits until every link holds the new revision.
async fn bulk_edits(pool: &PgPool, http: &reqwest::Client, emulator: &str, tag: &str) -> Bulk {
    let calls_before = data_calls(http, emulator).await;
    let rev_before: i64 = sqlx::query_scalar("SELECT coalesce(max(rev), 0) FROM managed_objects")
        .fetch_one(pool)
        .await
        .unwrap();
    // `clock_timestamp()` at the statement's end: the autocommit follows at once.
    let (n, started, committed): (i64, f64, f64) = sqlx::query_as(
        "WITH changed AS (
             UPDATE managed_objects m SET body = jsonb_set(m.body, '{sn}', to_jsonb($1 || '-' || m.id)),
                    rev = nextval('managed_object_rev_seq'), updated_at = now()
             FROM links l WHERE l.second_id = m.id AND m.object_type = 'user'
             RETURNING m.id, m.rev, m.body)
         , rows AS (INSERT INTO outbox (object_type, object_id, rev, operation, changed_fields)
                    SELECT 'user', id, rev, 'update', '{sn}' FROM changed RETURNING 1)
         SELECT count(*), extract(epoch FROM now())::float8, extract(epoch FROM clock_timestamp())::float8 FROM rows",
    )
    .bind(tag)
    .fetch_one(pool)
    .await
    .unwrap();
    wait_synced_past(pool, rev_before, n).await;
    // To the transaction that recorded the last Salesforce answer, on the database's clock:
    // the poll's granularity does not enter the figure.
    let ended: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM max(updated_at))::float8 FROM links WHERE synced_rev > $1",
    )
    .bind(rev_before)
    .fetch_one(pool)
    .await
    .unwrap();
    wait_in_step(pool).await; // the thorough check
    let calls = data_calls(http, emulator).await - calls_before;
    Bulk {
        rate: n as f64 / (ended - committed),
        rate_from_start: n as f64 / (ended - started),
        calls: calls as f64 / n as f64,
    }
}

/// Waits until `n` links hold a revision later than `rev`: every edit of a bulk run synced.
/// One scan of `links` (about 14 ms at 20,000 users) every 500 ms: polling takes CPU from the
/// system being measured (the join of [`wait_in_step`] every 50 ms took a third of a core);
/// the timing comes from the rows' timestamps, not from when the poll noticed.
async fn wait_synced_past(pool: &PgPool, rev: i64, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM links WHERE synced_rev > $1")
            .bind(rev)
            .fetch_one(pool)
            .await
            .unwrap();
        if done >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} edits never reached Salesforce",
            n - done
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Waits until no linked managed user is ahead of what Salesforce was last sent.
async fn wait_in_step(pool: &PgPool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM links l JOIN managed_objects m ON m.id = l.second_id
             WHERE l.synced_rev IS NULL OR l.synced_rev < m.rev",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if behind == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{behind} users never reached Salesforce"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn data_calls(http: &reqwest::Client, emulator: &str) -> u64 {
    let s: serde_json::Value = http
        .get(format!("{emulator}/__emulator/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains("/services/data/"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum()
}

/// Waits until exactly `workers` live workers consume the partitions, each partition once.
async fn wait_split(pool: &PgPool, workers: usize, partitions: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members = idm_sync::repo::workers::live(pool, OUTBOUND_MAPPING)
            .await
            .unwrap();
        let mut held: Vec<i32> = members.iter().flat_map(|m| m.partitions.clone()).collect();
        held.sort_unstable();
        let all: Vec<i32> = (0..i32::from(partitions)).collect();
        if members.len() == workers && (workers == 0 || held == all) {
            let split: Vec<usize> = members.iter().map(|m| m.partitions.len()).collect();
            if workers > 0 {
                println!("    {workers} worker(s) split the partitions {split:?}");
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "workers never split the partitions: {members:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until one user's link holds its current revision.
async fn wait_user(pool: &PgPool, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done: bool = sqlx::query_scalar(
            "SELECT coalesce(l.synced_rev >= m.rev, false) FROM links l JOIN managed_objects m ON m.id = l.second_id
             WHERE l.second_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap();
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "user {id} never reached Salesforce"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
