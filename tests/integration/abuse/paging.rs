//! Bounded queries: a page of any size is streamed a chunk of rows at a time, paging cookies
//! are signed, and the relation endpoints (`repo/link`, `audit/recon`, `sync/failures`) page
//! and stream like managed queries.

use serde_json::Value;

use super::{ServeProcess, peak_rss_kib};
use crate::helpers::{TestApp, TestDb};

/// `count` users of about 1 kB each, written straight into the table (REST would take minutes).
async fn seed_users(db: &TestDb, count: i64) {
    sqlx::query(
        "INSERT INTO managed_objects (object_type, id, rev, body) \
         SELECT 'user', 'u' || lpad(g::text, 7, '0'), 1, jsonb_build_object( \
           'userName', 'user' || g, 'givenName', 'Given', 'sn', 'Family', \
           'mail', 'user' || g || '@example.com', 'description', repeat('d', 1000)) \
         FROM generate_series(1, $1) AS g",
    )
    .bind(count)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn json(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn a_huge_page_size_streams_with_bounded_memory() {
    let db = TestDb::new().await;
    // About 30 MB of users; the whole page in memory would take several times that.
    let users = 30_000;
    seed_users(&db, users).await;
    let server = ServeProcess::spawn(&db.url).await;
    // A first small query warms the server's pools and caches.
    json(
        server
            .get("/managed/user?_queryFilter=true&_pageSize=10")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let before = peak_rss_kib(server.pid());

    let page = json(
        server
            .get("/managed/user?_queryFilter=true&_pageSize=1000000000&_sortKeys=userName")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["resultCount"], users);
    assert_eq!(page["result"].as_array().unwrap().len(), users as usize);
    assert!(page["pagedResultsCookie"].is_null(), "nothing follows");
    let unpaged = json(
        server
            .get("/managed/user?_queryFilter=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unpaged["resultCount"], users);

    let grown_mib = peak_rss_kib(server.pid()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 40,
        "the server's peak RSS grew by {grown_mib} MiB answering 30 MB of users"
    );
}

#[tokio::test]
async fn pages_larger_than_a_chunk_end_with_a_cookie_that_resumes() {
    let app = TestApp::spawn().await;
    seed_users(&app.db, 2_600).await;
    let first = json(
        app.get(
            "/managed/user?_queryFilter=true&_pageSize=1500&_sortKeys=-userName&_fields=userName",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(first["resultCount"], 1500);
    let cookie = first["pagedResultsCookie"].as_str().unwrap().to_owned();
    let rest = json(
        app.get(&format!(
            "/managed/user?_queryFilter=true&_pageSize=1500&_sortKeys=-userName&_fields=userName&_pagedResultsCookie={cookie}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(rest["resultCount"], 1100);
    assert!(rest["pagedResultsCookie"].is_null());
    let mut names: Vec<String> = first["result"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["result"].as_array().unwrap())
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect();
    let in_order = names.clone();
    names.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(in_order, names, "descending userName across the two pages");
    names.dedup();
    assert_eq!(names.len(), 2_600, "no row twice, none missing");
}

#[tokio::test]
async fn forged_and_foreign_cookies_are_refused() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let app = TestApp::spawn().await;
    seed_users(&app.db, 5).await;
    let page = json(
        app.get("/managed/user?_queryFilter=true&_pageSize=2&_sortKeys=userName")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let cookie = page["pagedResultsCookie"].as_str().unwrap().to_owned();
    let (payload, tag) = cookie.split_once('.').expect("payload.tag");
    let decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    // The client changes the keyset values (here: a number where a string was).
    let mut forged = decoded.clone();
    forged["v"] = serde_json::json!([12345]);
    let forged = format!(
        "{}.{tag}",
        URL_SAFE_NO_PAD.encode(forged.to_string().as_bytes())
    );
    // The cookie format of earlier versions: the payload alone.
    let unsigned = payload.to_owned();
    for bad in [forged, unsigned, "x'--".to_owned()] {
        let res = app
            .get(&format!(
                "/managed/user?_queryFilter=true&_pageSize=2&_sortKeys=userName&_pagedResultsCookie={bad}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not a cookie this server issued"),
            "{body}"
        );
    }
    // The genuine cookie resumes; so would another replica's with the same secrets key.
    let next = json(
        app.get(&format!(
            "/managed/user?_queryFilter=true&_pageSize=2&_sortKeys=userName&_pagedResultsCookie={cookie}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(next["resultCount"], 2);
    let replica = ServeProcess::spawn(&app.db.url).await;
    let again = json(
        replica
            .get(&format!(
                "/managed/user?_queryFilter=true&_pageSize=2&_sortKeys=userName&_pagedResultsCookie={cookie}"
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        again["result"], next["result"],
        "another replica resumes the page"
    );
}

#[tokio::test]
async fn relation_queries_stream_everything_and_page_with_signed_cookies() {
    let app = TestApp::spawn().await;
    sqlx::query(
        "INSERT INTO links (id, link_type, first_id, second_id) \
         SELECT 'l' || lpad(g::text, 6, '0'), 'systemSalesforceUser_managedUser', \
                '005' || g, 'u' || g FROM generate_series(1, 2500) AS g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sync_failures (id, mapping, object_type, object_id, object_rev, situation, \
           action, message, attempts) \
         SELECT 'f' || lpad(g::text, 6, '0'), 'managedUser_systemSalesforceUser', 'user', \
                'u' || g, 1, 'FOUND', 'UPDATE', 'failed', 1 FROM generate_series(1, 1200) AS g",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    // Without _pageSize: every row, across several chunks.
    let links = json(
        app.get("/repo/link?_queryFilter=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(links["resultCount"], 2500);
    assert_eq!(links["result"].as_array().unwrap().len(), 2500);
    assert!(links["pagedResultsCookie"].is_null());
    let failures = json(
        app.get("/sync/failures?_queryFilter=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(failures["resultCount"], 1200);

    // Paged: a page larger than a chunk, then the rest with its cookie.
    let first = json(
        app.get("/repo/link?_queryFilter=true&_pageSize=1200")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(first["resultCount"], 1200);
    let cookie = first["pagedResultsCookie"].as_str().unwrap().to_owned();
    assert!(!cookie.contains("l001200"), "the cookie is not the bare id");
    let rest = json(
        app.get(&format!(
            "/repo/link?_queryFilter=true&_pageSize=5000&_pagedResultsCookie={cookie}"
        ))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(rest["resultCount"], 1300);
    assert_eq!(rest["result"][0]["_id"], "l001201");

    // A bare id (what earlier versions issued) or anything else is refused.
    let res = app
        .get("/repo/link?_queryFilter=true&_pageSize=10&_pagedResultsCookie=l001200")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let audit = json(
        app.get("/audit/recon?_queryFilter=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(audit["resultCount"], 0);
}
