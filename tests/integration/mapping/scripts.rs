//! The sample's scripts run unchanged; script errors fail one object, typed, with the message.

use std::time::Duration;

use idm_sync::mapping::{MappingError, ScriptError, SyncConfig, SyncContext};
use serde_json::json;

use super::{INBOUND, OUTBOUND, sample};

#[test]
fn sample_valid_source_excludes_automated_process_users() {
    let c = sample();
    let m = c.mapping(INBOUND).unwrap();
    let ctx = SyncContext::default();
    assert!(
        m.source_qualifies(&json!({"Email": "bjensen@example.com"}), &ctx)
            .unwrap()
    );
    assert!(
        !m.source_qualifies(&json!({"Email": "autoproc@00d5g000004example.com"}), &ctx)
            .unwrap()
    );
}

#[test]
fn sample_alias_transform_takes_eight_characters() {
    let c = sample();
    let m = c.mapping(OUTBOUND).unwrap();
    let user = json!({"userName": "bjensen@example.com", "givenName": "Barbara-Ann", "sn": "Jensen",
        "mail": "bjensen@example.com", "profileId": "00e000000000001"});
    let mapped = m.map_object(&user, None, &SyncContext::default()).unwrap();
    assert_eq!(mapped.object["Alias"], json!("Barbara-"));
    assert_eq!(mapped.object["FirstName"], json!("Barbara-Ann"));
}

#[test]
fn sample_valid_target_fails_per_object_as_in_idm() {
    // IDM binds only `target` and `linkQualifier` in validTarget; the sample reads `source`.
    let c = sample();
    let m = c.mapping(INBOUND).unwrap();
    let err = m
        .target_qualifies(
            &json!({"mail": "bjensen@example.com"}),
            &SyncContext::default(),
        )
        .unwrap_err();
    match &err {
        MappingError::Script {
            during,
            source: ScriptError::Thrown { message, .. },
            ..
        } => {
            assert_eq!(during, "validTarget");
            assert!(
                message.contains("ReferenceError") && message.contains("source"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // ... and the next object is evaluated normally.
    assert!(
        m.source_qualifies(&json!({"Email": "x@example.com"}), &SyncContext::default())
            .unwrap()
    );
}

#[test]
fn a_throwing_transform_fails_that_object_with_the_message() {
    let c = sample();
    let m = c.mapping(OUTBOUND).unwrap();
    // No givenName: `source.substring` on null throws a TypeError in the sample's transform.
    let err = m
        .map_object(&json!({"userName": "x"}), None, &SyncContext::default())
        .unwrap_err();
    match &err {
        MappingError::Script {
            mapping,
            during,
            source: ScriptError::Thrown { message, .. },
        } => {
            assert_eq!(mapping, OUTBOUND);
            assert_eq!(during, "property \"Alias\" transform");
            assert!(message.starts_with("TypeError"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("TypeError"), "{err}");
    let ok = m
        .map_object(
            &json!({"userName": "x", "givenName": "Al"}),
            None,
            &SyncContext::default(),
        )
        .unwrap();
    assert_eq!(ok.object["Alias"], json!("Al"));
}

#[test]
fn runaway_script_is_interrupted_per_object() {
    let c = SyncConfig::from_json_with(
        &json!({"mappings": [{"name": "a", "source": "s", "target": "t",
            "validSource": {"type": "text/javascript", "source": "if (source.loop) { while (true) {} } true"}}]}),
        &idm_sync::mapping::LoadOptions { script_dirs: vec![], script_budget: Duration::from_millis(30) },
    )
    .unwrap();
    let m = &c.mappings[0];
    let started = std::time::Instant::now();
    let err = m
        .source_qualifies(&json!({"loop": true}), &SyncContext::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            MappingError::Script {
                source: ScriptError::Timeout { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        m.source_qualifies(&json!({"loop": false}), &SyncContext::default())
            .unwrap()
    );
}

#[test]
fn scripts_are_compiled_once_at_load_not_per_evaluation() {
    let c = sample();
    let compiled = c.engine().compilations();
    let m = c.mapping(OUTBOUND).unwrap();
    for i in 0..50 {
        let user = json!({"userName": format!("u{i}"), "givenName": format!("Given{i}"), "sn": "S", "mail": "m"});
        m.map_object(&user, None, &SyncContext::default()).unwrap();
    }
    assert_eq!(c.engine().compilations(), compiled);
}

#[test]
fn globals_and_extra_script_keys_are_in_scope() {
    let c = SyncConfig::from_json(&json!({"mappings": [{"name": "a", "source": "s", "target": "t",
        "properties": [{"target": "x", "source": "v",
            "transform": {"type": "text/javascript", "globals": {"suffix": "!"}, "prefix": ">", "source": "prefix + source + suffix"}}]}]}))
    .unwrap();
    let mapped = c.mappings[0]
        .map_object(&json!({"v": "hi"}), None, &SyncContext::default())
        .unwrap();
    assert_eq!(mapped.object["x"], json!(">hi!"));
}

#[test]
fn valid_source_must_yield_a_boolean() {
    let c = SyncConfig::from_json(
        &json!({"mappings": [{"name": "a", "source": "s", "target": "t",
        "validSource": {"type": "text/javascript", "source": "source.x"}}]}),
    )
    .unwrap();
    let err = c.mappings[0]
        .source_qualifies(&json!({"x": "yes"}), &SyncContext::default())
        .unwrap_err();
    assert!(matches!(err, MappingError::BadResult { .. }), "{err}");
}
