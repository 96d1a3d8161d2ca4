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
