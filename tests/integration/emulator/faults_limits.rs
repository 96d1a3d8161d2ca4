//! Limits, the daily allowance, fault injection and the stats endpoint.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sf_emulator::{EmulatorConfig, FaultConfig, FaultUpdate};

use super::support::{error_of, org, org_with};

#[tokio::test]
async fn limits_and_usage_header() {
    let org = org(3).await;
    let r = org.get("limits").send().await.unwrap();
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/100000");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["DailyApiRequests"],
        json!({"Max":100000,"Remaining":99999})
    );
    let r = org.get("sobjects/User/describe").send().await.unwrap();
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=2/100000");
    // Errors carry it too.
    let r = org
        .get("sobjects/User/005000000000000AAA")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=3/100000");
}

#[tokio::test]
async fn request_limit_exceeded_past_the_allowance() {
    let org = org_with(EmulatorConfig {
        users: 3,
        daily_api_limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    let r = org.get("limits").send().await.unwrap();
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=2/2");
    let (status, code, message, _) = error_of(r).await;
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (
            403,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded."
        )
    );
    // Raising the allowance (admin endpoint) lets calls through again.
    let v = org.admin_faults(json!({"dailyLimit": 10})).await;
    assert_eq!(v["dailyLimit"], 10);
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    org.admin_faults(json!({"apiUsage": 0})).await;
    let r = org.get("limits").send().await.unwrap();
    assert_eq!(r.headers()["sforce-limit-info"], "api-usage=1/10");
}

#[tokio::test]
async fn injected_503_and_lock_row_and_latency() {
    let org = org(5).await;
    org.admin_faults(json!({"rate503": 1.0})).await;
    let r = org.get("limits").send().await.unwrap();
    let (status, code, _, _) = error_of(r).await;
    assert_eq!((status, code.as_str()), (503, "SERVER_UNAVAILABLE"));
    org.admin_faults(json!({"rate503": 0.0, "rateLockRow": 1.0}))
        .await;
    let q: Value = org
        .get("query?q=SELECT+Id+FROM+User+LIMIT+1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = q["records"][0]["Id"].as_str().unwrap().to_owned();
    let r = org
        .patch(&format!("sobjects/User/{id}"), &json!({"Title":"x"}))
        .send()
        .await
        .unwrap();
    let (status, code, message, fields) = error_of(r).await;
    assert_eq!((status, code.as_str()), (400, "UNABLE_TO_LOCK_ROW"));
    assert!(message.contains(&id));
    assert_eq!(fields, json!([]));
    let body = json!({"records":[{"attributes":{"type":"User"},"id":id,"Title":"y"}]});
    let results: Vec<Value> = org
        .patch("composite/sobjects", &body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(results[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");

    // Latency through the handle.
    let h = org.handle();
    h.update_faults(&FaultUpdate {
        rate_lock_row: Some(0.0),
        latency_ms: Some(150),
        ..Default::default()
    });
    assert_eq!(
        h.faults(),
        FaultConfig {
            rate_503: 0.0,
            rate_lock_row: 0.0,
            latency_ms: 150,
            refuse_member_ranges: false
        }
    );
    let t = Instant::now();
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(150));
    let v: Value = org
        .http
        .get(format!("{}/__emulator/faults", org.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["latencyMs"], 150);
    let r = org
        .http
        .post(format!("{}/__emulator/faults", org.base))
        .json(&json!({"bogus": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn forced_token_expiry() {
    let org = org(3).await;
    assert_eq!(org.get("limits").send().await.unwrap().status(), 200);
    org.admin_faults(json!({"expireTokens": true})).await;
    let (status, code, _, _) = error_of(org.get("limits").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (401, "INVALID_SESSION_ID"));
}

#[tokio::test]
async fn stats_count_calls_by_template() {
    let org = org(5).await;
    let h = org.handle();
    let stats = h.stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.calls_of("POST /services/oauth2/token"), 1);
    org.get("query?q=SELECT+Id+FROM+User").send().await.unwrap();
    org.get("sobjects/User/005000000000000AAA")
        .send()
        .await
        .unwrap();
    org.http
        .get(format!("{}/services/data/v62.0/limits", org.base))
        .send()
        .await
        .unwrap(); // 401, still a call
    let s: Value = org
        .http
        .get(format!("{}/__emulator/stats", org.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["calls"]["GET /services/data/vXX.X/query"], 1);
    assert_eq!(
        s["calls"]["GET /services/data/vXX.X/sobjects/{sobject}/{id}"],
        1
    );
    assert_eq!(s["calls"]["GET /services/data/vXX.X/limits"], 1);
    assert_eq!(s["tokenCalls"], 1);
    assert_eq!(
        s["apiUsage"], 2,
        "the unauthenticated call is not counted against the allowance"
    );
    let r = org
        .http
        .post(format!("{}/__emulator/reset-stats", org.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let s = h.stats();
    assert!(s.calls.is_empty());
    assert_eq!(s.token_calls, 0);
    assert_eq!(s.api_usage, 2);
}
