//! [`SalesforceClient`]: one org, shared by every task (cheap to clone). Each call gets the shared
//! session, holds a connection permit while it runs, refreshes the session once on 401
//! `INVALID_SESSION_ID` and repeats itself once, and is retried on transient failures.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::ClientConfig;
use crate::config::{Credentials, Secret};
use crate::errors::SalesforceError;
use crate::http::{Http, RawResponse};
use crate::limits::{ApiUsage, Limits, UsageTracker};
use crate::oauth::TokenGrant;
use crate::observer::Observer;
use crate::retry::with_retry;
use crate::session::{ConnectorState, Session, SessionManager};
use crate::token_store::TokenStore;

/// A record's fields, as Salesforce names them (`Id`, `Username`, …).
pub type Record = Map<String, Value>;

/// The sObject this client works on.
pub const USER: &str = "User";

/// Refreshes one call may need: its own, and a few more while the tokens it gets are ones
/// other processes stored and that expired before this process could use them.
const MAX_REFRESHES_PER_CALL: u32 = 4;

#[derive(Debug, Clone)]
pub struct SalesforceClient {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub config: ClientConfig,
    pub http: Http,
    pub session: SessionManager,
    pub usage: UsageTracker,
    /// The `User` fields the org exposes to this connection (lower-cased), from one describe.
    pub user_fields: tokio::sync::OnceCell<Arc<BTreeSet<String>>>,
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Relative to `/services/data/vNN.N/`.
    Data(String),
    /// An absolute path on the instance (a `nextRecordsUrl`), checked to stay under `/services/data/`.
    InstancePath(String),
    /// The OpenID Connect userinfo endpoint, `/services/oauth2/userinfo`.
    UserInfo,
}

/// One logical call, possibly sent more than once.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub method: Method,
    pub target: Target,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a Value>,
    pub batch_size: Option<u32>,
    /// May be repeated after an ambiguous failure (timeout, reset): false for creates.
    pub idempotent: bool,
    /// Name for logs.
    pub what: &'static str,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, target: Target, what: &'static str) -> Call<'a> {
        let idempotent = method != Method::POST;
        Call {
            method,
            target,
            query: Vec::new(),
            body: None,
            batch_size: None,
            idempotent,
            what,
        }
    }
}

/// Who the connection is: the org and the user its token acts as (the integration user, whose
/// writes change events name as their `commitUser`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Identity {
    #[serde(rename = "organization_id")]
    pub org_id: String,
    pub user_id: String,
}

/// The outcome of [`SalesforceClient::test`].
#[derive(Debug, Clone, PartialEq)]
pub struct TestReport {
    pub instance_url: String,
    pub api_usage: Option<ApiUsage>,
    pub limits: Limits,
}

/// `GET sobjects/User/updated/`: ids changed in the window, and where the next window starts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpdatedIds {
    pub ids: Vec<String>,
    #[serde(rename = "latestDateCovered")]
    pub latest_date_covered: String,
}

#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<crate::errors::ApiError>,
}

impl SalesforceClient {
    /// Builds the client (no network call: the first token call happens on first use).
    pub fn new(
        config: ClientConfig,
        store: TokenStore,
    ) -> Result<SalesforceClient, SalesforceError> {
        Self::observed(config, store, Observer::none())
    }

    /// Like [`SalesforceClient::new`], telling `observer` of every request and usage seen.
    pub fn observed(
        config: ClientConfig,
        store: TokenStore,
        observer: Observer,
    ) -> Result<SalesforceClient, SalesforceError> {
        let http = Http::new(&config, observer)?;
        let session = SessionManager::new(&config, store);
        Ok(SalesforceClient {
            inner: Arc::new(Inner {
                config,
                http,
                session,
                usage: UsageTracker::default(),
                user_fields: tokio::sync::OnceCell::new(),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Where this client keeps its refresh token and saved credentials.
    pub fn token_store(&self) -> &TokenStore {
        self.inner.session.store()
    }

    /// The system this client is (`salesforce`: `/openidm/system/salesforce`).
    pub fn system_name(&self) -> &str {
        &self.inner.config.system_name
    }

    /// Whether the connector works, needs authorizing, or has bad credentials.
    pub fn state(&self) -> ConnectorState {
        self.inner.session.state()
    }

    /// Whether the connector may be used: the state saved from the Admin UI when there is one,
    /// else the provisioner file's `enabled`. A store that cannot be read leaves the file's
    /// value, with a warning.
    pub async fn enabled(&self) -> bool {
        let file = self.inner.config.enabled_in_file;
        match self
            .inner
            .session
            .store()
            .load_enabled(&self.inner.config.system_name)
            .await
        {
            Ok(saved) => saved.unwrap_or(file),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the connector's saved enabled state; the provisioner file decides");
                file
            }
        }
    }

    /// Saves the connector's enabled state for every role (it overrides the file's).
    pub async fn set_enabled(&self, on: bool) -> Result<(), SalesforceError> {
        self.inner
            .session
            .store()
            .save_enabled(&self.inner.config.system_name, on)
            .await
    }

    /// The usage reported by the latest answer (`Sforce-Limit-Info`), if any yet.
    pub fn last_api_usage(&self) -> Option<ApiUsage> {
        self.inner.usage.last()
    }

    /// The connector test: obtains a session (re-reading the token store if the connector needed
    /// re-authorization) and reads `/limits`. One API call plus a token call if there is no session.
    pub async fn test(&self) -> Result<TestReport, SalesforceError> {
        self.inner.session.recheck(&self.inner.config).await?;
        let limits = self.limits().await?;
        let session = self
            .inner
            .session
            .session(&self.inner.http, &self.inner.config)
            .await?;
        Ok(TestReport {
            instance_url: session.instance_url.to_string(),
            api_usage: self.last_api_usage(),
            limits,
        })
    }

    /// After re-authorization was needed (or no token was ever found): whether the token store
    /// now holds another refresh token. If so the connector forgets its failure and the next
    /// call uses that token. Reads the store only; no Salesforce call.
    pub async fn recheck_authorization(&self) -> Result<bool, SalesforceError> {
        self.inner.session.recheck(&self.inner.config).await
    }

    /// Exchanges an authorization code (web-server flow), stores the refresh token and instance
    /// URL durably, and starts using them.
    pub async fn authorize_with_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &Secret,
    ) -> Result<TokenGrant, SalesforceError> {
        self.inner
            .session
            .authorize(
                &self.inner.http,
                &self.inner.config,
                code,
                redirect_uri,
                verifier,
            )
            .await
    }

    /// The code exchange with credentials entered at run time (the Admin UI): on success they
    /// are stored for every role, and this process uses them from then on.
    pub async fn authorize_with_credentials(
        &self,
        credentials: &Credentials,
        code: &str,
        redirect_uri: &str,
        verifier: &Secret,
    ) -> Result<TokenGrant, SalesforceError> {
        self.inner
            .session
            .authorize_with(
                &self.inner.http,
                &self.inner.config,
                Some(credentials),
                code,
                redirect_uri,
                verifier,
            )
            .await
    }

    /// The instance URL of the current session, if this process has one.
    pub fn instance_url(&self) -> Option<String> {
        self.inner.session.instance_url().map(|u| u.to_string())
    }

    /// The configuration with the credentials this process uses now (saved ones over the file's).
    pub fn effective_config(&self) -> ClientConfig {
        self.inner.session.effective(&self.inner.config)
    }

    /// `GET sobjects/User/{id}[?fields=…]`; `None` when there is no such user.
    pub async fn get(&self, id: &str, fields: &[&str]) -> Result<Option<Record>, SalesforceError> {
        check_id(id)?;
        let mut call = Call::new(
            Method::GET,
            Target::Data(format!("sobjects/{USER}/{id}")),
            "get",
        );
        if !fields.is_empty() {
            call.query.push(("fields", fields.join(",")));
        }
        match self.call(&call).await {
            Ok(raw) => {
                let mut record: Record = parse_json(&raw, "record")?;
                record.shift_remove("attributes");
                Ok(Some(record))
            }
            Err(SalesforceError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST sobjects/User` → the new id. Validation failures come back as
    /// [`SalesforceError::Api`] with Salesforce's code, message and fields.
    pub async fn create(&self, record: &Record) -> Result<String, SalesforceError> {
        let body = Value::Object(without_attributes(record));
        let mut call = Call::new(
            Method::POST,
            Target::Data(format!("sobjects/{USER}")),
            "create",
        );
        call.body = Some(&body);
        let raw = self.call(&call).await?;
        let result: SaveResult = parse_json(&raw, "create result")?;
        match result.id {
            Some(id) if result.success => Ok(id),
            _ => Err(SalesforceError::RecordRejected {
                errors: result.errors,
            }),
        }
    }

    /// `PATCH sobjects/User/{id}` (204 on success).
    pub async fn update(&self, id: &str, record: &Record) -> Result<(), SalesforceError> {
        check_id(id)?;
        let mut fields = without_attributes(record);
        // The id is in the path; Salesforce rejects it in the body of a PATCH.
        fields.retain(|k, _| !k.eq_ignore_ascii_case("id"));
        let body = Value::Object(fields);
        let mut call = Call::new(
            Method::PATCH,
            Target::Data(format!("sobjects/{USER}/{id}")),
            "update",
        );
        call.body = Some(&body);
        self.call(&call).await?;
        Ok(())
    }

    /// Deprovisioning: a User cannot be deleted, so it is deactivated (`IsActive = false`).
    pub async fn deactivate(&self, id: &str) -> Result<(), SalesforceError> {
        let mut record = Record::new();
        record.insert("IsActive".to_owned(), Value::Bool(false));
        self.update(id, &record).await
    }

    /// `GET sobjects/User/updated/?start=&end=` (incremental polling; Salesforce truncates to the
    /// minute and accepts at most 30 days back).
    pub async fn updated(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<UpdatedIds, SalesforceError> {
        let mut call = Call::new(
            Method::GET,
            Target::Data(format!("sobjects/{USER}/updated/")),
            "updated",
        );
        call.query
            .push(("start", start.to_rfc3339_opts(SecondsFormat::Secs, false)));
        call.query
            .push(("end", end.to_rfc3339_opts(SecondsFormat::Secs, false)));
        let raw = self.call(&call).await?;
        parse_json(&raw, "updated result")
    }

    /// `GET sobjects/User/describe`.
    pub async fn describe_user(&self) -> Result<Record, SalesforceError> {
        let call = Call::new(
            Method::GET,
            Target::Data(format!("sobjects/{USER}/describe")),
            "describe",
        );
        let raw = self.call(&call).await?;
        parse_json(&raw, "describe result")
    }

    /// The names of the `User` fields this connection can read, lower-cased (SOQL field names
    /// are case-insensitive). One describe call per process: the schema of an org changes
    /// rarely, and a field added later shows after a restart. A failed describe is not cached.
    pub async fn user_field_names(&self) -> Result<Arc<BTreeSet<String>>, SalesforceError> {
        self.inner
            .user_fields
            .get_or_try_init(|| async {
                let describe = self.describe_user().await?;
                let names: BTreeSet<String> = describe
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| {
                        SalesforceError::InvalidResponse("describe result without fields".into())
                    })?
                    .iter()
                    .filter_map(|f| f.get("name").and_then(Value::as_str))
                    .map(str::to_ascii_lowercase)
                    .collect();
                Ok(Arc::new(names))
            })
            .await
            .cloned()
    }

    /// `GET limits`.
    pub async fn limits(&self) -> Result<Limits, SalesforceError> {
        let call = Call::new(Method::GET, Target::Data("limits".into()), "limits");
        let raw = self.call(&call).await?;
        Ok(Limits::from_json(parse_json(&raw, "limits")?))
    }

    /// `GET /services/oauth2/userinfo`: the org id and the user the session acts as.
    pub async fn identity(&self) -> Result<Identity, SalesforceError> {
        let call = Call::new(Method::GET, Target::UserInfo, "userinfo");
        let raw = self.call(&call).await?;
        parse_json(&raw, "userinfo")
    }

    /// The current session's access token and instance URL, with its generation for
    /// [`SalesforceClient::refresh_session`] (the Pub/Sub API authenticates with them).
    pub(crate) async fn bearer(&self) -> Result<std::sync::Arc<Session>, SalesforceError> {
        let inner = &self.inner;
        inner.session.session(&inner.http, &inner.config).await
    }

    /// A new session in place of the one of generation `stale`, which was refused.
    pub(crate) async fn refresh_session(
        &self,
        stale: u64,
    ) -> Result<std::sync::Arc<Session>, SalesforceError> {
        let inner = &self.inner;
        let fresh = inner
            .session
            .refresh(&inner.http, &inner.config, Some(stale))
            .await?;
        Ok(fresh.session)
    }

    /// Sends a call with retries; returns the successful answer. Boxed: it names a concrete
    /// `Send` future, which the compiler cannot prove of the nested retry future inside streams.
    pub(crate) fn call<'a>(
        &'a self,
        call: &'a Call<'a>,
    ) -> BoxFuture<'a, Result<RawResponse, SalesforceError>> {
        Box::pin(with_retry(
            &self.inner.config.retry,
            call.idempotent,
            call.what,
            move || self.call_once(call),
        ))
    }

    /// One attempt: with the shared session, and once more after a refresh if it had expired.
    /// A refresh may hand over a token another task or process obtained earlier rather than
    /// call the token endpoint; that one may have expired too, so a 401 on it refreshes again,
    /// a few times at most. A 401 on a token this call's own refresh obtained ends the attempt.
    async fn call_once(&self, call: &Call<'_>) -> Result<RawResponse, SalesforceError> {
        let inner = &self.inner;
        let mut session = inner.session.session(&inner.http, &inner.config).await?;
        let (mut refreshes, mut token_call) = (0, false);
        loop {
            match self.send(&session, call).await {
                Err(e)
                    if e.is_invalid_session()
                        && !token_call
                        && refreshes < MAX_REFRESHES_PER_CALL =>
                {
                    tracing::debug!(call = call.what, "Salesforce session expired, refreshing");
                    refreshes += 1;
                    let fresh = inner
                        .session
                        .refresh(&inner.http, &inner.config, Some(session.generation))
                        .await?;
                    (session, token_call) = (fresh.session, fresh.token_call);
                }
                other => return other,
            }
        }
    }

    async fn send(
        &self,
        session: &Session,
        call: &Call<'_>,
    ) -> Result<RawResponse, SalesforceError> {
        let url = self.url(session, &call.target)?;
        let mut req = self
            .inner
            .http
            .client
            .request(call.method.clone(), url)
            .bearer_auth(session.access_token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if !call.query.is_empty() {
            req = req.query(&call.query);
        }
        if let Some(body) = call.body {
            req = req.json(body);
        }
        if let Some(n) = call.batch_size {
            req = req.header("Sforce-Query-Options", format!("batchSize={n}"));
        }
        let result = self.inner.http.send(req).await.and_then(|raw| {
            let usage = self.inner.usage.record(&raw.headers);
            self.inner.http.observer.api_usage(usage);
            if raw.status.is_success() {
                Ok(raw)
            } else {
                Err(SalesforceError::from_response(
                    raw.status.as_u16(),
                    &raw.body,
                    usage,
                ))
            }
        });
        // The one place every REST request passes: each attempt counts, as Salesforce counts it.
        self.inner.http.observer.call(call.what, &result);
        result
    }

    fn url(&self, session: &Session, target: &Target) -> Result<reqwest::Url, SalesforceError> {
        let path = match target {
            Target::Data(rest) => format!("{}{rest}", self.inner.config.data_path()),
            Target::InstancePath(path) => {
                // A next-page URL must stay on the instance: the bearer token goes with it.
                if !path.starts_with("/services/data/") || path.contains("://") {
                    return Err(SalesforceError::InvalidResponse(format!(
                        "nextRecordsUrl {path:?} is not a path under /services/data/"
                    )));
                }
                path.clone()
            }
            Target::UserInfo => "/services/oauth2/userinfo".to_owned(),
        };
        session
            .instance_url
            .join(&path)
            .map_err(|e| SalesforceError::InvalidResponse(format!("URL {path:?}: {e}")))
    }
}

/// Salesforce ids are 15 or 18 letters and digits; anything else would change the URL's path.
pub(crate) fn check_id(id: &str) -> Result<(), SalesforceError> {
    if matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(SalesforceError::InvalidArgument(format!(
            "{id:?} is not a Salesforce id (15 or 18 letters and digits)"
        )))
    }
}

pub(crate) fn without_attributes(record: &Record) -> Record {
    record
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    raw: &RawResponse,
    what: &str,
) -> Result<T, SalesforceError> {
    if raw.status == StatusCode::NO_CONTENT {
        return Err(SalesforceError::InvalidResponse(format!(
            "{what}: empty answer"
        )));
    }
    serde_json::from_slice(&raw.body)
        .map_err(|e| SalesforceError::InvalidResponse(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(check_id("005000000000001AAA").is_ok());
        assert!(check_id("005000000000001").is_ok());
        assert!(check_id("../limits").is_err());
        assert!(check_id("005000000000001AA/").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn next_records_urls_must_stay_on_the_instance() {
        let cfg = ClientConfig::new(
            reqwest::Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            "k",
            crate::config::Secret::new("s"),
            None,
        );
        let client = SalesforceClient::new(cfg, TokenStore::in_memory()).unwrap();
        let session = Session {
            access_token: crate::config::Secret::new("t"),
            instance_url: reqwest::Url::parse("https://na1.my.salesforce.com").unwrap(),
            generation: 1,
        };
        let ok = client
            .url(
                &session,
                &Target::InstancePath("/services/data/v62.0/query/01gXX-2000".into()),
            )
            .unwrap();
        assert_eq!(
            ok.as_str(),
            "https://na1.my.salesforce.com/services/data/v62.0/query/01gXX-2000"
        );
        assert!(
            client
                .url(
                    &session,
                    &Target::InstancePath("https://evil.example/services/data/x".into())
                )
                .is_err()
        );
        assert!(
            client
                .url(
                    &session,
                    &Target::InstancePath("//evil.example/services/data/".into())
                )
                .is_err()
        );
        let data = client
            .url(&session, &Target::Data("sobjects/User/describe".into()))
            .unwrap();
        assert_eq!(data.path(), "/services/data/v62.0/sobjects/User/describe");
    }
}
