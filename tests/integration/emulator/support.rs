//! Starting an emulator on a free port and talking to it like a Salesforce client.

use serde_json::{Value, json};
use sf_emulator::{Emulator, EmulatorConfig, EmulatorHandle, RunningEmulator};

pub const V: &str = "v62.0";

pub struct TestOrg {
    pub running: RunningEmulator,
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
}

impl TestOrg {
    pub fn handle(&self) -> EmulatorHandle {
        self.running.handle()
    }

    pub fn data_url(&self, path: &str) -> String {
        format!("{}/services/data/{V}/{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(self.data_url(path)).bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.data_url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    pub fn patch(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .patch(self.data_url(path))
            .bearer_auth(&self.token)
            .json(body)
    }

    pub async fn admin_faults(&self, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/__emulator/faults", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub fn standard_profile(&self) -> String {
        self.handle().profile_id("Standard User").unwrap()
    }

    /// A valid create body for a fresh username.
    pub fn new_user(&self, username: &str) -> Value {
        json!({
            "Username": username,
            "LastName": "Tester",
            "FirstName": "Tess",
            "Email": "tess.tester@example.com",
            "Alias": "ttester",
            "ProfileId": self.standard_profile(),
            "TimeZoneSidKey": "America/Los_Angeles",
            "LocaleSidKey": "en_US",
            "EmailEncodingKey": "UTF-8",
            "LanguageLocaleKey": "en_US",
        })
    }
}

pub fn client() -> reqwest::Client {
    crate::helpers::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    Emulator::build(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .start()
}

/// The default credentials' refresh grant; panics unless it succeeds.
pub async fn refresh(http: &reqwest::Client, base: &str, refresh_token: &str) -> Value {
    let r = http
        .post(format!("{base}/services/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "idm-sync-emulator-key"),
            ("client_secret", "idm-sync-emulator-secret"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// An emulator with `users` generated users and a live access token.
pub async fn org_with(config: EmulatorConfig) -> TestOrg {
    let running = start(config).await;
    let base = running.base_url().to_owned();
    let http = client();
    let token = refresh(&http, &base, "idm-sync-emulator-refresh-token").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    TestOrg {
        running,
        base,
        http,
        token,
    }
}

pub async fn org(users: usize) -> TestOrg {
    org_with(EmulatorConfig {
        users,
        ..EmulatorConfig::default()
    })
    .await
}

/// The single REST error of an error array.
pub async fn error_of(r: reqwest::Response) -> (u16, String, String, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let e = &body[0];
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    (
        status,
        e["errorCode"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
        e["fields"].clone(),
    )
}
