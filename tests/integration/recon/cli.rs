//! `idm-sync recon`'s command logic, in process: with no `--mapping` it reconciles sync.json's
//! inbound mapping; `--mapping` runs either direction; an unknown mapping is refused by name.

use idm_sync::recon_cli::{self, ReconCommand};

use super::support::env;
use crate::helpers::db_settings;

#[tokio::test]
async fn without_a_mapping_the_cli_reconciles_the_inbound_one() {
    let env = env(5).await;
    let cmd = ReconCommand {
        conf_dir: env.conf.to_path_buf(),
        database: db_settings(&env.app.db.url),
        mapping: None,
        analyze: false,
        allow_mass_change: false,
    };
    let summary = recon_cli::run(&cmd, std::future::pending()).await.unwrap();
    assert_eq!(summary["mapping"], "systemSalesforceUser_managedUser");
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    let created = summary["progress"]["target"]["created"].as_i64().unwrap();
    assert!(created > 0, "{summary}");
    assert_eq!(env.users().await, created);
    // Without --json, a few lines for a person.
    let told = recon_cli::describe(&summary);
    assert!(
        told.starts_with(&format!(
            "reconciliation {} of systemSalesforceUser_managedUser: SUCCESS in ",
            summary["_id"].as_str().unwrap()
        )),
        "{told}"
    );
    assert!(told.contains(&format!("{created} created")), "{told}");
    assert!(told.contains("situations: ABSENT "), "{told}");

    let queued = env.outbox().await;
    let outbound = ReconCommand {
        mapping: Some("managedUser_systemSalesforceUser".into()),
        ..cmd
    };
    let summary = recon_cli::run(&outbound, std::future::pending())
        .await
        .unwrap();
    assert_eq!(summary["mapping"], "managedUser_systemSalesforceUser");
    assert_eq!(summary["state"], "SUCCESS", "{summary}");
    assert_eq!(
        summary["situationSummary"]["CONFIRMED"].as_i64(),
        Some(created),
        "{summary}"
    );
    // The seeded org's Alias and CommunityNickname are not what the outbound mapping makes of
    // the managed users: each user that differs is queued, one `sync` row each.
    let updated = summary["progress"]["target"]["updated"].as_i64().unwrap();
    assert_eq!(env.outbox().await, queued + updated, "{summary}");

    let unknown = ReconCommand {
        mapping: Some("noSuchMapping".into()),
        ..outbound
    };
    let err = recon_cli::run(&unknown, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("noSuchMapping"), "{err}");
}
