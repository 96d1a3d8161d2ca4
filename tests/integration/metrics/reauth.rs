//! A revoked refresh token pauses implicit sync: no sync failures, no burned attempts, the
//! changes wait in the queues; storing a new token (the `authorize` flow) resumes it by itself.

use std::time::Duration;

use idm_sync::authorize_cli::AuthorizeFlow;
use idm_sync::outbound::topology::Topology;
use serde_json::Value;
use sf_emulator::EmulatorConfig;

use super::exposition::Scrape;
use super::{env, root, scrape};
use crate::helpers::{amqp_url, queued_messages};
use crate::salesforce::support as sf;
use crate::worker::wait_until;

const PAUSED: &str = "idm_worker_paused";
const REASON: (&str, &str) = ("reason", "salesforce_authorization");
const SYSTEM: (&str, &str) = ("system", "salesforce");

/// Ready messages in the partition queues of every lane of the topology.
async fn queued(topology: &Topology) -> u32 {
    queued_messages(&amqp_url(), &topology.queues()).await
}

async fn salesforce_readiness(root: &str) -> Value {
    let res = reqwest::get(format!("{root}/openidm/health/ready"))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "a pause does not make the process unready"
    );
    let body: Value = res.json().await.unwrap();
    body["components"]["salesforce"].clone()
}

/// Waits until the worker reports its pause, then checks readiness says why.
async fn wait_paused(root: &str, why: &str) {
    wait_until("the worker paused", async || {
        scrape(root).await.value(PAUSED, &[SYSTEM, REASON]) == 1.0
    })
    .await;
    let sf_state = salesforce_readiness(root).await;
    assert_eq!(sf_state["status"], "PAUSED", "{sf_state}");
    assert!(
        sf_state["detail"].as_str().unwrap().contains(why),
        "{sf_state}"
    );
}

fn token_refusals(s: &Scrape) -> f64 {
    s.value(
        "idm_salesforce_api_calls_total",
        &[SYSTEM, ("operation", "token"), ("outcome", "unauthorized")],
    )
}

#[tokio::test]
async fn a_revoked_token_pauses_the_worker_until_a_new_one_is_stored() {
    let env = env(5).await;
    let worker = env.spawn_worker();
    let root = root(&env.app);
    let base = env.org.base_url().to_owned();
    let a = env.create("reauth.a@idm-sync.test").await;
    let synced = env.wait_synced(&a).await;
    // An active Salesforce user to log in as when authorizing again.
    let username = synced["Username"].as_str().unwrap().to_owned();

    // The refresh token is revoked (in Setup, or by Salesforce); its sessions go with it.
    let revoke = crate::helpers::http_builder()
        .build()
        .unwrap()
        .post(format!("{base}/services/oauth2/revoke"))
        .form(&[("token", EmulatorConfig::default().refresh_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);

    env.set_sn(&a, "First").await;
    let b = env.create("reauth.b@idm-sync.test").await;
    env.set_sn(&a, "Second").await;

    wait_paused(&root, "invalid_grant").await;
    // The three change events wait in the queues, not in the worker.
    wait_until("the events back in their queues", async || {
        queued(&env.topology).await == 3
    })
    .await;
    let paused = scrape(&root).await;
    // Waiting costs no Salesforce call: the worker only reads the token store.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = scrape(&root).await;
    assert_eq!(token_refusals(&later), token_refusals(&paused));
    assert_eq!(token_refusals(&later), 1.0, "one refused refresh");
    assert_eq!(later.get("idm_sync_failures_open", &[]), Some(0.0));
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    assert_eq!(
        env.scalar(&format!(
            "SELECT count(*) FROM links WHERE second_id = '{b}'"
        ))
        .await,
        0
    );

    // An operator runs `idm-sync salesforce authorize`: the new token lands in Postgres.
    let store = crate::helpers::token_store(&env.app.db.pool);
    let flow = AuthorizeFlow::start(sf::config(&base), store, 0)
        .await
        .unwrap();
    let url = flow.authorize_url().clone();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(30)));
    assert_eq!(
        sf::authorize_in_browser(&url, &base, &username, "allow").await,
        200
    );
    waiting.await.unwrap().unwrap();

    // The worker notices by itself; every edit reaches Salesforce, none became a failure.
    let user_a = env.wait_synced(&a).await;
    assert_eq!(user_a["LastName"], "Second");
    let user_b = env.wait_synced(&b).await;
    assert_eq!(user_b["LastName"], "Jensen");
    wait_until("the pause lifted", async || {
        scrape(&root).await.value(PAUSED, &[SYSTEM, REASON]) == 0.0
    })
    .await;
    assert_eq!(salesforce_readiness(&root).await["status"], "UP");
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    wait_until("the queues drained", async || {
        queued(&env.topology).await == 0
    })
    .await;
    worker.stop().await;
}

/// A worker whose secrets key cannot open the token another role stored pauses the same way,
/// saying why: no token call, no sync failure, the change waits in its queue.
#[tokio::test]
async fn a_worker_whose_key_cannot_open_the_stored_token_pauses() {
    use idm_sync::salesforce::{SalesforceClient, Secret};
    use idm_sync::secrets::Sealer;

    let mut env = env(1).await;
    crate::helpers::token_store(&env.app.db.pool)
        .save("salesforce", &Secret::new("stored-by-serve"), None, None)
        .await
        .unwrap();
    env.sf = SalesforceClient::observed(
        sf::config(env.org.base_url()),
        idm_sync::repo::salesforce_store::postgres(
            env.app.db.pool.clone(),
            Sealer::new(&[1; 32]).unwrap(),
        ),
        env.ops.metrics.salesforce_observer("salesforce"),
    )
    .unwrap();
    let worker = env.spawn_worker();
    let root = root(&env.app);
    env.create("wrong.key@idm-sync.test").await;

    wait_paused(&root, "another secrets key").await;
    wait_until("the event back in its queue", async || {
        queued(&env.topology).await == 1
    })
    .await;
    assert_eq!(env.scalar("SELECT count(*) FROM sync_failures").await, 0);
    assert_eq!(
        env.org
            .handle()
            .stats()
            .calls_of("POST /services/oauth2/token"),
        0,
        "nothing unreadable was sent to Salesforce"
    );
    worker.stop().await;
}
