//! Configuration errors name the file, the JSON path and what is wrong; values come from the environment.

use std::path::PathBuf;

use idm_sync::config::Conf;

use crate::helpers::TempDir;
use serde_json::json;

fn conf_dir(managed: &serde_json::Value, auth: Option<&serde_json::Value>) -> TempDir {
    let dir = TempDir::new("idm-conf");
    std::fs::write(dir.join("managed.json"), managed.to_string()).unwrap();
    if let Some(auth) = auth {
        std::fs::write(dir.join("authentication.json"), auth.to_string()).unwrap();
    }
    dir
}

#[test]
fn shipped_conf_loads() {
    let conf = Conf::load_with(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf"),
        &|_| None,
    )
    .unwrap();
    let user = conf.managed.object("user").unwrap();
    assert_eq!(user.required, ["userName", "givenName", "sn", "mail"]);
    assert!(conf.auth.uses_default_password());
}

#[test]
fn env_substitution_sets_the_admin_account() {
    let conf = Conf::load_with(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf"),
        &|name| (name == "IDM_ADMIN_PASSWORD").then(|| "from-env".to_owned()),
    )
    .unwrap();
    assert_eq!(conf.auth.username, "openidm-admin");
    assert!(!conf.auth.uses_default_password());
}

#[test]
fn errors_name_file_path_and_problem() {
    let dir = conf_dir(
        &json!({"objects": [{"name": "user", "schema": {"properties": {"mail": {"policies": [{"policyId": "bogus"}]}}}}]}),
        None,
    );
    let err = Conf::load_with(&dir, &|_| None).unwrap_err().to_string();
    assert!(err.contains("managed.json"), "{err}");
    assert!(
        err.contains("/objects/0/schema/properties/mail/policies/0/policyId"),
        "{err}"
    );
    assert!(err.contains("bogus"), "{err}");

    let dir = conf_dir(
        &json!({"objects": []}),
        Some(&json!({"adminAccount": {"username": "a", "password": "&{env.NO_SUCH_VAR}"}})),
    );
    let err = Conf::load_with(&dir, &|_| None).unwrap_err().to_string();
    assert!(err.contains("authentication.json"), "{err}");
    assert!(err.contains("/adminAccount/password"), "{err}");
    assert!(err.contains("NO_SUCH_VAR"), "{err}");

    std::fs::write(dir.join("managed.json"), "{\"objects\": [").unwrap();
    let err = Conf::load_with(&dir, &|_| None).unwrap_err().to_string();
    assert!(
        err.contains("managed.json") && err.contains("line 1"),
        "{err}"
    );

    std::fs::remove_file(dir.join("managed.json")).unwrap();
    let err = Conf::load_with(&dir, &|_| None).unwrap_err().to_string();
    assert!(
        err.contains("cannot read") && err.contains("managed.json"),
        "{err}"
    );
}

/// The shipped configuration with `edit` applied to its sync.json, in a directory of its own.
fn shipped_with_sync(edit: impl FnOnce(&mut serde_json::Value)) -> TempDir {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conf");
    let dir = TempDir::new("idm-conf");
    for file in std::fs::read_dir(&shipped).unwrap() {
        let file = file.unwrap();
        if file.file_type().unwrap().is_file() {
            std::fs::copy(file.path(), dir.join(file.file_name())).unwrap();
        }
    }
    let mut sync: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sync.json")).unwrap()).unwrap();
    edit(&mut sync);
    std::fs::write(dir.join("sync.json"), sync.to_string()).unwrap();
    dir
}

fn mapping_check(dir: &TempDir) -> Result<(), String> {
    let env = |name: &str| match name {
        "SF_CLIENT_ID" | "SF_CLIENT_SECRET" => Some("x".to_owned()),
        _ => std::env::var(name).ok(),
    };
    let conf = Conf::load_with(dir, &env).map_err(|e| e.to_string())?;
    let sync =
        idm_sync::mapping::SyncConfig::load_with(dir, &env, std::time::Duration::from_secs(1))
            .map_err(|e| e.to_string())?;
    idm_sync::config::systems::check_mappings(&conf, &sync).map_err(|e| e.to_string())
}

#[test]
fn mappings_may_only_name_what_the_configuration_defines() {
    assert_eq!(mapping_check(&shipped_with_sync(|_| {})), Ok(()));

    // A second org's mapping without its provisioner file: refused, naming file and path.
    let dir = shipped_with_sync(|sync| {
        let mut eu = sync["mappings"][1].clone();
        eu["name"] = json!("managedUser_systemSalesforceEUUser");
        eu["target"] = json!("system/salesforceEU/User");
        eu.as_object_mut().unwrap().remove("links");
        sync["mappings"].as_array_mut().unwrap().push(eu);
    });
    let err = mapping_check(&dir).unwrap_err();
    assert!(err.contains("sync.json: /mappings/2/target:"), "{err}");
    assert!(
        err.contains("\"salesforceEU\"") && err.contains("provisioner.openicf-salesforceEU.json"),
        "{err}"
    );

    // An object type the provisioner does not define, a managed type managed.json lacks, a
    // resource of neither kind.
    // (The outbound mapping, no longer reusing the inbound one's links.)
    for (field, value, says) in [
        ("target", "system/salesforce/Group", "object type \"Group\""),
        ("source", "managed/role", "managed object type \"role\""),
        ("target", "repo/user", "neither managed/<type> nor system/"),
    ] {
        let dir = shipped_with_sync(|sync| {
            let outbound = &mut sync["mappings"][1];
            outbound.as_object_mut().unwrap().remove("links");
            outbound[field] = json!(value);
        });
        let err = mapping_check(&dir).unwrap_err();
        assert!(
            err.contains(&format!("/mappings/1/{field}:")) && err.contains(says),
            "{value}: {err}"
        );
    }
}

#[test]
fn every_provisioner_file_is_a_system_and_its_name_must_agree() {
    let dir = shipped_with_sync(|_| {});
    std::fs::copy(
        dir.join("provisioner.openicf-salesforce.json"),
        dir.join("provisioner.openicf-salesforceEU.json"),
    )
    .unwrap();
    // A second org whose mapping is not written yet: it loads (a warning says it is unused).
    assert_eq!(mapping_check(&dir), Ok(()));
    let env = |name: &str| match name {
        "SF_CLIENT_ID" | "SF_CLIENT_SECRET" => Some("x".to_owned()),
        _ => std::env::var(name).ok(),
    };
    let conf = Conf::load_with(&dir, &env).unwrap();
    let names: Vec<&str> = conf.systems.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["salesforce", "salesforceEU"]);
    assert!(conf.system("salesforceEU").is_some());

    // The file's own `name` must be the file name's.
    let path = dir.join("provisioner.openicf-salesforceEU.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    file["name"] = json!("salesforce");
    std::fs::write(&path, file.to_string()).unwrap();
    let err = Conf::load_with(&dir, &env).unwrap_err().to_string();
    assert!(
        err.contains("provisioner.openicf-salesforceEU.json")
            && err.contains("/name")
            && err.contains("\"salesforceEU\""),
        "{err}"
    );
    // A name that cannot be a path segment.
    std::fs::remove_file(&path).unwrap();
    std::fs::copy(
        dir.join("provisioner.openicf-salesforce.json"),
        dir.join("provisioner.openicf-eu west.json"),
    )
    .unwrap();
    let err = Conf::load_with(&dir, &env).unwrap_err().to_string();
    assert!(err.contains("only letters, digits"), "{err}");
}
