//! liveSync: the first pass only records the position; changes covered by the token window
//! are imported; the token survives a restart, stays put on failure, and a token older than
//! Salesforce's 30 days is a clear error.
//!
//! `sobjects/User/updated` never covers the current minute, so instead of waiting for the
//! minute to end, tests store a token in the past and backdate the changed user's
//! `SystemModstamp` with the emulator's test-only knob.

use chrono::{DateTime, Duration, DurationRound, Utc};
use idm_sync::recon::live_sync::PassStatus;
use idm_sync::recon::{LiveSync, LiveSyncError};
use idm_sync::repo::schedule_firings::Firing;
use idm_sync::repo::sync_tokens::{self, SyncToken};
use idm_sync::scheduler::{Claim, Invoke, JobOutcome};
use serde_json::{Value, json};
use sf_emulator::faults::FaultUpdate;

use super::support::{Env, env, record};

const SOURCE: &str = "system/salesforce/User";
const ACTION: &str = "/system/salesforce/User?_action=liveSync";

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap()
}

impl Env {
    async fn token(&self) -> Option<SyncToken> {
        sync_tokens::get(&self.app.db.pool, SOURCE).await.unwrap()
    }

    async fn set_token(&self, at: DateTime<Utc>) {
        sync_tokens::put(&self.app.db.pool, SOURCE, at)
            .await
            .unwrap();
    }

    /// One pass over REST: (status, body).
    async fn live_sync(&self) -> (u16, Value) {
        let res = self.app.post(ACTION).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap())
    }

    /// A change "in Salesforce", made to look 5 minutes old so the next poll covers it.
    async fn change_in_salesforce(&self, id: &str, fields: Value) {
        self.sf.update(id, &record(fields)).await.unwrap();
        assert!(self._org.handle().backdate_user(id, Duration::minutes(5)));
    }

    /// A full recon now, recorded as if it had started an hour ago: a full run that
    /// succeeded moves the token to its start, which would otherwise hide the backdated
    /// changes these tests make after it.
    async fn full_recon_an_hour_ago(&self) {
        let s = self.recon("").await;
        assert_eq!(s["state"], "SUCCESS", "{s}");
        sqlx::query("UPDATE recon_runs SET started = started - interval '1 hour'")
            .execute(&self.app.db.pool)
            .await
            .unwrap();
    }

    async fn runs(&self) -> i64 {
        self.scalar("SELECT count(*) FROM recon_runs").await
    }
}

#[tokio::test]
async fn the_first_pass_records_the_position_and_changes_nothing() {
    let env = env(5).await;
    let someone = env.people().await[0]["Id"].as_str().unwrap().to_owned();
    env.change_in_salesforce(&someone, json!({"LastName": "Before"}))
        .await;
    let before = Utc::now();

    let (status, body) = env.live_sync().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["_id"], "SYSTEMSALESFORCEUSER");
    assert_eq!(body["status"], "INITIALIZED");
    assert_eq!(body["changes"], 0);
    assert_eq!(body["reconIds"], json!([]));
    assert!(body["_rev"].is_string());
    let token = env.token().await.expect("token stored");
    assert_eq!(token.token, minute(token.token), "minute-aligned");
    assert!(token.token >= minute(before) && token.token <= Utc::now());
    assert_eq!(
        body["connectorData"]["syncToken"],
        token
            .token
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    assert_eq!(env.users().await, 0, "history is not replayed");
    assert_eq!(env.runs().await, 0);
    assert_eq!(env.outbox().await, 0);
}

#[tokio::test]
async fn a_covered_change_is_imported_and_the_token_survives_a_restart() {
    let env = env(6).await;
    env.full_recon_an_hour_ago().await;
    let people = env.people().await;
    let changed = people[0]["Id"].as_str().unwrap().to_owned();

    // First instance: records the position.
    let first = LiveSync::new(env.engine());
    let pass = first.run_once(SOURCE).await.unwrap();
    assert_eq!(pass.status, PassStatus::Initialized);
    drop(first);

    // A new instance on the same database continues from the stored token: no second
    // initialization.
    let pass = LiveSync::new(env.engine()).run_once(SOURCE).await.unwrap();
    assert_eq!(pass.status, PassStatus::Synced);
    assert_eq!(pass.token, env.token().await.unwrap());

    // An operator (or a stored token from before a restart) at 10 minutes ago; a change 5
    // minutes ago is within the window.
    let ten_ago = minute(Utc::now() - Duration::minutes(10));
    env.set_token(ten_ago).await;
    env.change_in_salesforce(&changed, json!({"LastName": "LiveSynced"}))
        .await;
    // A grant made with the change comes along (liveSync reads users as recon does).
    let report = env
        ._org
        .handle()
        .access_id("PermissionSet", "Report_Builder");
    let granted = env
        .sf
        .create_many_of(
            "PermissionSetAssignment",
            &[record(
                json!({"AssigneeId": changed, "PermissionSetId": report.unwrap()}),
            )],
        )
        .await;
    assert!(granted.iter().all(Result::is_ok), "{granted:?}");
    let outbox = env.outbox().await;

    let (status, body) = env.live_sync().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SUCCESS", "{body}");
    assert!(body["changes"].as_u64().unwrap() >= 1, "{body}");
    assert_eq!(body["statusSummary"]["FAILURE"], 0, "{body}");
    let run = body["reconIds"][0].as_str().unwrap().to_owned();
    let summary = env.summary(&run).await;
    assert_eq!(summary["state"], "SUCCESS");
    assert_eq!(summary["parameters"]["runTargetPhase"], false);
    let user = env.linked_user(&changed).await;
    assert_eq!(user["sn"], "LiveSynced");
    assert_eq!(user["permissionSets"], json!(["Report_Builder"]));
    assert!(
        env.outbox().await > outbox,
        "the managed change goes through the outbox"
    );
    let token = env.token().await.unwrap();
    assert!(token.token > ten_ago, "advanced");
    assert!(token.token <= Utc::now());
    assert_eq!(
        body["connectorData"]["syncToken"],
        token
            .token
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
}

#[tokio::test]
async fn a_failed_recon_leaves_the_token_and_the_next_pass_retries() {
    let env = env(11).await;
    env.full_recon_an_hour_ago().await;
    let ten_ago = minute(Utc::now() - Duration::minutes(10));
    env.set_token(ten_ago).await;
    // Three of ten users stop qualifying: their DELETEs trip the mass-change guard, so the
    // liveSync run fails.
    for p in env.people().await.iter().take(3) {
        let id = p["Id"].as_str().unwrap();
        env.change_in_salesforce(
            id,
            json!({"Email": format!("autoproc.{}@example.org", &id[10..])}),
        )
        .await;
    }
    let (status, body) = env.live_sync().await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("FAILED") && message.contains("next pass retries"),
        "{message}"
    );
    assert_eq!(env.token().await.unwrap().token, ten_ago, "not advanced");
    assert_eq!(env.users().await, 10, "nothing deleted");

    // The changes are still polled by the next pass; once the run can succeed (here: the
    // users qualify again) the token moves.
    for p in env.sf_users().await.iter() {
        let email = p["Email"].as_str().unwrap();
        if let Some(rest) = email.strip_prefix("autoproc.") {
            let id = p["Id"].as_str().unwrap();
            if id.ends_with(rest.split('@').next().unwrap()) {
                env.change_in_salesforce(
                    id,
                    json!({"Email": format!("back.{}@example.org", &id[10..])}),
                )
                .await;
            }
        }
    }
    let (status, body) = env.live_sync().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SUCCESS");
    assert!(body["changes"].as_u64().unwrap() >= 3, "{body}");
    assert!(env.token().await.unwrap().token > ten_ago);
}

#[tokio::test]
async fn a_salesforce_outage_leaves_the_token() {
    let env = env(4).await;
    env.full_recon_an_hour_ago().await;
    let ten_ago = minute(Utc::now() - Duration::minutes(10));
    env.set_token(ten_ago).await;
    let changed = env.people().await[0]["Id"].as_str().unwrap().to_owned();
    env.change_in_salesforce(&changed, json!({"FirstName": "Outage"}))
        .await;
    let handle = env._org.handle();
    handle.update_faults(&FaultUpdate {
        rate_503: Some(1.0),
        ..FaultUpdate::default()
    });
    // The test client retries briefly; the app's own would retry longer.
    let live = LiveSync::new(env.engine());
    let err = live.run_once(SOURCE).await.unwrap_err();
    assert!(matches!(err, LiveSyncError::Poll(..)), "{err:?}");
    assert_eq!(env.token().await.unwrap().token, ten_ago);

    handle.update_faults(&FaultUpdate {
        rate_503: Some(0.0),
        ..FaultUpdate::default()
    });
    let pass = live.run_once(SOURCE).await.unwrap();
    assert_eq!(pass.status, PassStatus::Synced);
    assert!(pass.token.token > ten_ago);
    assert_eq!(env.linked_user(&changed).await["givenName"], "Outage");
}

#[tokio::test]
async fn a_token_older_than_30_days_asks_for_a_full_reconciliation() {
    let env = env(3).await;
    let old = minute(Utc::now() - Duration::days(31));
    env.set_token(old).await;
    let (status, body) = env.live_sync().await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("30 days") && message.contains("full reconciliation"),
        "{message}"
    );
    assert_eq!(env.token().await.unwrap().token, old, "not advanced");

    // After a full reconciliation, liveSync resumes from its start.
    let s = env.recon("").await;
    assert_eq!(s["state"], "SUCCESS");
    let (status, body) = env.live_sync().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "SUCCESS");
    assert!(env.token().await.unwrap().token > Utc::now() - Duration::minutes(5));
}

/// A firing of its own for each call of a job runner.
fn claim(env: &Env) -> Claim {
    Claim::new(
        env.app.db.pool.clone(),
        Firing {
            schedule_id: "live-sync".into(),
            fire_time: Utc::now(),
            node: "test".into(),
        },
    )
}

#[tokio::test]
async fn a_running_recon_skips_the_pass_and_the_schedule_runs_one() {
    let env = env(5).await;
    let runner = idm_sync::scheduler::jobs::runner(Some(env.engine()));
    let outcome = runner(
        Invoke::LiveSync {
            source: SOURCE.to_owned(),
        },
        claim(&env),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, JobOutcome::Started(_)), "{outcome:?}");
    assert!(env.token().await.is_some());
    let ten_ago = minute(Utc::now() - Duration::minutes(10));
    env.set_token(ten_ago).await;
    let changed = env.people().await[0]["Id"].as_str().unwrap().to_owned();
    env.change_in_salesforce(&changed, json!({"LastName": "Later"}))
        .await;

    // A slow recon holds the mapping's lock.
    env._org.handle().update_faults(&FaultUpdate {
        latency_ms: Some(1500),
        ..FaultUpdate::default()
    });
    let engine = env.engine();
    let running = engine
        .start(idm_sync::recon::ReconRequest {
            mapping: super::support::MAPPING.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    let outcome = runner(
        Invoke::LiveSync {
            source: SOURCE.to_owned(),
        },
        claim(&env),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, JobOutcome::Skipped(_)), "{outcome:?}");
    assert_eq!(env.token().await.unwrap().token, ten_ago, "unchanged");
    running.task.await.unwrap();

    // Unknown sources are refused clearly.
    let err = runner(
        Invoke::LiveSync {
            source: "system/ldap/account".to_owned(),
        },
        claim(&env),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("system/ldap/account"), "{err}");
}

#[tokio::test]
async fn an_unknown_action_names_both_actions() {
    let env = env(1).await;
    let res = env
        .app
        .post("/system/salesforce/User?_action=liveSink")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("'create'") && message.contains("'liveSync'"),
        "{message}"
    );
}
