//! The shipped `conf/provisioner.openicf-salesforce.json` works as-is against the emulator.

use std::path::Path;

use idm_sync::config::Conf;
use idm_sync::salesforce::{SalesforceClient, TokenStore};

use super::support::start_org;

#[tokio::test]
async fn shipped_conf_talks_to_an_emulator_with_default_flags() {
    let org = start_org(20, false).await;
    let login = format!("{}/services/oauth2/token", org.base_url());
    let env = move |name: &str| (name == "SF_LOGIN_URL").then(|| login.clone());
    let conf = Conf::load_with(&Path::new(env!("CARGO_MANIFEST_DIR")).join("conf"), &env).unwrap();
    let sf = conf
        .system("salesforce")
        .cloned()
        .expect("the sample ships a Salesforce provisioner");
    assert!(sf.enabled);
    assert_eq!(sf.name, "salesforce");
    assert_eq!(sf.client.api_version, "62.0");
    assert_eq!(sf.object_types["User"].properties.len(), 33);
    assert_eq!(
        sf.object_types["User"]
            .properties
            .iter()
            .filter(|p| p.required)
            .count(),
        10
    );
    let client = SalesforceClient::new(sf.client, TokenStore::in_memory()).unwrap();
    let report = client.test().await.unwrap();
    assert!(report.instance_url.starts_with(org.base_url()));
}

#[test]
fn conf_without_a_provisioner_still_loads() {
    let dir = std::env::temp_dir().join(format!("idm-sync-conf-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    std::fs::copy(shipped.join("managed.json"), dir.join("managed.json")).unwrap();
    let conf = Conf::load_with(&dir, &|_| None).unwrap();
    assert!(conf.systems.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
