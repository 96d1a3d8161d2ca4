//! The scheduler against real Postgres: IDM schedule files load, every firing runs exactly once
//! with two schedulers up, and a missed firing of a persisted schedule is made up once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Timelike;
use idm_sync::scheduler::config::load_all;
use idm_sync::scheduler::{Claim, Invoke, JobOutcome, JobRunner, Schedule, Scheduler};
use serde_json::json;

use crate::helpers::TestDb;

/// Claims the firing and records what it was asked to start, as a job with no start record
/// of its own does.
fn recording_runner(log: Arc<Mutex<Vec<(String, Invoke)>>>, node: &'static str) -> JobRunner {
    Arc::new(move |invoke: Invoke, claim: Claim| {
        let log = log.clone();
        Box::pin(async move {
            if !claim.take().await.unwrap() {
                return Ok(JobOutcome::Taken);
            }
            log.lock().unwrap().push((node.to_owned(), invoke));
            Ok(JobOutcome::Started(format!("run-by-{node}")))
        })
    })
}

fn every_second(id: &str) -> Schedule {
    Schedule::from_json(
        id,
        &json!({"type": "simple", "repeatInterval": 1000, "invokeService": "sync",
                "invokeContext": {"action": "reconcile", "mapping": "systemSalesforceUser_managedUser"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn two_schedulers_run_each_firing_exactly_once() {
    let db = TestDb::new().await;
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for node in ["a", "b"] {
        let scheduler = Scheduler::new(
            db.pool.clone(),
            vec![every_second("tick")],
            recording_runner(log.clone(), node),
            node,
        );
        let mut rx = rx.clone();
        handles.push(tokio::spawn(scheduler.run_until(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })));
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap();
    }
    let runs = log.lock().unwrap().clone();
    let firings: Vec<(String, String)> = sqlx::query_as(
        "SELECT node, outcome FROM schedule_firings WHERE schedule_id = 'tick' ORDER BY fire_time",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(runs.len() >= 3, "about one firing a second: {runs:?}");
    assert_eq!(runs.len(), firings.len(), "one run per firing, none twice");
    for (node, outcome) in &firings {
        assert_eq!(outcome, &format!("started run-by-{node}"));
    }
}

#[tokio::test]
async fn a_missed_firing_of_a_persisted_schedule_is_made_up_once() {
    let db = TestDb::new().await;
    let hourly = |policy: &str| {
        Schedule::from_json(
            "hourly",
            &json!({"type": "simple", "repeatInterval": 3_600_000, "persisted": true, "misfirePolicy": policy,
                    "invokeService": "sync", "invokeContext": {"action": "reconcile", "mapping": "m"}}),
        )
        .unwrap()
    };
    let start = |schedule: Schedule, log: Arc<Mutex<Vec<(String, Invoke)>>>| {
        let scheduler = Scheduler::new(
            db.pool.clone(),
            vec![schedule],
            recording_runner(log, "n"),
            "n",
        );
        async move {
            tokio::time::timeout(
                Duration::from_millis(700),
                scheduler.run_until(std::future::pending()),
            )
            .await
            .ok();
        }
    };
    // doNothing: the last hour's firing is not made up.
    let log = Arc::new(Mutex::new(Vec::new()));
    start(hourly("doNothing"), log.clone()).await;
    assert!(log.lock().unwrap().is_empty());
    // fireAndProceed: made up once at start-up…
    start(hourly("fireAndProceed"), log.clone()).await;
    assert_eq!(log.lock().unwrap().len(), 1);
    // …and not again by the next scheduler to start.
    start(hourly("fireAndProceed"), log.clone()).await;
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn schedule_files_load_and_errors_name_the_file() {
    let shipped = load_all(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        &|_| None,
    )
    .unwrap();
    let recon = shipped
        .iter()
        .find(|s| s.id == "recon")
        .expect("conf/schedule-recon.json");
    assert!(recon.enabled && recon.persisted && !recon.concurrent_execution);
    assert_eq!(
        recon.invoke,
        Invoke::Reconcile {
            mapping: "systemSalesforceUser_managedUser".into()
        }
    );
    let disabled = load_all(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"),
        &|name| (name == "IDM_RECON_SCHEDULE_ENABLED").then(|| "false".to_owned()),
    )
    .unwrap();
    assert!(!disabled.iter().any(|s| s.enabled));

    let dir = std::env::temp_dir().join(format!("idm-sched-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("schedule-bad.json"),
        json!({"type": "cron", "schedule": "0 0 25 * * ?", "invokeService": "sync",
               "invokeContext": {"action": "reconcile", "mapping": "m"}})
        .to_string(),
    )
    .unwrap();
    let err = load_all(&dir, &|_| None).unwrap_err().to_string();
    assert!(
        err.contains("schedule-bad.json") && err.contains("/schedule") && err.contains("hours"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn jobs_are_listed_with_their_next_run() {
    let app = crate::helpers::TestApp::spawn().await;
    let body: serde_json::Value = app
        .get("/scheduler/job?_queryFilter=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["resultCount"], 1);
    let job = &body["result"][0];
    assert_eq!(job["_id"], "recon");
    assert_eq!(
        job["invokeContext"]["mapping"],
        "systemSalesforceUser_managedUser"
    );
    let next = chrono::DateTime::parse_from_rfc3339(job["nextRunDate"].as_str().unwrap()).unwrap();
    assert!(
        next > chrono::Utc::now() && next <= chrono::Utc::now() + chrono::Duration::minutes(15)
    );
    assert_eq!(job["previousRunDate"], serde_json::Value::Null);
    let res = app.get("/scheduler/job/recon").send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.get("/scheduler/job/nope").send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = app
        .get("/scheduler/job?_queryFilter=enabled%20eq%20false")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["resultCount"], 0);
}

#[tokio::test]
async fn firings_start_reconciliations_or_skip_while_one_runs() {
    let env = crate::recon::support::env(30).await;
    let scheduler = Scheduler::new(
        env.app.db.pool.clone(),
        vec![every_second("recon-every-second")],
        idm_sync::scheduler::jobs::runner(Some(env.engine())),
        "node",
    );
    tokio::time::timeout(
        Duration::from_millis(3300),
        scheduler.run_until(std::future::pending()),
    )
    .await
    .ok();
    let outcomes: Vec<(String,)> =
        sqlx::query_as("SELECT outcome FROM schedule_firings WHERE schedule_id = 'recon-every-second' ORDER BY fire_time")
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert!(outcomes.len() >= 2, "{outcomes:?}");
    let started = outcomes
        .iter()
        .filter(|(o,)| o.starts_with("started "))
        .count();
    assert!(started >= 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|(o,)| o.starts_with("started ") || o.starts_with("skipped: a reconciliation")),
        "{outcomes:?}"
    );
    // The runs it started are real reconciliations of the mapping.
    let runs = env
        .scalar(
            "SELECT count(*) FROM recon_runs WHERE mapping = 'systemSalesforceUser_managedUser'",
        )
        .await;
    assert_eq!(runs, started as i64);
    let first = outcomes[0].0.trim_start_matches("started ").to_owned();
    let summary = env.wait_done(&first).await;
    assert_eq!(summary["state"], "SUCCESS");
    assert_eq!(env.users().await, 29, "the autoproc user is not imported");
}

/// `idm-sync scheduler` as a child process over `env`'s database and conf/.
fn spawn_scheduler(env: &crate::recon::support::Env) -> crate::helpers::RoleProcess {
    use crate::helpers::RoleProcess;
    RoleProcess::spawn(RoleProcess::command(
        "scheduler",
        &env.conf.0,
        &env.app.db.url,
    ))
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The scheduler is SIGKILLed after it claimed a firing and before the run started (the test
/// holds a lock on `recon_runs`, so the start blocks right after the claim). The claim dies
/// with the process; the next scheduler makes the firing up: one run for that firing, not
/// zero (the claim survived the crash and counted as fired), not two.
#[tokio::test]
async fn a_firing_claimed_by_a_killed_scheduler_runs_once_after_restart() {
    let env = crate::recon::support::env(5).await;
    let mapping = crate::recon::support::MAPPING;
    // One firing, a few seconds from now; persisted and fireAndProceed, so a scheduler
    // starting after it makes it up if no one claimed it.
    let fire_time = chrono::Utc::now()
        .checked_add_signed(chrono::Duration::seconds(3))
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    std::fs::write(
        env.conf.0.join("schedule-once.json"),
        json!({"type": "simple", "repeatInterval": 60_000, "repeatCount": 0,
               "startTime": fire_time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
               "persisted": true, "misfirePolicy": "fireAndProceed", "invokeService": "sync",
               "invokeContext": {"action": "reconcile", "mapping": mapping}})
        .to_string(),
    )
    .unwrap();
    let pool = &env.app.db.pool;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE recon_runs IN EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut first = spawn_scheduler(&env);
    // The run's start waits on our lock once the firing is claimed (committed, or held by the
    // blocked transaction itself).
    let pid: i32 = wait_for(
        "the scheduler to block between claim and start",
        async || {
            sqlx::query_scalar(
                "SELECT a.pid FROM pg_stat_activity a
             WHERE a.datname = current_database() AND a.wait_event_type = 'Lock'
               AND a.query LIKE '%recon_runs%'
               AND (EXISTS (SELECT 1 FROM schedule_firings)
                    OR EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                               WHERE l.pid = a.pid AND c.relname = 'schedule_firings'
                                 AND l.granted AND l.mode = 'RowExclusiveLock'))",
            )
            .fetch_optional(pool)
            .await
            .unwrap()
        },
    )
    .await;
    first.kill();
    blocker.commit().await.unwrap();
    wait_for("the killed scheduler's session to end", async || {
        let gone: bool =
            sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
        gone.then_some(())
    })
    .await;
    assert_eq!(
        env.scalar("SELECT count(*) FROM schedule_firings").await,
        0,
        "the claim died with the process that could not start the run"
    );
    assert_eq!(env.scalar("SELECT count(*) FROM recon_runs").await, 0);

    let _second = spawn_scheduler(&env);
    let run_id: String = wait_for("the firing to be made up", async || {
        sqlx::query_scalar("SELECT run_id FROM schedule_firings WHERE run_id IS NOT NULL")
            .fetch_optional(pool)
            .await
            .unwrap()
    })
    .await;
    let summary = env.wait_done(&run_id).await;
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    // Time for a second (wrong) firing to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let firings: Vec<(
        chrono::DateTime<chrono::Utc>,
        Option<String>,
        Option<String>,
    )> = sqlx::query_as("SELECT fire_time, run_id, outcome FROM schedule_firings")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(
        firings,
        vec![(
            fire_time,
            Some(run_id.clone()),
            Some(format!("started {run_id}"))
        )],
        "one claim, for that firing, with its run"
    );
    let runs: Vec<String> = sqlx::query_scalar("SELECT id FROM recon_runs")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(runs, vec![run_id], "exactly one run");
}

#[tokio::test]
async fn two_schedulers_start_one_reconciliation_per_firing() {
    let env = crate::recon::support::env(5).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut handles = Vec::new();
    for node in ["a", "b"] {
        let scheduler = Scheduler::new(
            env.app.db.pool.clone(),
            vec![every_second("recon-twice")],
            idm_sync::scheduler::jobs::runner(Some(env.engine())),
            node,
        );
        let mut rx = rx.clone();
        handles.push(tokio::spawn(scheduler.run_until(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })));
    }
    tokio::time::sleep(Duration::from_millis(3300)).await;
    tx.send(true).unwrap();
    for h in handles {
        h.await.unwrap();
    }
    let firings: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT run_id, outcome FROM schedule_firings ORDER BY fire_time")
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert!(firings.len() >= 2, "{firings:?}");
    let mut started: Vec<String> = Vec::new();
    for (run_id, outcome) in &firings {
        match run_id {
            Some(id) => {
                assert_eq!(outcome.as_deref(), Some(format!("started {id}").as_str()));
                started.push(id.clone());
            }
            None => assert!(
                outcome
                    .as_deref()
                    .is_some_and(|o| o.starts_with("skipped: a reconciliation")),
                "{firings:?}"
            ),
        }
    }
    let mut runs: Vec<String> = sqlx::query_scalar("SELECT id FROM recon_runs")
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap();
    runs.sort();
    started.sort();
    assert!(!runs.is_empty());
    assert_eq!(
        runs, started,
        "each run belongs to one firing, each firing to one run"
    );
}
