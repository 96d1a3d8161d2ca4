//! Benchmark of the managed-user REST API on a real Postgres (issue 2's figures):
//! create throughput over REST with 1 and 16 clients, outbox rows written per second,
//! and GET-by-id and query-by-userName latency (p50/p99) with 1,000,000 users stored.
//!
//! Run: `cargo bench --bench managed_api` (env: BENCH_USERS, default 1000000;
//! BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432; the database `idm_bench`
//! is dropped and re-created).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use idm_sync::app::{Application, ServeSettings};
use idm_sync::repo::db::DbSettings;
use serde_json::json;
use sqlx::Connection;

const ADMIN: (&str, &str) = ("openidm-admin", "openidm-admin");

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    idm_sync::salesforce::use_ring_for_tls();
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db_url = format!("{server}/idm_bench");
    let total_users = env_usize("BENCH_USERS", 1_000_000);

    // A fresh database.
    client_rt.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .unwrap();
        sqlx::query("DROP DATABASE IF EXISTS idm_bench WITH (FORCE)")
            .execute(&mut conn)
            .await
            .unwrap();
    });

    let conf_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let app = server_rt.block_on(async {
        Application::build(&ServeSettings {
            conf_dir,
            listen: "127.0.0.1:0".into(),
            database: DbSettings {
                max_connections: 32,
                secrets: idm_sync::secrets::KeySource::Key([7; idm_sync::secrets::KEY_LEN]),
                ..DbSettings::new(&db_url)
            },
            broker: None,
        })
        .await
        .unwrap()
    });
    let base = format!("http://127.0.0.1:{}/openidm", app.port());
    server_rt.spawn(app.run_until(std::future::pending()));

    client_rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&db_url).await.unwrap();
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap();

        println!("idm-sync managed API benchmark ({} cores)", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
        let serial = creates(&client, &base, 1, 2_000, "serial").await;
        println!("create over REST, 1 client:    {:>8.0} creates/s  (2,000 users; p50 {:.2} ms, p99 {:.2} ms)", serial.rate, serial.p50, serial.p99);

        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
        let parallel = creates(&client, &base, 16, 30_000, "parallel").await;
        let after: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
        println!("create over REST, 16 clients:  {:>8.0} creates/s  (30,000 users; p50 {:.2} ms, p99 {:.2} ms)", parallel.rate, parallel.p50, parallel.p99);
        println!("outbox rows written:           {:>8.0} rows/s     ({} rows during the 16-client run)", (after - before) as f64 / parallel.elapsed.as_secs_f64(), after - before);

        let have: i64 = sqlx::query_scalar("SELECT count(*) FROM managed_objects").fetch_one(&pool).await.unwrap();
        let missing = (total_users as i64 - have).max(0);
        let t = Instant::now();
        // The rest of the users in bulk, same shape as REST creates (bulk SQL, not the API: this
        // phase only sets the table size for the latency figures).
        let mut done = 0i64;
        while done < missing {
            let n = (missing - done).min(100_000);
            sqlx::query(
                "INSERT INTO managed_objects (object_type, id, rev, body)
                 SELECT 'user', 'bulk-' || g, nextval('managed_object_rev_seq'),
                        jsonb_build_object('userName', 'bulk' || g, 'givenName', 'Given' || (g % 1000),
                                           'sn', 'Sn' || (g % 5000), 'mail', 'bulk' || g || '@example.com',
                                           'accountStatus', 'active')
                 FROM generate_series($1::bigint, $2::bigint) g",
            )
            .bind(done + 1)
            .bind(done + n)
            .execute(&pool)
            .await
            .unwrap();
            done += n;
        }
        sqlx::query("ANALYZE managed_objects").execute(&pool).await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM managed_objects").fetch_one(&pool).await.unwrap();
        println!("seeded to {stored} users in {:.1} s", t.elapsed().as_secs_f64());

        let n = 3_000;
        let ids: Vec<String> = (0..n).map(|i| format!("bulk-{}", 1 + (i * 7919) % missing.max(1))).collect();
        let reads = latencies(&client, ids.iter().map(|id| format!("{base}/managed/user/{id}"))).await;
        println!("GET by id at {stored} users:        p50 {:.2} ms  p99 {:.2} ms  ({} requests, 1 client)", reads.0, reads.1, n);
        let queries = latencies(
            &client,
            (0..n).map(|i| format!("{base}/managed/user?_queryFilter=userName%20eq%20%22bulk{}%22", 1 + (i * 104_729) % missing.max(1))),
        )
        .await;
        println!("query by userName at {stored} users: p50 {:.2} ms  p99 {:.2} ms  ({} requests, 1 client)", queries.0, queries.1, n);
        let plan: Vec<(String,)> = sqlx::query_as(
            "EXPLAIN SELECT id FROM managed_objects WHERE object_type = 'user' AND (body->>'userName') = 'bulk42'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        println!("plan: {}", plan.iter().map(|r| r.0.trim()).collect::<Vec<_>>().join(" | "));
    });
}

struct Throughput {
    rate: f64,
    p50: f64,
    p99: f64,
    elapsed: Duration,
}

async fn creates(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
    total: usize,
    tag: &str,
) -> Throughput {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, next, url, tag) = (
            client.clone(),
            next.clone(),
            format!("{base}/managed/user?_action=create"),
            tag.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                let res = client
                    .post(&url)
                    .header("X-OpenIDM-Username", ADMIN.0)
                    .header("X-OpenIDM-Password", ADMIN.1)
                    .json(&json!({"userName": format!("{tag}{i}"), "givenName": "Bench", "sn": format!("User{i}"),
                                  "mail": format!("{tag}{i}@example.com"), "profileId": "00e000000000001AAA"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let (p50, p99) = percentiles(&mut all);
    Throughput {
        rate: total as f64 / elapsed.as_secs_f64(),
        p50,
        p99,
        elapsed,
    }
}

async fn latencies(client: &reqwest::Client, urls: impl Iterator<Item = String>) -> (f64, f64) {
    let mut lat = Vec::new();
    for url in urls {
        let t = Instant::now();
        let res = client
            .get(&url)
            .header("X-OpenIDM-Username", ADMIN.0)
            .header("X-OpenIDM-Password", ADMIN.1)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let body = res.bytes().await.unwrap();
        assert!(!body.is_empty());
        lat.push(t.elapsed());
    }
    percentiles(&mut lat)
}

fn percentiles(lat: &mut [Duration]) -> (f64, f64) {
    lat.sort_unstable();
    let at =
        |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}
