//! An emulator per test, and a client configured for it with fast retries.

use std::time::Duration;

use futures_util::TryStreamExt;
use idm_sync::salesforce::{
    ClientConfig, QueryPage, Record, RetryConfig, SalesforceClient, SalesforceError, Secret,
    TokenStore,
};
use serde_json::json;
use sf_emulator::{Emulator, EmulatorConfig, EmulatorHandle, RunningEmulator};

pub const QUERY: &str = "GET /services/data/vXX.X/query";
pub const QUERY_MORE: &str = "GET /services/data/vXX.X/query/{locator}";
pub const LIMITS: &str = "GET /services/data/vXX.X/limits";
pub const COLLECTIONS_POST: &str = "POST /services/data/vXX.X/composite/sobjects";
pub const CREATE: &str = "POST /services/data/vXX.X/sobjects/{sobject}";

pub async fn start_org(users: usize, rotate: bool) -> RunningEmulator {
    Emulator::build(
        EmulatorConfig {
            users,
            rotate_refresh_tokens: rotate,
            ..Default::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap()
    .start()
}

/// The emulator's default credentials, retries of 4 attempts with short delays.
pub fn config(base: &str) -> ClientConfig {
    let defaults = EmulatorConfig::default();
    let mut cfg = ClientConfig::new(
        format!("{base}/services/oauth2/token").parse().unwrap(),
        defaults.consumer_key,
        Secret::new(defaults.consumer_secret),
        Some(Secret::new(defaults.refresh_token)),
    );
    cfg.request_timeout = Duration::from_secs(20);
    cfg.retry = RetryConfig {
        max_attempts: 4,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(80),
        max_total_delay: Duration::from_secs(5),
    };
    cfg
}

pub fn client(base: &str) -> SalesforceClient {
    SalesforceClient::new(config(base), TokenStore::in_memory()).unwrap()
}

/// Every page of a query, in order.
pub async fn all_pages(
    client: &SalesforceClient,
    soql: &str,
    batch: u32,
) -> Result<Vec<QueryPage>, SalesforceError> {
    client
        .query_with_batch_size(soql, batch)
        .try_collect()
        .await
}

pub fn new_user(handle: &EmulatorHandle, username: &str) -> Record {
    let v = json!({
        "Username": username,
        "LastName": "Tester",
        "FirstName": "Tess",
        "Email": "tess.tester@example.com",
        "Alias": "ttester",
        "ProfileId": handle.profile_id("Standard User").unwrap(),
        "TimeZoneSidKey": "America/Los_Angeles",
        "LocaleSidKey": "en_US",
        "EmailEncodingKey": "UTF-8",
        "LanguageLocaleKey": "en_US",
    });
    v.as_object().unwrap().clone()
}

/// Every Salesforce user's (Id, Username), in Id order; with `people_only`, not the autoproc
/// user (whose email starts with `autoproc`), which the inbound mapping never imports.
pub async fn id_usernames(client: &SalesforceClient, people_only: bool) -> Vec<(String, String)> {
    use futures_util::TryStreamExt;
    let pages: Vec<_> = client
        .query("SELECT Id, Username, Email FROM User ORDER BY Id")
        .try_collect()
        .await
        .unwrap();
    let text = |r: &Record, f: &str| r[f].as_str().unwrap().to_owned();
    pages
        .into_iter()
        .flat_map(|p| p.records)
        .filter(|r| !people_only || !text(r, "Email").starts_with("autoproc"))
        .map(|r| (text(&r, "Id"), text(&r, "Username")))
        .collect()
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}.{}@idm-sync.test", uuid::Uuid::new_v4().simple())
}

/// What the operator's browser does: log in on the emulator's authorize page and allow (or
/// deny), then follow the redirect to the callback. Returns the callback's status.
pub async fn authorize_in_browser(
    flow_url: &reqwest::Url,
    base: &str,
    username: &str,
    action: &str,
) -> u16 {
    let q: std::collections::HashMap<String, String> =
        flow_url.query_pairs().into_owned().collect();
    let http = crate::helpers::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The page's hidden fields carry the PKCE challenge through.
    let challenge = |k: &str| q.get(k).map_or("", String::as_str);
    let answer = http
        .post(format!("{base}/services/oauth2/authorize"))
        .form(&[
            ("client_id", q["client_id"].as_str()),
            ("redirect_uri", q["redirect_uri"].as_str()),
            ("state", q["state"].as_str()),
            ("username", username),
            ("action", action),
            ("code_challenge", challenge("code_challenge")),
            ("code_challenge_method", challenge("code_challenge_method")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    http.get(location).send().await.unwrap().status().as_u16()
}
