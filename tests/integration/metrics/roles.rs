//! Each role as its own process, the way compose runs them: `relay`, `worker` and `scheduler`
//! serve `/metrics` and readiness on their operations listener, each reporting what it did.

use std::time::Duration;

use super::exposition::Scrape;
use super::scrape;
use crate::helpers::{RoleProcess, TestApp, TestTopology, amqp_url};
use crate::recon::support::{ConfDir, conf_dir, shipped_sync};
use crate::salesforce::support as sf;
use crate::worker::wait_until;

/// `idm_build_info` and the process figures of a live process.
pub fn process_figures_are_sane(s: &Scrape) {
    assert_eq!(
        s.get("idm_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        Some(1.0)
    );
    let rss = s.value("process_resident_memory_bytes", &[]);
    assert!((1e6..1e10).contains(&rss), "rss {rss}");
    assert!(s.value("process_virtual_memory_bytes", &[]) >= rss);
    assert!(
        s.get("process_cpu_seconds_total", &[])
            .is_some_and(|c| c > 0.0)
    );
    let fds = s.value("process_open_fds", &[]);
    assert!(
        fds >= 3.0 && fds <= s.value("process_max_fds", &[]),
        "fds {fds}"
    );
    assert!(s.value("process_threads", &[]) >= 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = s.value("process_start_time_seconds", &[]);
    assert!(
        started <= now + 1.0 && started > now - 24.0 * 3600.0,
        "started {started}, now {now}"
    );
}

/// A loopback address with a free port, for a child to bind.
fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

struct Role {
    root: String,
    _process: RoleProcess,
}

fn spawn(role: &str, conf: &ConfDir, app: &TestApp, topology: &TestTopology) -> Role {
    let addr = free_addr();
    let mut command = RoleProcess::command(role, &conf.0, &app.db.url);
    command
        .env("AMQP_URL", amqp_url())
        .env("IDM_BROKER_PREFIX", &topology.prefix)
        .env("IDM_PARTITIONS", topology.partitions.to_string())
        .args(["--metrics-listen", &addr]);
    Role {
        root: format!("http://{addr}"),
        _process: RoleProcess::spawn(command),
    }
}

async fn ready(root: &str) -> bool {
    let client = reqwest::Client::new();
    let res = client
        .get(format!("{root}/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    res.is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn every_role_process_serves_its_metrics_and_readiness() {
    let org = sf::start_org(0, false).await;
    let conf = ConfDir(conf_dir(org.base_url(), &shipped_sync()));
    let app = TestApp::spawn_with_conf(conf.0.clone()).await;
    let topology = TestTopology::new(2);
    let relay = spawn("relay", &conf, &app, &topology);
    let worker = spawn("worker", &conf, &app, &topology);
    let scheduler = spawn("scheduler", &conf, &app, &topology);
    for role in [&relay, &worker, &scheduler] {
        wait_until(&format!("{} ready", role.root), async || {
            ready(&role.root).await
        })
        .await;
    }

    // A managed change goes through the relay process and the worker process.
    let profile = org.handle().profile_id("Standard User").unwrap();
    let body = crate::helpers::sf_user_body("roles.metrics@idm-sync.test", &profile);
    crate::helpers::create_managed(&app, &body).await;
    let system = [("system", "salesforce")];
    wait_until("the relay counted its publish", async || {
        scrape(&relay.root)
            .await
            .value("idm_relay_events_published_total", &[])
            >= 1.0
    })
    .await;
    wait_until("the worker counted its sync", async || {
        let s = scrape(&worker.root).await;
        s.value("idm_worker_events_consumed_total", &system) >= 1.0
            && s.value("idm_sync_latency_seconds_count", &system) >= 1.0
    })
    .await;

    for role in [&relay, &worker, &scheduler] {
        scrape(&role.root).await;
        let s = scrape(&role.root).await;
        process_figures_are_sane(&s);
        assert_eq!(s.get("idm_database_up", &[]), Some(1.0), "{}", role.root);
        assert!(
            s.value(
                "idm_http_requests_total",
                &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
            ) >= 1.0,
            "{}: earlier scrapes counted\n{:?}",
            role.root,
            s.samples
                .iter()
                .filter(|x| x.name.starts_with("idm_http"))
                .collect::<Vec<_>>()
        );
    }
    // Each process counts only what it did itself.
    let w = scrape(&worker.root).await;
    assert_eq!(w.value("idm_relay_events_published_total", &[]), 0.0);
    assert!(
        w.value(
            "idm_salesforce_api_calls_total",
            &[
                ("system", "salesforce"),
                ("operation", "create"),
                ("outcome", "success")
            ]
        ) >= 1.0
    );
    let r = scrape(&relay.root).await;
    assert_eq!(r.get("idm_worker_events_consumed_total", &system), None);
}
