//! Property mapping (transform, condition, default) and the outbound delta.

use idm_sync::mapping::{SyncConfig, SyncContext};
use serde_json::{Value, json};

use super::{INBOUND, OUTBOUND, shipped};

fn managed_user() -> Value {
    json!({"_id": "u1", "_rev": "3", "userName": "bjensen@example.com", "givenName": "Barbara", "sn": "Jensen",
        "mail": "bjensen@example.com", "profileId": "00e5g000000abcd", "accountStatus": "active"})
}

#[test]
fn outbound_maps_a_managed_user_to_a_salesforce_user() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let mapped = m
        .map_object(&managed_user(), None, &SyncContext::default())
        .unwrap();
    assert_eq!(
        Value::Object(mapped.object.clone()),
        json!({
            "Username": "bjensen@example.com", "LastName": "Jensen", "Email": "bjensen@example.com",
            "Alias": "Barbara", "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US",
            "FirstName": "Barbara", "TimeZoneSidKey": "America/Los_Angeles", "CommunityNickname": "bjensen@example.com",
            "ProfileId": "00e5g000000abcd", "IsActive": true,
            // Grants the user has none of: the worker leaves them alone.
            "PermissionSets": null, "PermissionSetGroups": null, "PublicGroups": null, "UserRole": null
        })
    );
    let defaulted: Vec<_> = mapped.defaulted.iter().map(String::as_str).collect();
    assert_eq!(
        defaulted,
        [
            "EmailEncodingKey",
            "LanguageLocaleKey",
            "LocaleSidKey",
            "TimeZoneSidKey"
        ]
    );
    let mut inactive = managed_user();
    inactive["accountStatus"] = json!("inactive");
    inactive["givenName"] = json!("Christopher");
    let mapped = m
        .map_object(&inactive, None, &SyncContext::default())
        .unwrap();
    assert_eq!(mapped.object["IsActive"], json!(false));
    assert_eq!(mapped.object["Alias"], json!("Christop"));
}

#[test]
fn inbound_maps_a_salesforce_user_to_a_managed_user() {
    let c = shipped();
    let m = c.mapping(INBOUND).unwrap();
    // Grants as recon completes the record (sorted names; the role's developer name).
    let sf = json!({"Id": "0055g000001", "Username": "bob@example.com", "Email": "bob@example.com",
        "FirstName": "Bob", "LastName": "Smith", "ProfileId": "00e1", "IsActive": false, "Alias": "bob",
        "PermissionSets": ["Report_Builder", "Sales_Operations"], "PermissionSetGroups": [],
        "PublicGroups": ["Sales_Team"], "UserRole": "CEO"});
    let mapped = m.map_object(&sf, None, &SyncContext::default()).unwrap();
    assert_eq!(
        Value::Object(mapped.object),
        json!({"mail": "bob@example.com", "sn": "Smith", "givenName": "Bob",
        "userName": "bob@example.com", "profileId": "00e1", "accountStatus": "inactive",
        "permissionSets": ["Report_Builder", "Sales_Operations"], "permissionSetGroups": [],
        "publicGroups": ["Sales_Team"], "userRole": "CEO"})
    );
}

#[test]
fn missing_source_value_maps_to_null_as_in_idm() {
    let c = shipped();
    let m = c.mapping(INBOUND).unwrap();
    let mapped = m
        .map_object(
            &json!({"Username": "x", "Email": "x@example.com", "IsActive": true}),
            None,
            &SyncContext::default(),
        )
        .unwrap();
    assert_eq!(mapped.object["givenName"], Value::Null);
    assert_eq!(mapped.object["accountStatus"], json!("active"));
}

#[test]
fn conditions_defaults_whole_object_and_nested_targets() {
    let c = SyncConfig::from_json(&json!({"mappings": [{"name": "a", "source": "s", "target": "t", "properties": [
        {"target": "/name/first", "source": "/names/0"},
        {"target": "dept", "source": "department", "condition": "/object/department pr", "default": "none"},
        {"target": "status", "source": "status", "default": "active"},
        {"target": "copy", "source": "", "transform": {"type": "text/javascript", "source": "source.names.length"}},
        {"target": "vip", "source": "vip",
         "condition": {"type": "text/javascript", "source": "object.level > 2 && linkQualifier === 'default'"}}
    ]}]}))
    .unwrap();
    let m = &c.mappings[0];
    let ctx = SyncContext::default();
    let out = m
        .map_object(
            &json!({"names": ["Ann", "Lee"], "level": 1, "vip": true}),
            None,
            &ctx,
        )
        .unwrap();
    assert_eq!(
        Value::Object(out.object),
        json!({"name": {"first": "Ann"}, "status": "active", "copy": 2})
    );
    assert!(out.defaulted.contains("status"));
    let out = m
        .map_object(
            &json!({"names": [], "department": "R&D", "status": "x", "level": 3, "vip": true}),
            None,
            &ctx,
        )
        .unwrap();
    assert_eq!(
        Value::Object(out.object),
        json!({"name": {"first": null}, "dept": "R&D", "status": "x", "copy": 0, "vip": true})
    );
    assert!(out.defaulted.is_empty());
}

#[test]
fn delta_of_an_sn_edit_is_last_name_alone() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let old = managed_user();
    let mut new = old.clone();
    new["sn"] = json!("Jensen-Smith");
    new["_rev"] = json!("4");
    let delta = m.delta(&old, &new, None, &SyncContext::default()).unwrap();
    assert_eq!(Value::Object(delta), json!({"LastName": "Jensen-Smith"}));
}

#[test]
fn identical_snapshots_give_no_delta() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let delta = m
        .delta(
            &managed_user(),
            &managed_user(),
            None,
            &SyncContext::default(),
        )
        .unwrap();
    assert!(delta.is_empty(), "{delta:?}");
    // Properties not mapped (here `telephoneNumber`) change nothing either.
    let mut new = managed_user();
    new["telephoneNumber"] = json!("555");
    assert!(
        m.delta(&managed_user(), &new, None, &SyncContext::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn transformed_and_multi_target_properties_follow_their_source() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let mut new = managed_user();
    new["givenName"] = json!("Barbara-Ann");
    new["userName"] = json!("bj@example.com");
    new["accountStatus"] = json!("inactive");
    let delta = m
        .delta(&managed_user(), &new, None, &SyncContext::default())
        .unwrap();
    assert_eq!(
        Value::Object(delta),
        json!({"Username": "bj@example.com", "Alias": "Barbara-",
        "FirstName": "Barbara-Ann", "CommunityNickname": "bj@example.com", "IsActive": false})
    );
}

#[test]
fn defaults_never_overwrite_on_update_but_fill_empty_targets() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let ctx = SyncContext::default();
    // A snapshot from before the defaults existed: still no default in the delta.
    let delta = m.delta(&json!({}), &managed_user(), None, &ctx).unwrap();
    for key in [
        "LocaleSidKey",
        "EmailEncodingKey",
        "LanguageLocaleKey",
        "TimeZoneSidKey",
    ] {
        assert!(!delta.contains_key(key), "{key}");
    }
    assert_eq!(delta["LastName"], json!("Jensen"));
    // The Salesforce user has its own TimeZoneSidKey: kept. LocaleSidKey is empty: filled.
    let target = json!({"TimeZoneSidKey": "Europe/Paris", "LocaleSidKey": null, "EmailEncodingKey": "ISO-8859-1",
        "LanguageLocaleKey": "fr"});
    let delta = m
        .delta(&managed_user(), &managed_user(), Some(&target), &ctx)
        .unwrap();
    assert_eq!(Value::Object(delta), json!({"LocaleSidKey": "en_US"}));
}

#[test]
fn delta_sends_a_property_whose_old_value_cannot_be_computed() {
    let c = shipped();
    let m = c.mapping(OUTBOUND).unwrap();
    let mut old = managed_user();
    old.as_object_mut().unwrap().remove("givenName"); // the Alias transform throws on the old side
    let delta = m
        .delta(&old, &managed_user(), None, &SyncContext::default())
        .unwrap();
    assert_eq!(
        Value::Object(delta),
        json!({"Alias": "Barbara", "FirstName": "Barbara"})
    );
}

/// Names from every corner of Unicode: emoji (with ZWJ sequences), combining marks, CJK,
/// right-to-left scripts and marks, Latin with accents; never NUL (refused at the API).
fn unicode_name() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let ranges = prop_oneof![
        proptest::char::range('a', 'z'),
        proptest::char::range('À', 'ÿ'),
        proptest::char::range('\u{300}', '\u{36f}'),
        proptest::char::range('\u{4e00}', '\u{9fff}'),
        proptest::char::range('\u{590}', '\u{6ff}'),
        proptest::char::range('\u{1f300}', '\u{1f64f}'),
        Just('\u{200d}'),
        Just('\u{200f}'),
        Just('\u{fe0f}'),
        Just(' '),
    ];
    proptest::collection::vec(ranges, 0..30).prop_map(|chars| chars.into_iter().collect())
}

/// UTF-16 units, the strictest count Salesforce's length limits could use.
fn utf16_len(v: &Value) -> usize {
    v.as_str().map_or(0, |s| s.encode_utf16().count())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

    /// Any given name, family name and user name maps outbound to a payload with valid text
    /// and an Alias of at most 8 characters (8 UTF-16 units, so also 8 code points), and
    /// inbound back without error: never a crash, never a script failure.
    #[test]
    fn unicode_names_map_both_ways(
        given in unicode_name(),
        family in unicode_name(),
        user in unicode_name(),
    ) {
        let c = shipped();
        let mut managed = managed_user();
        managed["givenName"] = json!(given);
        managed["sn"] = json!(family);
        managed["userName"] = json!(user);
        let out = c.mapping(OUTBOUND).unwrap()
            .map_object(&managed, None, &SyncContext::default())
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        let alias = &out.object["Alias"];
        proptest::prop_assert!(utf16_len(alias) <= 8, "Alias {alias}");
        proptest::prop_assert!(given.starts_with(alias.as_str().unwrap()), "Alias {alias} of {given:?}");
        proptest::prop_assert_eq!(&out.object["FirstName"], &json!(given));
        proptest::prop_assert_eq!(&out.object["LastName"], &json!(family));
        proptest::prop_assert_eq!(&out.object["Username"], &json!(user));

        let mut sf = Value::Object(out.object.clone());
        sf["Email"] = json!(format!("{user}@example.com"));
        let back = c.mapping(INBOUND).unwrap()
            .map_object(&sf, None, &SyncContext::default())
            .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
        proptest::prop_assert_eq!(&back.object["givenName"], &json!(given));
        proptest::prop_assert_eq!(&back.object["sn"], &json!(family));
        proptest::prop_assert_eq!(&back.object["userName"], &json!(user));
    }
}
