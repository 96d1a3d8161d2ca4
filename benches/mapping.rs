//! Cost of the mapping engine per object, with the shipped conf/sync.json: the inbound
//! mapping (validSource script, property mapping) and the outbound one (Alias transform,
//! defaults), as recon and the worker run them for every user.
//!
//! Run: `cargo bench --bench mapping`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use idm_sync::mapping::{SyncConfig, SyncContext};
use serde_json::json;

fn main() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let started = Instant::now();
    let sync = SyncConfig::load(&conf).unwrap();
    println!("load and compile conf/sync.json: {:?}", started.elapsed());
    let inbound = sync.mapping("systemSalesforceUser_managedUser").unwrap();
    let outbound = sync.mapping("managedUser_systemSalesforceUser").unwrap();
    let ctx = SyncContext::default();
    let sf_user = json!({"Id": "0055g00000AbCdEfAAA", "Username": "bjensen@example.com", "Email": "bjensen@example.com",
        "FirstName": "Barbara", "LastName": "Jensen", "ProfileId": "00e5g000000abcdAAA", "IsActive": true, "Alias": "bjensen"});
    let managed = json!({"userName": "bjensen@example.com", "mail": "bjensen@example.com", "givenName": "Christopher",
        "sn": "Jensen", "profileId": "00e5g000000abcdAAA", "accountStatus": "active"});
    let n = 20_000u32;

    let t = Instant::now();
    for _ in 0..n {
        assert!(inbound.source_qualifies(&sf_user, &ctx).unwrap());
        inbound.map_object(&sf_user, None, &ctx).unwrap();
    }
    println!(
        "inbound (validSource + properties): {:?} per user",
        t.elapsed() / n
    );

    let t = Instant::now();
    for _ in 0..n {
        outbound.map_object(&managed, None, &ctx).unwrap();
    }
    println!(
        "outbound (properties, Alias transform, defaults): {:?} per user",
        t.elapsed() / n
    );

    let mut edited = managed.clone();
    edited["sn"] = json!("Smith");
    let t = Instant::now();
    for _ in 0..n {
        let delta = outbound.delta(&managed, &edited, None, &ctx).unwrap();
        assert_eq!(delta.len(), 1);
    }
    println!(
        "outbound delta of an sn edit: {:?} per change",
        t.elapsed() / n
    );
}
