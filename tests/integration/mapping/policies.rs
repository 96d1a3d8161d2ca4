//! Policy selection: the sample's and shipped policies, conditions, defaults, action scripts.

use idm_sync::mapping::{Action, PolicyScope, Situation, SyncConfig};
use serde_json::{Value, json};

use super::{INBOUND, OUTBOUND, sample, shipped};

fn scope<'a>(source: Option<&'a Value>, target: Option<&'a Value>) -> PolicyScope<'a> {
    PolicyScope {
        source,
        target,
        link_qualifier: "default",
        source_phase: true,
        recon_id: Some("r1"),
    }
}

#[test]
fn sample_policies() {
    let c = sample();
    let expected = [
        (Situation::Absent, Action::Create),
        (Situation::Confirmed, Action::Update),
        (Situation::Found, Action::Update),
        (Situation::Unqualified, Action::Delete),
        (Situation::SourceIgnored, Action::Ignore),
        (Situation::TargetIgnored, Action::Ignore),
        (Situation::AllGone, Action::Ignore),
        (Situation::Ambiguous, Action::Exception),
        (Situation::SourceMissing, Action::Exception),
        (Situation::Missing, Action::Exception),
        (Situation::FoundAlreadyLinked, Action::Exception),
        (Situation::Unassigned, Action::Exception),
        (Situation::LinkOnly, Action::Exception),
    ];
    for name in [INBOUND, OUTBOUND] {
        let m = c.mapping(name).unwrap();
        for (situation, action) in expected {
            let d = m.decide(situation, &scope(None, None)).unwrap();
            assert_eq!(d.action, action, "{name} {situation}");
            assert!(d.policy.is_some());
        }
    }
}

#[test]
fn shipped_outbound_deletes_on_source_missing() {
    let c = shipped();
    let d = c
        .mapping(OUTBOUND)
        .unwrap()
        .decide(Situation::SourceMissing, &scope(None, None))
        .unwrap();
    assert_eq!(d.action, Action::Delete);
    let d = c
        .mapping(INBOUND)
        .unwrap()
        .decide(Situation::SourceMissing, &scope(None, None))
        .unwrap();
    assert_eq!(d.action, Action::Exception);
}

#[test]
fn default_actions_without_policies() {
    let c =
        SyncConfig::from_json(&json!({"mappings": [{"name": "a", "source": "s", "target": "t"}]}))
            .unwrap();
    let m = &c.mappings[0];
    for s in Situation::ALL {
        let d = m.decide(s, &scope(None, None)).unwrap();
        assert_eq!(d.action, s.default_action());
        assert!(d.policy.is_none());
    }
    assert_eq!(
        m.decide(Situation::Absent, &scope(None, None))
            .unwrap()
            .action,
        Action::Create
    );
    assert_eq!(
        m.decide(Situation::Found, &scope(None, None))
            .unwrap()
            .action,
        Action::Update
    );
    assert_eq!(
        m.decide(Situation::Unqualified, &scope(None, None))
            .unwrap()
            .action,
        Action::Delete
    );
    assert_eq!(
        m.decide(Situation::Missing, &scope(None, None))
            .unwrap()
            .action,
        Action::Exception
    );
    assert_eq!(
        m.decide(Situation::AllGone, &scope(None, None))
            .unwrap()
            .action,
        Action::Ignore
    );
}

#[test]
fn first_policy_whose_condition_holds_wins() {
    let c = SyncConfig::from_json(&json!({"mappings": [{"name": "a", "source": "s", "target": "t", "policies": [
        {"situation": "ABSENT", "action": "IGNORE", "condition": "/object/department eq \"contractors\""},
        {"situation": "ABSENT", "action": "REPORT",
         "condition": {"type": "text/javascript", "source": "object.userName.indexOf('test') === 0"}},
        {"situation": "ABSENT", "action": "CREATE"},
        {"situation": "CONFIRMED", "action": "UPDATE", "condition": "/linkQualifier eq \"other\""}
    ]}]}))
    .unwrap();
    let m = &c.mappings[0];
    let contractor = json!({"userName": "a", "department": "contractors"});
    let tester = json!({"userName": "test1"});
    let plain = json!({"userName": "bob"});
    assert_eq!(
        m.decide(Situation::Absent, &scope(Some(&contractor), None))
            .unwrap()
            .action,
        Action::Ignore
    );
    assert_eq!(
        m.decide(Situation::Absent, &scope(Some(&tester), None))
            .unwrap()
            .action,
        Action::Report
    );
    let d = m
        .decide(Situation::Absent, &scope(Some(&plain), None))
        .unwrap();
    assert_eq!(
        (d.action, d.policy.map(|p| p.index)),
        (Action::Create, Some(2))
    );
    // No policy for CONFIRMED holds: the default action.
    let d = m
        .decide(Situation::Confirmed, &scope(Some(&plain), None))
        .unwrap();
    assert_eq!(d.action, Action::Update);
    assert!(d.policy.is_none());
}

#[test]
fn action_scripts_and_post_actions() {
    let c = SyncConfig::from_json(&json!({"mappings": [{"name": "a", "source": "s", "target": "t", "policies": [
        {"situation": "FOUND", "action": {"type": "text/javascript",
            "source": "situation === 'FOUND' && sourceAction && recon.actionParam.mapping === 'a' ? (source.link ? 'LINK' : 'UPDATE') : 'EXCEPTION'"},
         "postAction": {"type": "text/javascript", "source": "if (action !== 'LINK') throw new Error('post ' + action + ' ' + reconId); true"}},
        {"situation": "ABSENT", "action": {"type": "text/javascript", "source": "'UPDATE'"}},
        {"situation": "MISSING", "action": {"type": "text/javascript", "source": "'BOGUS'"}}
    ]}]}))
    .unwrap();
    let m = &c.mappings[0];
    let linky = json!({"link": true});
    let d = m
        .decide(Situation::Found, &scope(Some(&linky), None))
        .unwrap();
    assert_eq!(d.action, Action::Link);
    d.run_post_action(m, &scope(Some(&linky), None)).unwrap();
    let other = json!({"link": false});
    let d = m
        .decide(Situation::Found, &scope(Some(&other), None))
        .unwrap();
    assert_eq!(d.action, Action::Update);
    let err = d
        .run_post_action(m, &scope(Some(&other), None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("post UPDATE r1"), "{err}");
    // A script may not return an action the situation does not allow, nor an unknown one.
    let err = m
        .decide(Situation::Absent, &scope(None, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not valid for situation ABSENT"), "{err}");
    let err = m
        .decide(Situation::Missing, &scope(None, None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid action \"BOGUS\""), "{err}");
}
