//! `/openidm/system/salesforce…` against the in-process emulator, through a running `serve`; and
//! the `salesforce authorize` flow's callback and code exchange.

use std::collections::HashSet;
use std::time::Duration;

use idm_sync::authorize_cli::{AuthorizeError, AuthorizeFlow};
use idm_sync::salesforce::{ClientConfig, SalesforceClient, Secret, TokenStore};
use serde_json::{Value, json};
use sf_emulator::{Emulator, EmulatorConfig, EmulatorHandle, FaultUpdate, RunningEmulator};

use crate::helpers::{TempConf, TestApp, TestDb};
use crate::salesforce::support as sf;

const QUERY: &str = "GET /services/data/vXX.X/query";

async fn start_org(users: usize) -> RunningEmulator {
    Emulator::build(
        EmulatorConfig {
            users,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .start()
}

/// The shipped provisioner file, pointed at `org` with literal credentials (no environment).
fn provisioner(org: &RunningEmulator, change: impl FnOnce(&mut Value)) -> Value {
    let defaults = EmulatorConfig::default();
    let mut p = TempConf::shipped("provisioner.openicf-salesforce.json");
    let props = &mut p["configurationProperties"];
    props["clientId"] = json!(defaults.consumer_key);
    props["clientSecret"] = json!(defaults.consumer_secret);
    props["refreshToken"] = json!(defaults.refresh_token);
    props["loginUrl"] = json!(format!("{}/services/oauth2/token", org.base_url()));
    props["retryMaxAttempts"] = json!(3);
    props["retryMaxTotalDelay"] = json!(1000);
    p["enabled"] = json!(true);
    change(&mut p);
    p
}

async fn app_with(org: &RunningEmulator, change: impl FnOnce(&mut Value)) -> (TestApp, TempConf) {
    let conf = TempConf::with_files(&[(
        "provisioner.openicf-salesforce.json",
        &provisioner(org, change),
    )]);
    let app = TestApp::spawn_with_conf(conf.dir.clone()).await;
    (app, conf)
}

fn user_body(handle: &EmulatorHandle, username: &str, last_name: &str) -> Value {
    json!({
        "Username": username,
        "LastName": last_name,
        "FirstName": "Tess",
        "Email": "tess@example.com",
        "Alias": "tess",
        "ProfileId": handle.profile_id("Standard User").unwrap(),
        "TimeZoneSidKey": "America/Los_Angeles",
        "LocaleSidKey": "en_US",
        "EmailEncodingKey": "UTF-8",
        "LanguageLocaleKey": "en_US",
    })
}

fn unique(prefix: &str) -> String {
    format!("{prefix}.{}@idm-sync.test", uuid::Uuid::new_v4().simple())
}

async fn create(app: &TestApp, body: &Value) -> Value {
    let res = app
        .post("/system/salesforce/User?_action=create")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// `_id`s of a query's results, in order.
async fn query_ids(app: &TestApp, filter: &str) -> Vec<String> {
    let res = app
        .get("/system/salesforce/User")
        .query(&[("_queryFilter", filter), ("_fields", "_id")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{filter}: {:?}", res.text().await);
    let body: Value = res.json().await.unwrap();
    body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["_id"].as_str().unwrap().to_owned())
        .collect()
}

fn set(ids: &[&str]) -> HashSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn test_action_answers_idm_shape() {
    let org = start_org(5).await;
    let (app, _conf) = app_with(&org, |_| {}).await;
    let expected = r##"{"name":"salesforce","enabled":true,"config":"config/provisioner.openicf/salesforce","connectorRef":{"connectorHostRef":"#LOCAL","bundleVersion":"[1.5.0.0,1.6.0.0)","bundleName":"org.forgerock.openicf.connectors.salesforce-connector","connectorName":"org.forgerock.openicf.connectors.salesforce.SalesforceConnector"},"displayName":"Salesforce Connector","objectTypes":["User"],"ok":true}"##;

    let res = app
        .post("/system/salesforce?_action=test")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), expected);

    let res = app.post("/system?_action=test").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), format!("[{expected}]"));

    // Authenticated like every other route.
    let anonymous = app
        .client
        .post(app.url("/system/salesforce?_action=test"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn wrong_client_secret_is_reported_as_bad_credentials_without_a_token_storm() {
    let org = start_org(5).await;
    let (app, _conf) = app_with(&org, |p| {
        p["configurationProperties"]["clientSecret"] = json!("not-the-secret");
    })
    .await;
    for _ in 0..3 {
        let body: Value = app
            .post("/system/salesforce?_action=test")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["ok"], false);
        assert_eq!(body["enabled"], true);
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with("Bad credentials"), "{error}");
        assert!(error.contains("invalid_client"), "{error}");
        assert!(!body.to_string().contains("not-the-secret"));
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.last(), Some(&"ok"));
    }
    // Data calls say the same, as a 503.
    let res = app
        .get("/system/salesforce/User?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("client credentials")
    );
    let stats = org.handle().stats();
    assert_eq!(
        stats.token_calls, 1,
        "one refused token call, then the failure is remembered"
    );
    assert_eq!(stats.data_calls(), 0);
}

#[tokio::test]
async fn a_disabled_connector_reports_so_and_calls_nothing() {
    let org = start_org(5).await;
    let (app, _conf) = app_with(&org, |p| p["enabled"] = json!(false)).await;
    let body: Value = app
        .post("/system/salesforce?_action=test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["enabled"], false);
    assert_eq!(body["ok"], false);
    assert!(
        body["error"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    let res = app
        .get("/system/salesforce/User?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let stats = org.handle().stats();
    assert_eq!((stats.token_calls, stats.data_calls()), (0, 0));
}

#[tokio::test]
async fn unknown_systems_types_and_actions() {
    let org = start_org(5).await;
    let (app, _conf) = app_with(&org, |_| {}).await;
    for path in [
        "/system/ldap?_action=test",
        "/system/ldap/User?_action=create",
    ] {
        let res = app.post(path).json(&json!({})).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    // An object type neither configured nor in the access catalog.
    let res = app
        .get("/system/salesforce/Contact?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app.get("/system?_action=frobnicate").send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 400);
    assert_eq!(body["reason"], "Bad Request");
    let res = app
        .post("/system/salesforce?_action=frobnicate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.text().await.unwrap().contains("frobnicate"),
        "the message names the action"
    );
}

#[tokio::test]
async fn filters_select_the_right_users() {
    let org = start_org(10).await;
    let handle = org.handle();
    let (app, _conf) = app_with(&org, |_| {}).await;
    let percent = create(&app, &user_body(&handle, &unique("p1"), "Percent%Tail")).await;
    let plain = create(&app, &user_body(&handle, &unique("p2"), "PercentXTail")).await;
    let quote_name = unique("o'hara");
    let quote = create(&app, &user_body(&handle, &quote_name, "O'Hara")).await;
    let mut no_first = user_body(&handle, &unique("nf"), "Percentless");
    no_first.as_object_mut().unwrap().remove("FirstName");
    let no_first = create(&app, &no_first).await;
    let id = |v: &Value| v["_id"].as_str().unwrap().to_owned();

    // eq, with a quote in the value.
    assert_eq!(
        query_ids(&app, &format!(r#"Username eq "{quote_name}""#)).await,
        vec![id(&quote)]
    );
    assert_eq!(
        query_ids(&app, r#"LastName eq "O'Hara""#).await,
        vec![id(&quote)]
    );
    // sw with a % in it: the % is a character, not a wildcard.
    assert_eq!(
        query_ids(&app, r#"LastName sw "Percent%""#).await,
        vec![id(&percent)]
    );
    let got: HashSet<String> = query_ids(&app, r#"LastName sw "Percent""#)
        .await
        .into_iter()
        .collect();
    assert_eq!(got, set(&[&id(&percent), &id(&plain), &id(&no_first)]));
    // and / or / pr / not.
    let got: HashSet<String> = query_ids(
        &app,
        r#"(LastName eq "PercentXTail" or LastName eq "O'Hara") and IsActive eq true"#,
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(got, set(&[&id(&plain), &id(&quote)]));
    let got: HashSet<String> = query_ids(&app, r#"LastName sw "Percent" and !(FirstName pr)"#)
        .await
        .into_iter()
        .collect();
    assert_eq!(got, set(&[&id(&no_first)]));
    assert_eq!(
        query_ids(&app, &format!(r#"_id eq "{}""#, id(&plain))).await,
        vec![id(&plain)]
    );

    // Results carry _id, _rev (LastModifiedDate) and the configured attributes.
    let res = app
        .get("/system/salesforce/User")
        .query(&[
            ("_queryFilter", r#"LastName eq "O'Hara""#),
            ("_fields", "Username,LastName"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let item = &body["result"][0];
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["_id", "_rev", "Username", "LastName"]);
    assert_eq!(
        item["_rev"],
        handle.user(&id(&quote)).unwrap()["LastModifiedDate"]
    );
    assert_eq!(body["resultCount"], 1);
    assert_eq!(body["pagedResultsCookie"], Value::Null);
}

#[tokio::test]
async fn unknown_filter_fields_are_a_400_that_costs_no_api_call() {
    let org = start_org(5).await;
    let (app, _conf) = app_with(&org, |_| {}).await;
    for (filter, field) in [
        (r#"Password eq "x""#, "Password"),
        (r#"lastname eq "x""#, "lastname"),
        ("/Address/city pr", "/Address/city"),
    ] {
        let res = app
            .get("/system/salesforce/User")
            .query(&[("_queryFilter", filter)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{filter}");
        let body: Value = res.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    let res = app
        .get("/system/salesforce/User")
        .query(&[("_queryFilter", "true"), ("_fields", "Secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let stats = org.handle().stats();
    assert_eq!((stats.token_calls, stats.data_calls()), (0, 0));
}

#[tokio::test]
async fn paging_walks_every_user_once_a_call_per_page() {
    let org = start_org(450).await;
    let handle = org.handle();
    let (app, _conf) = app_with(&org, |_| {}).await;
    let mut cookie: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let mut q = vec![
            ("_queryFilter", "true".to_owned()),
            ("_pageSize", "200".to_owned()),
            ("_fields", "Username".to_owned()),
        ];
        if let Some(c) = &cookie {
            q.push(("_pagedResultsCookie", c.clone()));
        }
        let res = app
            .get("/system/salesforce/User")
            .query(&q)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        pages += 1;
        let result = body["result"].as_array().unwrap();
        assert!(result.len() <= 200);
        assert_eq!(body["resultCount"], result.len());
        seen.extend(result.iter().map(|o| o["_id"].as_str().unwrap().to_owned()));
        match body["pagedResultsCookie"].as_str() {
            Some(c) => cookie = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), handle.user_count());
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no user twice");
    assert_eq!(
        handle.stats().calls_of(QUERY),
        3,
        "one query call per page (LIMIT pageSize+1 answers in one piece)"
    );

    // Unpaged: every user, streamed page by page with the exact total.
    let body: Value = app
        .get("/system/salesforce/User?_queryFilter=true&_fields=_id")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["resultCount"], handle.user_count());
    assert_eq!(body["totalPagedResults"], handle.user_count());

    let res = app
        .get("/system/salesforce/User?_queryFilter=true&_pageSize=5&_pagedResultsCookie=x'--")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn read_create_update_deactivate_round_trip() {
    let org = start_org(5).await;
    let handle = org.handle();
    let (app, _conf) = app_with(&org, |_| {}).await;
    let username = unique("crud");
    let res = app
        .post("/system/salesforce/User?_action=create")
        .json(&user_body(&handle, &username, "Created"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = res.json().await.unwrap();
    let id = created["_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/openidm/system/salesforce/User/{id}"));
    assert_eq!(created["Username"], username.as_str());
    assert_eq!(created["IsActive"], true);
    assert_eq!(handle.user(&id).unwrap()["Username"], username.as_str());

    let read: Value = app
        .get(&format!("/system/salesforce/User/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["_id"], id.as_str());
    assert_eq!(read["LastName"], "Created");
    assert_eq!(read["_rev"], handle.user(&id).unwrap()["LastModifiedDate"]);

    let res = app
        .put(&format!("/system/salesforce/User/{id}"))
        .json(&json!({"_id": id, "LastName": "Renamed", "Title": "Boss"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["LastName"], "Renamed");
    let emulated = handle.user(&id).unwrap();
    assert_eq!(emulated["LastName"], "Renamed");
    assert_eq!(emulated["Title"], "Boss");
    assert_eq!(emulated["Username"], username.as_str(), "untouched");

    let res = app
        .delete(&format!("/system/salesforce/User/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deactivated: Value = res.json().await.unwrap();
    assert_eq!(deactivated["IsActive"], false);
    assert_eq!(deactivated["_id"], id.as_str());
    assert_eq!(handle.user(&id).unwrap()["IsActive"], false);
    assert!(handle.user(&id).is_some(), "deactivated, not deleted");

    // Absent objects are IDM 404s: a well-formed id nobody has, and no id at all.
    for missing in ["005000000000000AAA", "not-an-id"] {
        let res = app
            .get(&format!("/system/salesforce/User/{missing}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{missing}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["reason"], "Not Found");
        let res = app
            .put(&format!("/system/salesforce/User/{missing}"))
            .json(&json!({"Title": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{missing}");
    }
}

#[tokio::test]
async fn salesforce_validation_errors_are_400s_with_the_error_code() {
    let org = start_org(5).await;
    let handle = org.handle();
    let (app, _conf) = app_with(&org, |_| {}).await;
    let mut body = user_body(&handle, &unique("v"), "Valid");
    body.as_object_mut().unwrap().remove("LastName");
    let res = app
        .post("/system/salesforce/User?_action=create")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_FIELD_MISSING"),
        "{err}"
    );
    assert_eq!(
        err["detail"]["errors"][0]["errorCode"],
        "REQUIRED_FIELD_MISSING"
    );
    assert_eq!(err["detail"]["errors"][0]["fields"][0], "LastName");

    let username = unique("dup");
    create(&app, &user_body(&handle, &username, "First")).await;
    let res = app
        .post("/system/salesforce/User?_action=create")
        .json(&user_body(&handle, &username, "Second"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(
        err["detail"]["errors"][0]["errorCode"],
        "DUPLICATE_USERNAME"
    );
}

#[tokio::test]
async fn the_api_request_limit_is_a_503_that_says_so() {
    let org = start_org(5).await;
    let handle = org.handle();
    let (app, _conf) = app_with(&org, |_| {}).await;
    handle.update_faults(&FaultUpdate {
        daily_limit: Some(10),
        api_usage: Some(10),
        ..Default::default()
    });
    let res = app
        .get("/system/salesforce/User?_queryFilter=true")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["reason"], "Service Unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("API request limit"),
        "{body}"
    );
    let report: Value = app
        .post("/system/salesforce?_action=test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["ok"], false);
    assert!(
        report["error"].as_str().unwrap().contains("limit"),
        "{report}"
    );
}

// ---- `idm-sync salesforce authorize` ----

fn authorize_config(base: &str) -> ClientConfig {
    let defaults = EmulatorConfig::default();
    ClientConfig::new(
        format!("{base}/services/oauth2/token").parse().unwrap(),
        defaults.consumer_key,
        Secret::new(defaults.consumer_secret),
        None,
    )
}

async fn active_username(base: &str) -> String {
    let defaults = EmulatorConfig::default();
    let mut cfg = authorize_config(base);
    cfg.refresh_token = Some(Secret::new(defaults.refresh_token));
    let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();
    let mut pages =
        std::pin::pin!(client.query("SELECT Username FROM User WHERE IsActive = true LIMIT 1"));
    let page = futures_util::TryStreamExt::try_next(&mut pages)
        .await
        .unwrap()
        .unwrap();
    page.records[0]["Username"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn authorize_exchanges_the_code_and_stores_the_refresh_token() {
    let db = TestDb::new().await;
    let org = start_org(5).await;
    let base = org.base_url().to_owned();
    let username = active_username(&base).await;
    let store = crate::helpers::token_store(&db.pool);
    let flow = AuthorizeFlow::start(authorize_config(&base), store.clone(), 0)
        .await
        .unwrap();
    let url = flow.authorize_url().clone();
    assert!(
        url.as_str()
            .starts_with(&format!("{base}/services/oauth2/authorize?"))
    );
    let callback = flow.redirect_uri().to_owned();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(30)));

    // A callback without the flow's state is refused and changes nothing; the flow waits on.
    let forged = reqwest::get(format!("{callback}?code=stolen&state=guess"))
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(store.load("salesforce").await.unwrap().is_none());

    assert_eq!(
        sf::authorize_in_browser(&url, &base, &username, "allow").await,
        200
    );
    let done = waiting.await.unwrap().unwrap();
    assert_eq!(done.instance_url.as_deref(), Some(base.as_str()));

    let stored = store
        .load("salesforce")
        .await
        .unwrap()
        .expect("a stored token");
    assert!(!stored.refresh_token.expose().is_empty());
    assert!(stored.instance_url.unwrap().starts_with(&base));
    // A process started later, with no refresh token in its configuration, works from the store.
    let later = SalesforceClient::new(authorize_config(&base), store).unwrap();
    later.limits().await.unwrap();
}

#[tokio::test]
async fn authorize_reports_a_refusal_and_stores_nothing() {
    let db = TestDb::new().await;
    let org = start_org(5).await;
    let base = org.base_url().to_owned();
    let store = crate::helpers::token_store(&db.pool);
    let flow = AuthorizeFlow::start(authorize_config(&base), store.clone(), 0)
        .await
        .unwrap();
    let url = flow.authorize_url().clone();
    let waiting = tokio::spawn(flow.finish(Duration::from_secs(30)));
    assert_eq!(
        sf::authorize_in_browser(&url, &base, "whoever", "deny").await,
        400
    );
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, AuthorizeError::Denied { error, .. } if error == "access_denied"),
        "{err}"
    );
    assert!(store.load("salesforce").await.unwrap().is_none());
}

#[tokio::test]
async fn the_access_catalog_is_queryable_by_name_and_read_only() {
    let org = start_org(3).await;
    let (app, _conf) = app_with(&org, |_| {}).await;
    let get = |path: String| {
        let app = &app;
        async move {
            let res = app.get(&path).send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    // Grantable permission sets only: none a profile or a permission set group owns.
    let (status, all) = get("/system/salesforce/PermissionSet?_queryFilter=true".into()).await;
    assert_eq!(status, 200, "{all}");
    let names: HashSet<String> = all["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["Name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains("Sales_Operations"), "{all}");
    assert_eq!(all["resultCount"], 5, "{all}");

    let (status, one) = get(format!(
        "/system/salesforce/PermissionSet?_queryFilter={}&_fields=Name,LicenseId",
        crate::worker::urlencode(r#"Name eq "Chatter_Moderator""#)
    ))
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["resultCount"], 1, "{one}");
    let found = &one["result"][0];
    assert!(found["_id"].as_str().unwrap().starts_with("0PS"), "{found}");
    assert!(
        found.get("Label").is_none(),
        "only the _fields asked: {found}"
    );
    let id = found["_id"].as_str().unwrap().to_owned();
    let (status, read) = get(format!("/system/salesforce/PermissionSet/{id}")).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["Name"], "Chatter_Moderator");
    let (status, _) = get("/system/salesforce/PermissionSet/0PS000000000000AAA".into()).await;
    assert_eq!(status, 404);

    // Public groups: Regular ones, not queues.
    let (_, groups) = get("/system/salesforce/Group?_queryFilter=true".into()).await;
    assert!(
        groups["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["Type"] == "Regular"),
        "{groups}"
    );
    assert_eq!(groups["resultCount"], 3, "{groups}");
    for (object, field) in [
        ("PermissionSetGroup", "DeveloperName"),
        ("UserRole", "DeveloperName"),
        ("Profile", "Name"),
    ] {
        let (status, page) = get(format!(
            "/system/salesforce/{object}?_queryFilter={field}%20pr&_pageSize=2"
        ))
        .await;
        assert_eq!(status, 200, "{object}: {page}");
        assert!(
            page["resultCount"].as_u64().unwrap() >= 1,
            "{object}: {page}"
        );
    }
    // An unknown field is the caller's mistake; a write is refused.
    let (status, _) = get("/system/salesforce/UserRole?_queryFilter=Password%20pr".into()).await;
    assert_eq!(status, 400);
    let res = app
        .post("/system/salesforce/PermissionSet?_action=create")
        .json(&json!({"Name": "X"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = app
        .delete(&format!("/system/salesforce/PermissionSet/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}
