//! correlationQuery → a filter for the caller to run; correlationScript → ids.

use idm_sync::filter;
use idm_sync::mapping::{CorrelationRequest, MappingError, SyncConfig, SyncContext};
use serde_json::json;

use super::{INBOUND, OUTBOUND, sample, shipped};

#[test]
fn shipped_mappings_correlate_on_the_username() {
    let c = shipped();
    let ctx = SyncContext::default();
    let inbound = c.mapping(INBOUND).unwrap();
    let req = inbound
        .correlate(&json!({"Username": "bob\"x@example.com"}), &ctx)
        .unwrap()
        .unwrap();
    let CorrelationRequest::Query(f) = req else {
        panic!("{req:?}")
    };
    assert_eq!(
        f,
        filter::parse(r#"userName eq "bob\"x@example.com""#).unwrap()
    );
    assert!(f.matches(&json!({"userName": "bob\"x@example.com"})));
    let outbound = c.mapping(OUTBOUND).unwrap();
    let CorrelationRequest::Query(f) = outbound
        .correlate(&json!({"userName": "amy@example.com"}), &ctx)
        .unwrap()
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(f.to_string(), r#"/Username eq "amy@example.com""#);
}

#[test]
fn the_sample_has_no_correlation() {
    let c = sample();
    assert!(
        c.mapping(INBOUND)
            .unwrap()
            .correlate(&json!({}), &SyncContext::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn correlation_script_returns_ids_and_bad_results_are_errors() {
    let c = SyncConfig::from_json(&json!({"mappings": [
        {"name": "a", "source": "s", "target": "t",
         "correlationScript": {"type": "text/javascript", "source": "source.ids.map(function (i) { return {_id: i}; })"}},
        {"name": "b", "source": "s", "target": "t",
         "correlationQuery": {"type": "text/javascript", "source": "({_queryId: 'for-userName', uid: source.u})"}},
        {"name": "c", "source": "s", "target": "t",
         "correlationQuery": {"type": "text/javascript", "source": "({_queryFilter: 'userName eq'})"}}
    ]}))
    .unwrap();
    let ctx = SyncContext::default();
    let req = c.mappings[0]
        .correlate(&json!({"ids": ["1", "2"]}), &ctx)
        .unwrap();
    assert_eq!(
        req,
        Some(CorrelationRequest::Ids(vec!["1".into(), "2".into()]))
    );
    let err = c.mappings[1]
        .correlate(&json!({"u": "x"}), &ctx)
        .unwrap_err();
    assert!(matches!(err, MappingError::BadResult { .. }), "{err}");
    let err = c.mappings[2].correlate(&json!({}), &ctx).unwrap_err();
    assert!(err.to_string().contains("Invalid filter"), "{err}");
}
