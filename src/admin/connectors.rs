//! The Salesforce connector: its state (enabled, last test, API usage), a Test button, and the
//! settings form whose Save runs OAuth's web-server flow.
//!
//! Save stores the entered login URL, consumer key and secret as a *pending* authorization
//! (table `admin_oauth_pending`, keyed by a random `state`, tied to the session) and redirects
//! to the org's `/services/oauth2/authorize`. Salesforce sends the browser back to
//! `/admin/oauth?code=…&state=…`: the `state` must be a pending one of a live session (and of
//! the cookie's session when the browser sends it — a SameSite=Strict cookie is not sent on
//! that cross-site redirect, so the single-use state is what authenticates the callback). The
//! code is exchanged with the pending credentials; only on success are the credentials stored
//! (`salesforce_connector_settings`, see `crate::salesforce::credentials`) with the refresh
//! token and instance URL (`salesforce_tokens`), and the connector test runs. Secrets are never
//! rendered: the secret field is always empty, and empty means "keep the current one".

use std::sync::Mutex;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{Markup, html};
use reqwest::Url;
use std::collections::HashMap;

use super::AdminState;
use super::error::AdminError;
use super::form::FormData;
use super::html::{self, Nav};
use super::session;
use super::signed_in::AdminSession;
use crate::config::ChangeEventsConfig;
use crate::salesforce::{ConnectorState, Credentials, SalesforceClient, SalesforceError, Secret};
use crate::services::change_events::{self, EventStatus};
use crate::services::connectors::Completion;
use crate::tls::OverTls;

pub const PRODUCTION: &str = "https://login.salesforce.com";
pub const SANDBOX: &str = "https://test.salesforce.com";
const TOKEN_PATH: &str = "/services/oauth2/token";

/// The outcome of the latest test of each connector run from this process's UI.
#[derive(Debug, Default)]
pub struct LastTest(Mutex<HashMap<String, TestOutcome>>);

/// When, and the report or the error.
type TestOutcome = (DateTime<Utc>, Result<String, SalesforceError>);

impl LastTest {
    fn set(&self, system: &str, outcome: Result<String, SalesforceError>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(system.to_owned(), (Utc::now(), outcome));
    }

    fn get(&self, system: &str) -> Option<TestOutcome> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(system)
            .cloned()
    }
}

fn client<'a>(state: &'a AdminState, system: &str) -> Result<&'a SalesforceClient, AdminError> {
    Ok(state.app.connector(system)?.client())
}

/// `/admin/connectors/<system>` with `done` as its notice.
fn connector_url(system: &str, done: &str) -> String {
    format!("/admin/connectors/{}?done={done}", html::url_encode(system))
}

/// Runs the connector test and remembers its outcome (never a secret: errors are typed).
async fn run_test(
    state: &AdminState,
    client: &SalesforceClient,
) -> Result<String, SalesforceError> {
    let outcome = client.test().await.map(|report| match report.api_usage {
        Some(u) => format!(
            "OK: {} (API usage {}/{})",
            report.instance_url, u.used, u.max
        ),
        None => format!("OK: {}", report.instance_url),
    });
    state.last_test.set(client.system_name(), outcome.clone());
    outcome
}

fn state_text(s: &ConnectorState) -> String {
    match s {
        ConnectorState::Unknown => "not used yet in this process".into(),
        ConnectorState::Ready => "connected".into(),
        ConnectorState::NotAuthorized => {
            "not authorized: save the settings below to authorize".into()
        }
        ConnectorState::NeedsReauthorization { reason } => {
            format!("re-authorization needed: {reason}")
        }
        ConnectorState::UnreadableSecrets { reason } => {
            format!("stored secrets unreadable by this server's secrets key: {reason}")
        }
        ConnectorState::BadCredentials { reason } => {
            format!("bad consumer key or secret: {reason}")
        }
    }
}

/// The login base (scheme, host, port) of a token endpoint.
fn login_base(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// `GET /admin/connectors`: the first connector's page (in name order), with every
/// connector's name to switch to.
pub async fn page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let Some(first) = state.app.connectors.names().next() else {
        return Err(AdminError::Unavailable(
            "No Salesforce connector is configured (conf/provisioner.openicf-<name>.json).".into(),
        ));
    };
    let first = first.to_owned();
    connector_page(&state, &session, &first, &query).await
}

/// `GET /admin/connectors/{system}`
pub async fn system_page(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(system): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    connector_page(&state, &session, &system, &query).await
}

/// The links to every connector's page, when there are several.
fn switcher(names: &[&str], current: &str) -> Markup {
    html! {
        @if names.len() > 1 {
            nav id="connector-list" aria-label="Connectors" {
                p {
                    "Connectors: "
                    @for (i, name) in names.iter().enumerate() {
                        @if i > 0 { " · " }
                        @if *name == current {
                            strong aria-current="page" { (name) }
                        } @else {
                            a href={ "/admin/connectors/" (html::url_encode(name)) } { (name) }
                        }
                    }
                }
            }
        }
    }
}

/// The notice of a `done=` the connector's page was sent to.
fn done_notice(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "tested" => Some("Connector tested."),
        "authorized" => Some("Salesforce authorized."),
        "enabled" => {
            Some("Connector enabled: REST calls, reconciliations and implicit sync use it again.")
        }
        "disabled" => Some(
            "Connector disabled: REST calls and new reconciliations are refused, implicit sync pauses (changes wait in the queues).",
        ),
        _ => None,
    }
}

/// The login URL and consumer key in use, and where they come from.
struct Settings {
    login_url: Url,
    client_id: String,
    source: String,
}

async fn connector_page(
    state: &AdminState,
    session: &AdminSession,
    system: &str,
    query: &HashMap<String, String>,
) -> Result<Response, AdminError> {
    let client = client(state, system)?;
    let path = format!("/admin/connectors/{}", html::url_encode(system));
    let file_enabled = client.config().enabled_in_file;
    let saved_enabled = client
        .token_store()
        .load_enabled(&client.config().system_name)
        .await?;
    let enabled = saved_enabled.unwrap_or(file_enabled);
    let enabled_text = match (enabled, saved_enabled) {
        (true, Some(_)) => "yes (set on this page)",
        (false, Some(_)) => "no (disabled on this page)",
        (true, None) => "yes (provisioner file)",
        (false, None) => "no (provisioner file)",
    };
    let saved = client
        .token_store()
        .load_credentials(&client.config().system_name)
        .await?;
    let settings = match saved {
        Some(c) => Settings {
            login_url: c.login_url,
            client_id: c.client_id,
            source: "saved from this UI".to_owned(),
        },
        None => Settings {
            login_url: client.config().login_url.clone(),
            client_id: client.config().client_id.clone(),
            source: format!("conf/provisioner.openicf-{system}.json"),
        },
    };
    let usage = match client.last_api_usage() {
        Some(u) => format!("{} of {} calls today", u.used, u.max),
        None => "none seen yet".into(),
    };
    let names: Vec<&str> = state.app.connectors.names().collect();
    let events = change_events::status(state.app.managed.pool(), &state.app.conf, system).await?;
    let body = html! {
        (switcher(&names, system))
        @if let Some(text) = done_notice(query.get("done").map(String::as_str)) {
            (html::notice("ok", text))
        }
        section id={ "connector-" (system) } aria-labelledby="sf-h" {
            h2 id="sf-h" { "Salesforce Connector " (system) }
            table id="connector-state" {
                tbody {
                    (state_row("Enabled", Some("connector-enabled"), html! { (enabled_text) }))
                    (state_row("State", Some("connector-status"), html! { (state_text(&client.state())) }))
                    (state_row("Last test", None, test_result(state.last_test.get(system))))
                    (state_row("Last API usage seen", Some("api-usage"), html! { (usage) }))
                    (state_row("Login URL", Some("login-url"), html! { (settings.login_url.as_str()) }))
                    (state_row("Consumer Key", Some("consumer-key"), html! { (settings.client_id) }))
                    (state_row("Settings from", Some("settings-source"), html! { (settings.source) }))
                }
            }
            form method="post" action={ (path) "/test" } id="test-form" class="inline" {
                (html::csrf_field(session))
                button type="submit" id="test" class="secondary" { "Test" }
            }
            " "
            form method="post" action={ (path) "/enabled" } id="enabled-form" class="inline" {
                (html::csrf_field(session))
                input type="hidden" name="enabled" value=(!enabled);
                @if enabled {
                    button type="submit" id="toggle-enabled" class="danger" { "Disable" }
                } @else {
                    button type="submit" id="toggle-enabled" class="secondary" { "Enable" }
                }
            }
        }
        (events_section(system, &events, Utc::now()))
        (settings_form(session, &path, &settings))
    };
    Ok(html::page(session, Nav::Connectors, "Connectors", body))
}

/// The connector's change event subscription: configured or not, who holds it, how far it
/// applied, and why it waits when it does.
fn events_section(system: &str, status: &EventStatus, now: DateTime<Utc>) -> Markup {
    let file = ChangeEventsConfig::file_name(system);
    let content = match (&status.config, &status.subscription) {
        (None, _) => html! {
            p id="events-config" class="muted" { "Not configured: add conf/" (file) " to apply Salesforce change events within seconds." }
        },
        (Some(c), sub) => {
            let sub = sub.as_ref();
            let when = |t: Option<DateTime<Utc>>| {
                t.map_or_else(
                    || "never".to_owned(),
                    |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
                )
            };
            let lag = status.lag().map_or_else(
                || "none measured yet".to_owned(),
                |l| format!("{:.3} s", l.num_milliseconds() as f64 / 1000.0),
            );
            let holder = match (status.active(now), sub.and_then(|s| s.holder.as_deref())) {
                (true, Some(h)) => h.to_owned(),
                _ => "none (no events process holds it)".to_owned(),
            };
            html! {
                table id="events-state" {
                    tbody {
                        (state_row("Enabled", Some("events-enabled"), html! { (if c.enabled { "yes" } else { "no" }) " (conf/" (file) ")" }))
                        (state_row("Topic", Some("events-topic"), html! { (c.topic) }))
                        (state_row("State", Some("events-status"), html! { (sub.map_or("not started", |s| s.state.as_str())) }))
                        (state_row("Subscriber", Some("events-holder"), html! { (holder) }))
                        (state_row("Last change applied", Some("events-last"), html! { (when(sub.and_then(|s| s.last_commit_at))) }))
                        (state_row("Lag of that change", Some("events-lag"), html! { (lag) }))
                        (state_row("Resumes from a stored replay id", Some("events-replay"), html! { (if sub.is_some_and(|s| s.has_replay_id) { "yes" } else { "no: from the latest event" }) }))
                        @if let Some(message) = sub.map(|s| s.message.as_str()).filter(|m| !m.is_empty()) {
                            (state_row("Message", Some("events-message"), html! { (message) }))
                        }
                    }
                }
            }
        }
    };
    html::section("change-events", "Change events", content)
}

/// A row of the connector's state table; `id` names the value's cell.
fn state_row(heading: &str, id: Option<&str>, value: Markup) -> Markup {
    html! { tr { th scope="row" { (heading) } td id=[id] { (value) } } }
}

/// The latest test from this page: its report or error, and when.
fn test_result(last: Option<TestOutcome>) -> Markup {
    let Some((at, outcome)) = last else {
        return html! { span id="test-result" class="muted" { "not tested from this page yet" } };
    };
    html! {
        @match outcome {
            Ok(report) => span id="test-result" class="ok" { (report) },
            Err(e) => span id="test-result" class="error" { "Failed: " (e) },
        }
        " "
        span.muted { "at " (at.to_rfc3339_opts(SecondsFormat::Secs, true)) }
    }
}

/// The settings form: login URL, consumer key and secret; Save runs the OAuth flow.
fn settings_form(session: &AdminSession, path: &str, settings: &Settings) -> Markup {
    let base = login_base(&settings.login_url);
    let custom = base != PRODUCTION && base != SANDBOX;
    html! {
        section aria-labelledby="settings-h" {
            h2 id="settings-h" { "Base Connector Details" }
            form method="post" action=(path) id="connector-form" {
                (html::csrf_field(session))
                fieldset {
                    legend { "Login URL" }
                    (login_choice("production", &format!("Production ({PRODUCTION})"), base == PRODUCTION))
                    (login_choice("sandbox", &format!("Sandbox ({SANDBOX})"), base == SANDBOX))
                    (login_choice("custom", "Custom", custom))
                    div.form-row {
                        label for="custom-url" { "Custom login URL" }
                        input type="url" id="custom-url" name="custom_url" value=(if custom { base.as_str() } else { "" })
                            placeholder="https://mydomain.my.salesforce.com";
                    }
                }
                div.form-row {
                    label for="client-id" { "Consumer Key" }
                    input id="client-id" name="client_id" value=(settings.client_id) autocomplete="off" required;
                }
                div.form-row {
                    label for="client-secret" { "Consumer Secret (leave empty to keep the current one)" }
                    input type="password" id="client-secret" name="client_secret" value="" autocomplete="off";
                }
                p {
                    button type="submit" id="save-connector" { "Save and authorize" }
                    " "
                    span.muted { "You are sent to Salesforce to log in and allow access, then back here." }
                }
            }
        }
    }
}

/// One radio button of the login URL choice.
fn login_choice(value: &str, label: &str, checked: bool) -> Markup {
    html! {
        input type="radio" id={ "login-" (value) } name="login" value=(value) checked[checked];
        " "
        label for={ "login-" (value) } { (label) }
    }
}

/// `POST /admin/connectors/{system}/test`
pub async fn test(
    State(state): State<AdminState>,
    Path(system): Path<String>,
) -> Result<Response, AdminError> {
    let client = client(&state, &system)?;
    let _ = run_test(&state, client).await;
    Ok(html::see_other(&connector_url(&system, "tested")))
}

/// `POST /admin/connectors/{system}/enabled` (`enabled=true|false`): saved for every role,
/// overriding the provisioner file's `enabled`.
pub async fn set_enabled(
    State(state): State<AdminState>,
    Path(system): Path<String>,
    body: Bytes,
) -> Result<Response, AdminError> {
    let connector = state.app.connector(&system)?;
    let on = match FormData::parse(&body).text("enabled").as_str() {
        "true" => true,
        "false" => false,
        _ => {
            return Err(AdminError::BadRequest(
                "enabled must be true or false.".into(),
            ));
        }
    };
    connector.set_enabled(on).await?;
    Ok(html::see_other(&connector_url(
        &system,
        if on { "enabled" } else { "disabled" },
    )))
}

/// Why the settings form names no usable login URL (shown to the admin as it is).
#[derive(Debug, PartialEq, thiserror::Error)]
enum LoginUrlError {
    #[error("Choose Production, Sandbox or Custom.")]
    NoChoice,
    #[error("The custom login URL is not a valid URL.")]
    NotAUrl,
    #[error("The login URL must be an http(s) URL with a host.")]
    NotHttp,
}

/// The token endpoint for the form's choice.
fn token_url(form: &FormData) -> Result<Url, LoginUrlError> {
    let base = match form.text("login").as_str() {
        "production" => PRODUCTION.to_owned(),
        "sandbox" => SANDBOX.to_owned(),
        "custom" => form.text("custom_url"),
        _ => return Err(LoginUrlError::NoChoice),
    };
    let mut url = Url::parse(&base).map_err(|_| LoginUrlError::NotAUrl)?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(LoginUrlError::NotHttp);
    }
    if !url.path().trim_end_matches('/').ends_with(TOKEN_PATH) {
        url.set_path(TOKEN_PATH);
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Where browsers reach this server: the configured public URL, or the request's host over
/// the scheme the request came in on.
fn public_base(
    state: &AdminState,
    headers: &HeaderMap,
    over_tls: bool,
) -> Result<String, AdminError> {
    if let Some(u) = &state.settings.public_url {
        return Ok(u.clone());
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        })
        .ok_or_else(|| {
            AdminError::BadRequest(
                "The request has no usable Host header; set IDM_ADMIN_PUBLIC_URL.".into(),
            )
        })?;
    let scheme = if state.settings.secure_cookie || over_tls {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{host}"))
}

/// `POST /admin/connectors/{system}`: keeps the settings pending and sends the browser to
/// the org's authorize page.
pub async fn save(
    State(state): State<AdminState>,
    Extension(session): Extension<AdminSession>,
    Path(system): Path<String>,
    tls: Option<Extension<OverTls>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let connector = state.app.connector(&system)?;
    let form = FormData::parse(&body);
    let login_url = token_url(&form).map_err(|e| AdminError::BadRequest(e.to_string()))?;
    let client_id = form.text("client_id");
    if client_id.is_empty() {
        return Err(AdminError::BadRequest(
            "The Consumer Key is required.".into(),
        ));
    }
    let secret = match form.get("client_secret").filter(|s| !s.is_empty()) {
        Some(s) => Secret::new(s),
        None => connector.current_secret().await?,
    };
    let credentials = Credentials {
        login_url,
        client_id,
        client_secret: secret,
    };
    let redirect_uri = format!(
        "{}/admin/oauth",
        public_base(&state, &headers, tls.is_some())?
    );
    let url = connector
        .begin_authorization(
            &credentials,
            &session::random_token(),
            &session.id,
            &redirect_uri,
        )
        .await?;
    Ok(html::see_other(url.as_str()))
}

/// The callback's answer; `authorized` names the connector authorized, whose page it leads to.
fn callback_page(
    status: StatusCode,
    title: &str,
    message: &str,
    authorized: Option<&str>,
) -> Response {
    let next = match authorized {
        Some(system) => connector_url(system, "authorized"),
        None => "/admin/connectors".to_owned(),
    };
    let body = html! {
        @if authorized.is_some() {
            meta http-equiv="refresh" content={ "1; url=" (next) };
        }
        p id="oauth-result" class=(if authorized.is_some() { "ok" } else { "error" }) { (message) }
        p { a id="continue" href=(next) { "Continue to Connectors" } }
    };
    html::bare_page(status, title, body)
}

/// `GET /admin/oauth?code=…&state=…` (or `error=…`): Salesforce's redirect back.
pub async fn callback(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    let unknown = || {
        callback_page(
            StatusCode::BAD_REQUEST,
            "Authorization not recognized",
            "This authorization is unknown, used or expired. Start again from the Connectors page.",
            None,
        )
    };
    let Some(oauth_state) = query.get("state").filter(|s| !s.is_empty()) else {
        return Ok(unknown());
    };
    // Single use: taken out whatever happens next.
    let Some(pending) = state.app.take_pending(oauth_state).await? else {
        return Ok(unknown());
    };
    let session_id = &pending.session_id;
    let pool = state.app.managed.pool();
    let cookie_matches = session::cookie_token(&headers)
        .map(|t| session::hash(&t) == *session_id)
        .unwrap_or(true);
    let credential = state.app.auth.credential_fingerprint();
    if !cookie_matches || !session::is_live(pool, &state.settings, credential, session_id).await? {
        return Ok(unknown());
    }
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").cloned().unwrap_or_default();
        return Ok(callback_page(
            StatusCode::BAD_REQUEST,
            "Salesforce did not authorize",
            &format!("Salesforce answered {error}: {description}. Nothing was changed."),
            None,
        ));
    }
    let Some(code) = query.get("code").filter(|c| !c.is_empty()) else {
        return Ok(unknown());
    };
    let connector = state.app.connector(&pending.system)?;
    if let Completion::Refused(e) = connector.complete_authorization(&pending, code).await? {
        return Ok(callback_page(
            StatusCode::BAD_GATEWAY,
            "Authorization failed",
            &format!("The code exchange failed: {e}. The previous settings stay in use."),
            None,
        ));
    }
    let message = match run_test(&state, connector.client()).await {
        Ok(m) => format!("Salesforce authorized; connector test {m}"),
        Err(e) => format!("Salesforce authorized, but the connector test failed: {e}"),
    };
    Ok(callback_page(
        StatusCode::OK,
        "Salesforce connected",
        &message,
        Some(&pending.system),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switcher_links_the_other_connectors() {
        assert_eq!(switcher(&["salesforce"], "salesforce").into_string(), "");
        assert_eq!(
            switcher(&["a b", "s<f>"], "s<f>").into_string(),
            "<nav id=\"connector-list\" aria-label=\"Connectors\"><p>Connectors: \
<a href=\"/admin/connectors/a%20b\">a b</a> · <strong aria-current=\"page\">s&lt;f&gt;</strong></p></nav>"
        );
    }

    fn form(s: &str) -> FormData {
        FormData::parse(s.as_bytes())
    }

    #[test]
    fn token_urls_from_the_choice() {
        assert_eq!(
            token_url(&form("login=production")).unwrap().as_str(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            token_url(&form("login=sandbox")).unwrap().as_str(),
            "https://test.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            token_url(&form(
                "login=custom&custom_url=http%3A%2F%2F127.0.0.1%3A8090"
            ))
            .unwrap()
            .as_str(),
            "http://127.0.0.1:8090/services/oauth2/token"
        );
        assert_eq!(
            token_url(&form("login=custom&custom_url=https%3A%2F%2Fx.my.salesforce.com%2Fservices%2Foauth2%2Ftoken")).unwrap().as_str(),
            "https://x.my.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            token_url(&form("login=custom&custom_url=javascript%3Aalert(1)")),
            Err(LoginUrlError::NotHttp)
        );
        assert_eq!(
            token_url(&form("login=custom&custom_url=not%20a%20url")),
            Err(LoginUrlError::NotAUrl)
        );
        assert_eq!(
            token_url(&form("login=other")).map_err(|e| e.to_string()),
            Err("Choose Production, Sandbox or Custom.".to_owned())
        );
    }
}
