//! Loading sync.json: the shipped one, the sample's, and errors that name file and path.

use std::time::Duration;

use idm_sync::mapping::{Action, Situation, SyncConfig};
use serde_json::json;

use super::{INBOUND, OUTBOUND, sample, shipped};
use crate::helpers::TempDir;

fn conf_dir_with(sync: &serde_json::Value) -> TempDir {
    let dir = TempDir::new("idm-sync");
    std::fs::write(dir.join("sync.json"), sync.to_string()).unwrap();
    dir
}

#[test]
fn shipped_sync_json_loads_with_the_deliberate_differences() {
    let c = shipped();
    assert_eq!(c.mappings.len(), 2);
    let inbound = c.mapping(INBOUND).unwrap();
    let outbound = c.mapping(OUTBOUND).unwrap();
    assert_eq!(inbound.source, "system/salesforce/User");
    assert_eq!(outbound.link_type(), INBOUND);
    assert!(outbound.links_reversed());
    assert!(inbound.correlation_query.is_some() && outbound.correlation_query.is_some());
    for m in [inbound, outbound] {
        assert_eq!(m.policies.len(), 13, "{}", m.name);
        for s in Situation::ALL {
            assert_eq!(m.policies.iter().filter(|p| p.situation == s).count(), 1);
        }
    }
    let source_missing = |m: &idm_sync::mapping::Mapping| match &m
        .policies
        .iter()
        .find(|p| p.situation == Situation::SourceMissing)
        .unwrap()
        .action
    {
        idm_sync::mapping::PolicyAction::Static(a) => *a,
        idm_sync::mapping::PolicyAction::Script(_) => panic!("static expected"),
    };
    assert_eq!(source_missing(outbound), Action::Delete);
    assert_eq!(source_missing(inbound), Action::Exception);
    let targets: Vec<_> = outbound
        .properties
        .iter()
        .map(|p| p.target.as_str())
        .collect();
    for t in [
        "Username",
        "CommunityNickname",
        "LastName",
        "Email",
        "FirstName",
        "Alias",
        "ProfileId",
        "IsActive",
        "LocaleSidKey",
        "EmailEncodingKey",
        "LanguageLocaleKey",
        "TimeZoneSidKey",
    ] {
        assert!(targets.contains(&t), "{t}");
    }
    // Implicit sync of managed/user runs the outbound mapping only.
    let names: Vec<_> = c
        .sync_mappings_for("managed/user")
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, [OUTBOUND]);
}

#[test]
fn sample_sync_json_loads_unchanged() {
    let c = sample();
    assert_eq!(c.mappings.len(), 2);
    let inbound = c.mapping(INBOUND).unwrap();
    assert!(inbound.valid_source.is_some() && inbound.valid_target.is_some());
    assert!(!inbound.has_correlation());
    assert_eq!(c.mapping(OUTBOUND).unwrap().policies.len(), 13);
    // validSource, validTarget and the Alias transform: three scripts, each compiled once.
    assert_eq!(c.engine().compilations(), 3);
}

#[test]
fn unsupported_key_names_file_key_and_path() {
    let dir = conf_dir_with(&json!({"mappings": [
        {"name": "a", "source": "s", "target": "t"},
        {"name": "b", "source": "t", "target": "s", "onSync": {"type": "text/javascript", "source": "1"}}
    ]}));
    let err = SyncConfig::load_with(&dir, &|_| None, Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("sync.json: /mappings/1/onSync: unsupported mapping key \"onSync\""),
        "{err}"
    );
    assert!(err.contains(&dir.display().to_string()), "{err}");
}

#[test]
fn idm_keys_idm_sync_does_not_support_are_refused_too() {
    for key in [
        "linkQualifiers",
        "queuedSync",
        "triggerSyncProperties",
        "reconSourceQueryPaging",
        "onRecon",
        "enableLinking",
    ] {
        let mut m = json!({"name": "a", "source": "s", "target": "t"});
        m[key] = json!(true);
        let err = SyncConfig::from_json(&json!({"mappings": [m]})).unwrap_err();
        assert_eq!(err.path, format!("/mappings/0/{key}"));
    }
}

#[test]
fn bad_policy_is_a_load_error_with_its_path() {
    let dir = conf_dir_with(
        &json!({"mappings": [{"name": "a", "source": "s", "target": "t",
        "policies": [{"situation": "CONFIRMED", "action": "CREATE"}]}]}),
    );
    let err = SyncConfig::load_with(&dir, &|_| None, Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "/mappings/0/policies/0/action: action CREATE is not valid for situation CONFIRMED"
        ),
        "{err}"
    );
}

#[test]
fn env_substitution_applies_to_sync_json() {
    let dir =
        conf_dir_with(&json!({"mappings": [{"name": "a", "source": "&{env.SRC}", "target": "t"}]}));
    let c = SyncConfig::load_with(
        &dir,
        &|n| (n == "SRC").then(|| "system/x/User".to_owned()),
        Duration::from_millis(100),
    )
    .unwrap();
    assert_eq!(c.mappings[0].source, "system/x/User");
}

#[test]
fn script_files_resolve_under_conf_or_script_dir() {
    let root = TempDir::new("idm-sync");
    let conf = root.join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(root.join("script")).unwrap();
    std::fs::write(root.join("script/valid.js"), "source.ok === true").unwrap();
    std::fs::write(conf.join("bad.js"), "source.(").unwrap();
    std::fs::write(
        conf.join("sync.json"),
        json!({"mappings": [{"name": "a", "source": "s", "target": "t",
        "validSource": {"type": "text/javascript", "file": "valid.js"}}]})
        .to_string(),
    )
    .unwrap();
    let c = SyncConfig::load_with(&conf, &|_| None, Duration::from_millis(100)).unwrap();
    let ctx = Default::default();
    assert!(
        c.mappings[0]
            .source_qualifies(&json!({"ok": true}), &ctx)
            .unwrap()
    );
    assert!(
        !c.mappings[0]
            .source_qualifies(&json!({"ok": 1}), &ctx)
            .unwrap()
    );

    std::fs::write(
        conf.join("sync.json"),
        json!({"mappings": [{"name": "a", "source": "s", "target": "t",
        "validSource": {"type": "text/javascript", "file": "bad.js"}}]})
        .to_string(),
    )
    .unwrap();
    let err = SyncConfig::load_with(&conf, &|_| None, Duration::from_millis(100))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/mappings/0/validSource/file")
            && err.contains("bad.js")
            && err.contains("SyntaxError"),
        "{err}"
    );
}

#[test]
fn event_hooks_load_and_a_broken_one_names_its_path() {
    for key in [
        "onCreate", "onUpdate", "onDelete", "onLink", "onUnlink", "result",
    ] {
        let dir = conf_dir_with(&json!({"mappings": [
            {"name": "a", "source": "s", "target": "t", key: {"type": "text/javascript", "source": "1"}}
        ]}));
        let sync = SyncConfig::load_with(&dir, &|_| None, Duration::from_millis(100)).unwrap();
        assert_eq!(sync.mappings.len(), 1);
        let dir = conf_dir_with(&json!({"mappings": [
            {"name": "a", "source": "s", "target": "t", key: {"type": "text/javascript", "source": "target.("}}
        ]}));
        let err = SyncConfig::load_with(&dir, &|_| None, Duration::from_millis(100))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("/mappings/0/{key}/source")) && err.contains("SyntaxError"),
            "{err}"
        );
    }
}
