//! Two Salesforce orgs as two connectors (`salesforce` and `salesforceEU`), each with its own
//! outbound mapping, lane and worker, the workers in an `idm-sync worker` process: one managed
//! change reaches both orgs, and an org that is paused or failing holds back only itself.

use std::time::Duration;

use idm_sync::salesforce::SalesforceClient;
use serde_json::{Value, json};
use sf_emulator::{EmulatorHandle, FaultUpdate, RunningEmulator};

use super::{Env, TEST_LEASE, env_in, wait_until};
use crate::helpers::{RoleProcess, TestTopology, amqp_url, token_store};
use crate::recon::support::{ConfDir, conf_dir, shipped_sync_with};
use crate::salesforce::support as sf;

const EU: &str = "salesforceEU";
const EU_MAPPING: &str = "managedUser_systemSalesforceEUUser";

/// The sample's sync.json plus an outbound mapping to `system/salesforceEU/User` with links of
/// its own, its ProfileId the EU org's (profile ids are per org).
fn two_org_conf(a: &RunningEmulator, b: &RunningEmulator) -> ConfDir {
    let eu_profile = b.handle().profile_id("Standard User").unwrap();
    let sync = shipped_sync_with(|sync| {
        let mut eu = sync["mappings"][1].clone();
        eu["name"] = json!(EU_MAPPING);
        eu["displayName"] = json!(EU_MAPPING);
        eu["target"] = json!(format!("system/{EU}/User"));
        eu.as_object_mut().unwrap().remove("links");
        for p in eu["properties"].as_array_mut().unwrap() {
            if p["target"] == "ProfileId" {
                *p = json!({"target": "ProfileId", "default": eu_profile});
            }
        }
        sync["mappings"].as_array_mut().unwrap().push(eu);
    });
    let conf = ConfDir(conf_dir(a.base_url(), &sync));
    let _ = std::fs::remove_file(&sync);
    let mut prov: Value = serde_json::from_str(
        &std::fs::read_to_string(conf.0.join("provisioner.openicf-salesforce.json")).unwrap(),
    )
    .unwrap();
    prov["configurationProperties"]["loginUrl"] =
        json!(format!("{}/services/oauth2/token", b.base_url()));
    std::fs::write(
        conf.0.join(format!("provisioner.openicf-{EU}.json")),
        prov.to_string(),
    )
    .unwrap();
    conf
}

/// `idm-sync worker` as a child process over `env`'s configuration: one worker per org.
fn worker_process(env: &Env) -> RoleProcess {
    let mut command = RoleProcess::command("worker", &env.conf.0, &env.app.db.url);
    command
        .env("AMQP_URL", &env.amqp_url)
        .env("IDM_BROKER_PREFIX", &env.topology.prefix)
        .env("IDM_PARTITIONS", env.topology.partitions.to_string())
        .env("IDM_WORKER_LEASE_SECS", TEST_LEASE.as_secs().to_string());
    RoleProcess::spawn(command)
}

fn last_name(org: &EmulatorHandle, user_name: &str) -> Option<String> {
    org.user_by_username(user_name)
        .and_then(|u| u["LastName"].as_str().map(str::to_owned))
}

async fn arrives(org: &EmulatorHandle, which: &str, user_name: &str, sn: &str) {
    wait_until(
        &format!("{user_name} with LastName {sn} in {which}"),
        async || last_name(org, user_name).as_deref() == Some(sn),
    )
    .await;
}

#[tokio::test]
async fn one_change_reaches_both_orgs_and_a_paused_or_failing_org_holds_back_only_itself() {
    let a = sf::start_org(0, false).await;
    let b = sf::start_org(0, false).await;
    let conf = two_org_conf(&a, &b);
    let topology = TestTopology::with_lanes(4, [super::OUTBOUND_MAPPING, EU_MAPPING]);
    let env = env_in(a, conf, topology, amqp_url()).await;
    let (org_a, org_b) = (env.handle(), b.handle());
    let _workers = worker_process(&env);

    // Both orgs get a new user, each linked under its own mapping.
    let u1 = env.create("two-orgs-1@idm-sync.test").await;
    arrives(&org_a, "org A", "two-orgs-1@idm-sync.test", "Jensen").await;
    arrives(&org_b, "org B", "two-orgs-1@idm-sync.test", "Jensen").await;
    // The sample's outbound mapping reuses the inbound mapping's links; the EU one has its own.
    // (A link is recorded just after Salesforce answered the create.)
    wait_until("a link per org", async || {
        let link_types: Vec<String> = sqlx::query_scalar(
            "SELECT link_type FROM links WHERE second_id = $1 ORDER BY link_type",
        )
        .bind(&u1)
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap();
        link_types == [EU_MAPPING, "systemSalesforceUser_managedUser"]
    })
    .await;

    // Org B paused by its operator: org A keeps syncing, org B's changes wait in its lane.
    let mut eu_config = sf::config(org_b.base_url());
    eu_config.system_name = EU.to_owned();
    let eu = SalesforceClient::new(eu_config, token_store(&env.app.db.pool)).unwrap();
    eu.set_enabled(false).await.unwrap();
    // The worker reads the enabled state at most a few seconds old: let it see the pause.
    tokio::time::sleep(Duration::from_secs(6)).await;
    env.patch(&u1, "/sn", json!("Paused-B")).await;
    let u2 = env.create("two-orgs-2@idm-sync.test").await;
    arrives(&org_a, "org A", "two-orgs-1@idm-sync.test", "Paused-B").await;
    arrives(&org_a, "org A", "two-orgs-2@idm-sync.test", "Jensen").await;
    assert_eq!(
        last_name(&org_b, "two-orgs-1@idm-sync.test").as_deref(),
        Some("Jensen")
    );
    assert!(org_b.user_by_username("two-orgs-2@idm-sync.test").is_none());
    eu.set_enabled(true).await.unwrap();
    arrives(&org_b, "org B", "two-orgs-1@idm-sync.test", "Paused-B").await;
    arrives(&org_b, "org B", "two-orgs-2@idm-sync.test", "Jensen").await;

    // Org A failing (every call 503): org B keeps syncing; org A catches up once it recovers.
    org_a.update_faults(&FaultUpdate {
        rate_503: Some(1.0),
        ..FaultUpdate::default()
    });
    env.patch(&u2, "/sn", json!("Failing-A")).await;
    arrives(&org_b, "org B", "two-orgs-2@idm-sync.test", "Failing-A").await;
    assert_eq!(
        last_name(&org_a, "two-orgs-2@idm-sync.test").as_deref(),
        Some("Jensen")
    );
    org_a.update_faults(&FaultUpdate {
        rate_503: Some(0.0),
        ..FaultUpdate::default()
    });
    arrives(&org_a, "org A", "two-orgs-2@idm-sync.test", "Failing-A").await;
    let failures: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_failures")
        .fetch_one(&env.app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        failures, 0,
        "a pause and a short outage are retried, not failed"
    );
    drop(b);
}
