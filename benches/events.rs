//! Salesforce change events end to end (issue 17's figures): an administrator's edit in
//! Salesforce (the emulator, its own process, through its admin route: another commitUser than
//! the integration user) → change event on the Pub/Sub API → the events subscriber → the managed
//! user's commit in Postgres.
//!
//! (a) latency at a steady 50 changes/s: each edit's send time to its managed commit (the row's
//!     `updated_at`, on the database's clock; the same machine's clock as the bench's), p50/p99;
//! (b) a burst of N edits sent as fast as the emulator takes them: changes/s until the last one
//!     is committed, and REST API calls per change (every `/services` call the emulator counted:
//!     the queries that read the changed users, grant memberships, the token, userinfo).
//!
//! Run: `cargo bench --bench events` (BENCH_EVENTS_USERS, default 10000: the burst's size and
//! the org's; BENCH_EVENTS_RATE_SECS, default 20: (a)'s duration; BENCH_PG_URL). The database
//! `idm_bench_events` is dropped and re-created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/app.rs"]
mod app;
#[path = "support/emulator.rs"]
mod emulator;
#[path = "support/inbound.rs"]
mod inbound;
use app::fresh_app;
use emulator::{free_port, start_emulator};
use inbound::reconcile_inbound;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use idm_sync::events::SubscriberSettings;
use idm_sync::metrics::Metrics;
use idm_sync::secrets::KEY_LEN;
use serde_json::{Value, json};
use sqlx::PgPool;

const BENCH_SECRETS_KEY: [u8; KEY_LEN] = [9; KEY_LEN];

fn main() {
    idm_sync::salesforce::use_ring_for_tls();
    let users: usize = env_or("BENCH_EVENTS_USERS", 10_000);
    let rate_secs: u64 = env_or("BENCH_EVENTS_RATE_SECS", 20);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let pubsub = free_port();
    let listen = format!("127.0.0.1:{pubsub}");
    let (_emulator, base) = start_emulator(users + 2, &["--pubsub-listen", &listen]);
    // Before any thread starts: the shipped conf reads these from the environment.
    unsafe {
        std::env::set_var("SF_LOGIN_URL", format!("{base}/services/oauth2/token"));
        std::env::set_var("SF_CHANGE_EVENTS", "true");
        std::env::set_var("SF_PUBSUB_URL", format!("http://127.0.0.1:{pubsub}"));
        std::env::set_var("IDM_RECON_SCHEDULE_ENABLED", "false");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(users, rate_secs, server, base));
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(users: usize, rate_secs: u64, server: String, base: String) {
    let app = fresh_app(&server, "idm_bench_events", BENCH_SECRETS_KEY).await;
    let pool = app.pool().clone();
    let engine = app.recon().unwrap().clone();
    let (_, secs) = reconcile_inbound(&engine).await;
    println!("set-up: recon of {users} users in {secs:.1} s");
    let subscribers = idm_sync::events::subscribers(
        &app.components().conf,
        &engine,
        &pool,
        "bench",
        &Metrics::isolated(),
        &SubscriberSettings::default(),
    )
    .unwrap();
    for s in subscribers {
        tokio::spawn(s.run_until(std::future::pending()));
    }
    wait_for(
        &pool,
        "SELECT count(*) FROM event_subscriptions WHERE state = 'SUBSCRIBED'",
        1,
    )
    .await;

    // The Salesforce ids of the imported users, in a fixed order.
    let ids: Vec<String> = sqlx::query_scalar("SELECT first_id FROM links ORDER BY first_id")
        .fetch_all(&pool)
        .await
        .unwrap();
    let http = reqwest::Client::new();

    // (a) a steady 50 changes/s.
    let n = (50 * rate_secs) as usize;
    let mut sent: Vec<(String, SystemTime)> = Vec::with_capacity(n);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, id) in ids.iter().take(n).enumerate() {
        tick.tick().await;
        let at = SystemTime::now();
        edit(&http, &base, id, &format!("Steady{i}")).await;
        sent.push((id.clone(), at));
    }
    wait_for(
        &pool,
        "SELECT count(*) FROM managed_objects WHERE body->>'sn' LIKE 'Steady%'",
        n as i64,
    )
    .await;
    let mut lat: Vec<f64> = Vec::with_capacity(n);
    for (id, at) in &sent {
        let committed: DateTime<Utc> = sqlx::query_scalar(
            "SELECT m.updated_at FROM managed_objects m JOIN links l ON l.second_id = m.id WHERE l.first_id = $1",
        )
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        let at: DateTime<Utc> = (*at).into();
        lat.push((committed - at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "(a) {n} Salesforce-side edits at 50/s: change → managed commit p50 {:.0} ms, p99 {:.0} ms (target ≤ 500 / ≤ 2000)",
        pct(0.5),
        pct(0.99)
    );

    // (b) a burst.
    let before = rest_calls(&http, &base).await;
    let t = Instant::now();
    futures_util::stream::iter(ids.iter().take(users).enumerate())
        .for_each_concurrent(16, |(i, id)| {
            let http = http.clone();
            let base = base.clone();
            async move { edit(&http, &base, id, &format!("Burst{i}")).await }
        })
        .await;
    let sent_in = t.elapsed();
    let burst = ids.len().min(users) as i64;
    wait_for(
        &pool,
        "SELECT count(*) FROM managed_objects WHERE body->>'sn' LIKE 'Burst%'",
        burst,
    )
    .await;
    let took = t.elapsed();
    let calls = rest_calls(&http, &base).await - before;
    if std::env::var("BENCH_EVENTS_CALLS").is_ok() {
        println!("    calls by kind: {}", stats(&http, &base).await["calls"]);
    }
    println!(
        "(b) a burst of {burst} Salesforce-side edits (sent in {:.1} s): all applied in {:.1} s = {:.0} changes/s; {calls} REST calls = {:.4} per change (target ≤ 0.01)",
        sent_in.as_secs_f64(),
        took.as_secs_f64(),
        burst as f64 / took.as_secs_f64(),
        calls as f64 / burst as f64
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM recon_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!("    recon runs in all (the set-up's included): {runs}");
}

/// An administrator's edit in Salesforce (the emulator's admin route: no API call counted).
async fn edit(http: &reqwest::Client, base: &str, id: &str, last_name: &str) {
    let res = http
        .patch(format!("{base}/__emulator/users/{id}"))
        .json(&json!({"LastName": last_name}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{:?}", res.text().await);
}

/// Every call under `/services` the emulator counted (REST, token, userinfo).
async fn rest_calls(http: &reqwest::Client, base: &str) -> u64 {
    stats(http, base).await["calls"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.contains(" /services/"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

async fn stats(http: &reqwest::Client, base: &str) -> Value {
    let res = http.get(format!("{base}/__emulator/stats")).send().await;
    res.unwrap().json().await.unwrap()
}

async fn wait_for(pool: &PgPool, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        if n >= expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {sql} = {n} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
