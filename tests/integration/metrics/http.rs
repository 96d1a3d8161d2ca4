//! Requests counted and timed by method, matched route and status, and the metrics every
//! process exports whatever its role: `idm_build_info` and the `process_*` family.

use super::{root, scrape, scrape_text};
use crate::helpers::TestApp;

const REQUESTS: &str = "idm_http_requests_total";

fn requests(s: &super::exposition::Scrape, method: &str, route: &str, status: &str) -> f64 {
    s.value(
        REQUESTS,
        &[("method", method), ("route", route), ("status", status)],
    )
}

#[tokio::test]
async fn requests_are_counted_by_route_template_never_by_raw_path() {
    let app = TestApp::spawn().await;
    let root = root(&app);
    let id = app.create_user("http.metrics").await["_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let user = "/openidm/managed/{object_type}/{id}";
    for _ in 0..2 {
        assert_eq!(
            app.get(&format!("/managed/user/{id}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        app.get("/managed/user/no-such-user")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let invented = format!("/invented/{}", uuid::Uuid::new_v4());
    // No route serves it (the API answers it as it answers any unknown path).
    let unrouted = app.get(&invented).send().await.unwrap().status();
    let unrouted = unrouted.as_u16().to_string();
    let brew = reqwest::Method::from_bytes(b"BREW").unwrap();
    let res = app
        .req(brew, &format!("/managed/user/{id}"))
        .send()
        .await
        .unwrap();
    let brewed = res.status().as_u16().to_string();

    let s = scrape(&root).await;
    assert_eq!(requests(&s, "GET", user, "200"), 2.0);
    assert_eq!(requests(&s, "GET", user, "404"), 1.0);
    assert_eq!(requests(&s, "GET", "unmatched", &unrouted), 1.0);
    assert_eq!(requests(&s, "other", user, &brewed), 1.0);
    assert_eq!(
        s.value(
            "idm_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", user), ("status", "200")]
        ),
        2.0
    );
    // No series names a user, a raw path or an invented method.
    let text = scrape_text(&root).await;
    for leak in [id.as_str(), "no-such-user", invented.as_str(), "BREW"] {
        assert!(!text.contains(leak), "{leak} in\n{text}");
    }
    // The scrape before this one was counted too.
    let again = scrape(&root).await;
    assert!(requests(&again, "GET", "/metrics", "200") >= 2.0);
}

#[tokio::test]
async fn build_info_and_process_metrics_are_exported() {
    let app = TestApp::spawn().await;
    let s = scrape(&root(&app)).await;
    super::roles::process_figures_are_sane(&s);
}
