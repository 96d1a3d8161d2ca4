//! Inbound reconciliation against the emulator (issue 4's figures): a first recon into an empty
//! repository and a second with no changes — users/s, peak RSS of this process, Salesforce API
//! calls — and the floor: paging the same users out of the emulator plus bulk-inserting the
//! same rows with COPY, measured in the same run. The floor is printed twice: COPY of the
//! managed-user rows alone, and COPY of every row the first recon wrote (the managed users,
//! their outbox rows, links and audit entries, copied back out of the database), since the
//! recon must write all of them.
//!
//! Run: `cargo bench --bench recon` (BENCH_USERS, default 100000; BENCH_PG_URL, default
//! postgres://postgres@127.0.0.1:5432; the database `idm_bench_recon` is dropped and re-created).
//! The emulator runs as its own process, so the RSS figures are idm-sync's alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use idm_sync::config::Conf;
use idm_sync::managed::ManagedObjects;
use idm_sync::mapping::SyncConfig;
use idm_sync::recon::{ReconEngine, ReconRequest, ReconSettings};
use idm_sync::repo::db::{self, DbSettings};
use idm_sync::salesforce::SalesforceClient;
use idm_sync::secrets::{KEY_LEN, Sealer};
use sqlx::Connection;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = std::env::var("BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let mut emulator = std::process::Command::new(env!("CARGO_BIN_EXE_sf-emulator"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--users",
            &users.to_string(),
            "--daily-limit",
            "10000000",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start sf-emulator");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the emulator did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let base = format!("http://127.0.0.1:{port}");
    println!(
        "emulator with {users} users ready in {:.1} s (a separate process)",
        started.elapsed().as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
        sqlx::query("DROP DATABASE IF EXISTS idm_bench_recon WITH (FORCE)").execute(&mut admin).await.unwrap();
        let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let token_url = format!("{base}/services/oauth2/token");
        let conf = Conf::load_with(&conf_dir, &|name| match name {
            "SF_LOGIN_URL" => Some(token_url.clone()),
            other => std::env::var(other).ok(),
        })
        .unwrap();
        let pool = db::connect(&DbSettings::new(format!("{server}/idm_bench_recon"))).await.unwrap();
        db::migrate(&pool).await.unwrap();
        let client = SalesforceClient::new(conf.salesforce.clone().unwrap().client, idm_sync::repo::salesforce_store::postgres(pool.clone(), Sealer::new(&[7; KEY_LEN]).unwrap())).unwrap();
        let managed = ManagedObjects::new(pool.clone(), Arc::new(conf.managed.clone()));
        let sync = SyncConfig::load(&conf_dir).unwrap();
        let engine = ReconEngine::new(managed, Arc::new(sync), client.clone(), ReconSettings::default());
        let http = reqwest::Client::new();
        let stats = || async {
            let s: serde_json::Value = http.get(format!("{base}/__emulator/stats")).send().await.unwrap().json().await.unwrap();
            s
        };
        let calls = |s: &serde_json::Value| -> (u64, u64) {
            let data: u64 = s["calls"].as_object().unwrap().iter().filter(|(k, _)| k.contains("/services/data/")).map(|(_, v)| v.as_u64().unwrap()).sum();
            (data, s["token_calls"].as_u64().unwrap_or(0))
        };
        let rss_before = status_kib("VmRSS:");
        let mut first_run = String::new();
        let mut first_secs = 0.0;
        let request = ReconRequest { mapping: "systemSalesforceUser_managedUser".into(), ..ReconRequest::default() };

        for (label, expect_created) in [("first recon (empty repository)", true), ("second recon (no changes)", false)] {
            let before = stats().await;
            let t = Instant::now();
            let summary = engine.run(request.clone()).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let after = stats().await;
            assert_eq!(summary["state"], "SUCCESS", "{summary}");
            let processed = summary["progress"]["source"]["existing"]["processed"].as_u64().unwrap();
            let created = summary["progress"]["target"]["created"].as_u64().unwrap_or(0);
            assert_eq!(created > 0, expect_created, "{summary}");
            if expect_created {
                first_run = summary["_id"].as_str().unwrap().to_owned();
                first_secs = secs;
            }
            let (d0, t0) = calls(&before);
            let (d1, t1) = calls(&after);
            println!(
                "{label}: {processed} users in {secs:.2} s = {:.0} users/s; created {created}; Salesforce calls: {} data + {} token",
                processed as f64 / secs,
                d1 - d0,
                t1 - t0
            );
            // Where the time went (ms summed over pages), from the run's own duration summary.
            if let Some(d) = summary["durationSummary"].as_object() {
                let parts: Vec<String> = d.iter().map(|(k, v)| format!("{k} {}", v["sum"])).collect();
                println!("  stages (ms): {}", parts.join(", "));
            }
        }
        let peak = status_kib("VmHWM:");
        println!("idm-sync RSS: {} MiB before the recons, peak {} MiB", rss_before / 1024, peak / 1024);
        let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&pool).await.unwrap();
        println!("outbox rows written: {outbox} (one per created user; none by the second recon)");

        // The floor: page the same users out, then COPY the same rows into an identical table.
        let t = Instant::now();
        let mut rows: Vec<serde_json::Map<String, serde_json::Value>> = Vec::with_capacity(users);
        let mut pages = std::pin::pin!(client.query("SELECT Id, Username, Email, FirstName, LastName, ProfileId, IsActive, LastModifiedDate FROM User"));
        while let Some(page) = pages.try_next().await.unwrap() {
            rows.extend(page.records);
        }
        let paging = t.elapsed().as_secs_f64();
        let mut text = String::with_capacity(rows.len() * 256);
        for (i, r) in rows.iter().enumerate() {
            let body = serde_json::json!({"userName": r["Username"], "mail": r["Email"], "givenName": r["FirstName"],
                "sn": r["LastName"], "profileId": r["ProfileId"], "accountStatus": "active"});
            let json = body.to_string().replace('\\', "\\\\");
            text.push_str(&format!("user\tcopy-{i}\t{i}\t{json}\n"));
        }
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("CREATE TABLE bench_copy (LIKE managed_objects INCLUDING ALL)").execute(&mut *conn).await.unwrap();
        let t = Instant::now();
        let mut copy = conn.copy_in_raw("COPY bench_copy (object_type, id, rev, body) FROM STDIN").await.unwrap();
        copy.send(text.into_bytes()).await.unwrap();
        let copied = copy.finish().await.unwrap();
        let copying = t.elapsed().as_secs_f64();
        let floor = paging + copying;
        println!(
            "floor (managed rows): paging {} users {paging:.2} s + COPY of {copied} rows {copying:.2} s = {floor:.2} s ({:.0} users/s)",
            rows.len(),
            rows.len() as f64 / floor
        );
        // Every row the first recon wrote, copied out (untimed) and COPYed into twin tables.
        let tables = [
            ("managed_objects", "TRUE".to_owned()),
            ("outbox", "TRUE".to_owned()),
            ("links", "TRUE".to_owned()),
            ("recon_audit", format!("recon_id = '{first_run}'")),
        ];
        let mut all = paging;
        let mut parts = Vec::new();
        for (table, filter) in tables {
            let mut out = conn.copy_out_raw(&format!("COPY (SELECT * FROM {table} WHERE {filter}) TO STDOUT")).await.unwrap();
            let mut data = Vec::new();
            while let Some(chunk) = out.try_next().await.unwrap() {
                data.extend_from_slice(&chunk);
            }
            drop(out);
            sqlx::query(&format!("CREATE TABLE floor_{table} (LIKE {table} INCLUDING ALL)")).execute(&mut *conn).await.unwrap();
            let t = Instant::now();
            let mut copy = conn.copy_in_raw(&format!("COPY floor_{table} FROM STDIN")).await.unwrap();
            copy.send(data).await.unwrap();
            let n = copy.finish().await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            all += secs;
            parts.push(format!("{table} {n} rows {secs:.2} s"));
        }
        println!(
            "floor (every row the first recon wrote): paging {paging:.2} s + COPY of {} = {all:.2} s",
            parts.join(", ")
        );
        println!(
            "first recon / floor: {:.2}x (managed rows), {:.2}x (every row)",
            first_secs / floor,
            first_secs / all
        );
    });
    let _ = emulator.kill();
    let _ = emulator.wait();
}
