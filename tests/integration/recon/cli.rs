//! `idm-sync recon`'s command logic, in process: with no `--mapping` it reconciles sync.json's
//! inbound mapping; a mapping it cannot reconcile is refused with the engine's reason.

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

    let outbound = ReconCommand {
        mapping: Some("managedUser_systemSalesforceUser".into()),
        ..cmd
    };
    let err = recon_cli::run(&outbound, std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the other direction is implicit synchronization"),
        "{err}"
    );
}
