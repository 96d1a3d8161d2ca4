//! Queries over REST: the envelope, filters, sorting, paging with cookies, totals.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::TestApp;

async fn seed(app: &TestApp, n: usize) {
    for i in 0..n {
        let res = app
            .put(&format!("/managed/user/id-{i:03}"))
            .json(&json!({
                "userName": format!("user{i:03}"),
                "givenName": format!("Given{}", i % 5),
                "sn": format!("Sn{}", (n - i) % 7),
                "mail": format!("user{i:03}@example.com"),
                "age": i,
                "accountStatus": if i % 3 == 0 { "inactive" } else { "active" },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
}

async fn query(app: &TestApp, params: &str) -> Value {
    let res = app
        .get(&format!("/managed/user?{params}"))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{params}: {body}");
    body
}

fn ids(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["_id"].as_str().unwrap().to_owned())
        .collect()
}

fn enc(filter: &str) -> String {
    let mut out = String::new();
    for b in filter.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[tokio::test]
async fn envelope_is_exactly_idms() {
    let app = TestApp::spawn().await;
    seed(&app, 3).await;
    let body = query(&app, "_queryFilter=true&_fields=_id").await;
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "result",
            "resultCount",
            "pagedResultsCookie",
            "totalPagedResultsPolicy",
            "totalPagedResults",
            "remainingPagedResults"
        ]
    );
    assert_eq!(body["resultCount"], 3);
    assert_eq!(body["pagedResultsCookie"], Value::Null);
    assert_eq!(body["totalPagedResultsPolicy"], "NONE");
    assert_eq!(body["totalPagedResults"], -1);
    assert_eq!(body["remainingPagedResults"], -1);
    for item in body["result"].as_array().unwrap() {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["_id", "_rev"]);
    }
    let all = query(&app, "_queryId=query-all-ids").await;
    assert_eq!(all["result"], body["result"]);
}

#[tokio::test]
async fn filters_select_the_right_objects() {
    let app = TestApp::spawn().await;
    seed(&app, 20).await;
    let cases: Vec<(&str, Vec<usize>)> = vec![
        ("userName eq \"user007\"", vec![7]),
        ("/userName eq \"user007\"", vec![7]),
        ("mail eq \"user013@example.com\"", vec![13]),
        ("userName sw \"user01\"", (10..20).collect()),
        ("mail co \"r00\"", (0..10).collect()),
        ("age gt 17", vec![18, 19]),
        ("age ge 17 and age lt 19", vec![17, 18]),
        ("age le 1 or age eq 19", vec![0, 1, 19]),
        (
            "!(accountStatus eq \"active\")",
            vec![0, 3, 6, 9, 12, 15, 18],
        ),
        ("not (age gt 2)", vec![0, 1, 2]),
        ("description pr", vec![]),
        (
            "age pr and (userName eq \"user001\" or userName eq \"user002\")",
            vec![1, 2],
        ),
        ("false", vec![]),
        ("_id eq \"id-004\"", vec![4]),
        ("userName eq \"x\\\" or true\"", vec![]),
        ("userName eq \"'; drop table managed_objects; --\"", vec![]),
    ];
    for (filter, expected) in cases {
        let body = query(
            &app,
            &format!("_queryFilter={}&_fields=_id&_sortKeys=_id", enc(filter)),
        )
        .await;
        let expected: Vec<String> = expected.iter().map(|i| format!("id-{i:03}")).collect();
        assert_eq!(ids(&body), expected, "filter {filter}");
    }
    // The table survived the malicious literals.
    assert_eq!(query(&app, "_queryFilter=true").await["resultCount"], 20);
}

#[tokio::test]
async fn hostile_filters_are_rejected_cleanly() {
    let app = TestApp::spawn().await;
    let deep = format!("{}true{}", "(".repeat(5000), ")".repeat(5000));
    for filter in [
        deep.as_str(),
        "userName eq",
        "userName xx \"a\"",
        "(true",
        "true)",
        "\"unterminated",
    ] {
        let res = app
            .get(&format!("/managed/user?_queryFilter={}", enc(filter)))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{}", &filter[..filter.len().min(40)]);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["reason"], "Bad Request");
    }
    // A huge literal (as long as a URL may be) is bound as a parameter and simply matches nothing.
    let huge = format!("userName eq \"{}\"", "a".repeat(60_000));
    let res = app
        .get(&format!("/managed/user?_queryFilter={}", enc(&huge)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["resultCount"], 0);
}

#[tokio::test]
async fn sorting_fields_and_totals() {
    let app = TestApp::spawn().await;
    seed(&app, 10).await;
    let body = query(&app, "_queryFilter=true&_sortKeys=-age&_fields=age").await;
    let ages: Vec<i64> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["age"].as_i64().unwrap())
        .collect();
    assert_eq!(ages, (0..10).rev().collect::<Vec<_>>());
    assert!(body["result"][0].get("userName").is_none());

    let body = query(
        &app,
        "_queryFilter=true&_sortKeys=givenName,-userName&_fields=givenName,userName",
    )
    .await;
    let pairs: Vec<(String, String)> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["givenName"].as_str().unwrap().to_owned(),
                o["userName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected = pairs.clone();
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    assert_eq!(pairs, expected);

    let body = query(
        &app,
        "_queryFilter=accountStatus%20eq%20%22active%22&_pageSize=2&_totalPagedResultsPolicy=EXACT",
    )
    .await;
    assert_eq!(body["totalPagedResults"], 6);
    assert_eq!(body["remainingPagedResults"], 4);
    assert_eq!(body["totalPagedResultsPolicy"], "EXACT");
    let body = query(
        &app,
        "_queryFilter=true&_pageSize=2&_totalPagedResultsPolicy=ESTIMATE",
    )
    .await;
    assert!(body["totalPagedResults"].as_i64().unwrap() >= 1);

    let body = query(
        &app,
        "_queryFilter=true&_sortKeys=age&_pageSize=3&_pagedResultsOffset=4&_fields=age",
    )
    .await;
    let ages: Vec<i64> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["age"].as_i64().unwrap())
        .collect();
    assert_eq!(ages, [4, 5, 6]);
}

#[tokio::test]
async fn paging_with_cookies_survives_inserts_between_pages() {
    let app = TestApp::spawn().await;
    seed(&app, 25).await;
    let mut seen = Vec::new();
    let mut cookie: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params =
            "_queryFilter=true&_pageSize=4&_sortKeys=-sn,userName&_fields=_id".to_owned();
        if let Some(c) = &cookie {
            params.push_str(&format!("&_pagedResultsCookie={c}"));
        }
        let body = query(&app, &params).await;
        seen.extend(ids(&body));
        pages += 1;
        // Someone inserts users between our pages.
        let res = app
            .post("/managed/user?_action=create")
            .json(&json!({"userName": format!("late{pages}"), "givenName": "L", "sn": "Sn3", "mail": format!("late{pages}@example.com")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        match body["pagedResultsCookie"].as_str() {
            Some(c) => cookie = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 50, "paging does not end");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice");
    for i in 0..25 {
        assert!(
            seen.contains(&format!("id-{i:03}")),
            "id-{i:03} was skipped"
        );
    }

    // A cookie is tied to its sort keys.
    let first = query(&app, "_queryFilter=true&_pageSize=2&_sortKeys=userName").await;
    let c = first["pagedResultsCookie"].as_str().unwrap();
    let res = app
        .get(&format!(
            "/managed/user?_queryFilter=true&_pageSize=2&_sortKeys=sn&_pagedResultsCookie={c}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .get("/managed/user?_queryFilter=true&_pageSize=2&_pagedResultsCookie=garbage!!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn unpaged_queries_stream_every_match_in_order() {
    let app = TestApp::spawn().await;
    // More rows than one streamed chunk (1,000), inserted directly to keep the test fast.
    sqlx::query(
        "INSERT INTO managed_objects (object_type, id, rev, body)
         SELECT 'user', 'bulk-' || lpad(g::text, 5, '0'), nextval('managed_object_rev_seq'),
                jsonb_build_object('userName', 'bulk' || g, 'sn', 'S' || (g % 10))
         FROM generate_series(1, 2500) g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let body = query(
        &app,
        "_queryFilter=true&_fields=sn&_totalPagedResultsPolicy=EXACT",
    )
    .await;
    assert_eq!(body["resultCount"], 2500);
    assert_eq!(body["totalPagedResults"], 2500);
    assert_eq!(body["remainingPagedResults"], 0);
    assert_eq!(body["pagedResultsCookie"], Value::Null);
    let got = ids(&body);
    let expected: Vec<String> = (1..=2500).map(|g| format!("bulk-{g:05}")).collect();
    assert_eq!(got, expected);
    assert!(body.get("error").is_none());

    // Sorted, filtered, and with an offset, across chunk boundaries.
    let body = query(&app, "_queryFilter=sn%20eq%20%22S3%22&_sortKeys=-userName&_pagedResultsOffset=5&_fields=userName").await;
    assert_eq!(body["resultCount"], 245);
    let names: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["userName"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(names, sorted);
}
