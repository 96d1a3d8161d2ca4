//! Benchmark of the Salesforce query stream (issue 3's figures): an in-process emulator with
//! 100,000 users, streamed through the client with batchSize 2,000. Prints users/s, peak RSS
//! (with the emulator's share measured after seeding, before streaming), and the API calls used
//! (must be ⌈users / 2000⌉ query calls + 1 token call).
//!
//! Run: `cargo bench --bench salesforce_stream` (env: BENCH_USERS, default 100000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use futures_util::TryStreamExt;
use idm_sync::salesforce::{ClientConfig, SalesforceClient, Secret, TokenStore};
use sf_emulator::{Emulator, EmulatorConfig};

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn main() {
    let users: usize = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (hwm_start, _) = memory_kib();
        let defaults = EmulatorConfig::default();
        let emulator = Emulator::build(
            EmulatorConfig {
                users,
                daily_api_limit: 10_000_000,
                ..EmulatorConfig::default()
            },
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap()
        .start();
        let handle = emulator.handle();
        let (hwm_seeded, rss_seeded) = memory_kib();

        let mut cfg = ClientConfig::new(
            format!("{}/services/oauth2/token", emulator.base_url())
                .parse()
                .unwrap(),
            defaults.consumer_key,
            Secret::new(defaults.consumer_secret),
            Some(Secret::new(defaults.refresh_token)),
        );
        cfg.query_batch_size = 2000;
        let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();

        let started = Instant::now();
        let mut stream = std::pin::pin!(client.query(
            "SELECT Id, Username, FirstName, LastName, Email, Alias, IsActive, ProfileId, \
             TimeZoneSidKey, LocaleSidKey, EmailEncodingKey, LanguageLocaleKey, SystemModstamp FROM User"
        ));
        let (mut seen, mut pages, mut largest_page) = (0usize, 0usize, 0usize);
        while let Some(page) = stream.try_next().await.unwrap() {
            seen += page.records.len();
            largest_page = largest_page.max(page.records.len());
            pages += 1;
        }
        let elapsed = started.elapsed();
        let (hwm_end, rss_end) = memory_kib();
        let stats = handle.stats();
        let query_calls = stats.calls_of("GET /services/data/vXX.X/query")
            + stats.calls_of("GET /services/data/vXX.X/query/{locator}");

        println!("salesforce_stream: {seen} users in {pages} pages (largest {largest_page}) in {:.2} s", elapsed.as_secs_f64());
        println!("  throughput: {:.0} users/s", seen as f64 / elapsed.as_secs_f64());
        println!("  memory: peak RSS before emulator {} MiB; after seeding (emulator's share) RSS {} MiB, peak {} MiB",
            hwm_start / 1024, rss_seeded / 1024, hwm_seeded / 1024);
        println!("  memory: after streaming RSS {} MiB, peak {} MiB; growth of peak during streaming {} MiB (client + emulator serving pages)",
            rss_end / 1024, hwm_end / 1024, hwm_end.saturating_sub(hwm_seeded) / 1024);
        println!("  API calls: {query_calls} query calls + {} token call(s) (expected {} + 1)",
            stats.token_calls, users.div_ceil(2000));
        assert_eq!(seen, users);
        assert_eq!(query_calls as usize, users.div_ceil(2000));
        assert_eq!(stats.token_calls, 1);
        emulator.stop().await.unwrap();
    });
}
