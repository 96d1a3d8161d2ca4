//! `idm-sync salesforce authorize`: the OAuth web-server flow for a new org, so that an operator
//! never copies tokens by hand.
//!
//! 1. [`AuthorizeFlow::start`] binds `127.0.0.1:<port>` (before the URL is shown, so the redirect
//!    cannot arrive at a closed port) and builds the authorize URL on `loginUrl`'s host, with a
//!    random `state`.
//! 2. The operator opens the URL, logs in to Salesforce and allows access; Salesforce redirects the
//!    browser to `http://localhost:<port>/callback?code=…&state=…`. Salesforce's documentation
//!    asks for an HTTPS (or custom-scheme) callback, while local tools commonly register
//!    `http://localhost:<port>` ones; a loopback IP literal is less established there.
//! 3. [`AuthorizeFlow::finish`] answers that request: it checks `state` (a request without the
//!    right one is refused and the flow keeps waiting: it may be forged), exchanges the code once,
//!    and the client stores the refresh token and instance URL durably. It gives up after the
//!    timeout.
//!
//! Neither the code nor any token is ever printed or logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use reqwest::Url;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::salesforce::{
    ClientConfig, SalesforceClient, SalesforceError, Secret, TokenStore, authorize_url,
    pkce_verifier,
};

/// The default time an operator has to log in and allow access.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    #[error(
        "clientId and clientSecret must be set in provisioner.openicf-salesforce.json (SF_CLIENT_ID and SF_CLIENT_SECRET with the shipped file): they are the connected app's consumer key and secret"
    )]
    MissingCredentials,
    #[error("cannot listen for the OAuth callback on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("authorization was refused in Salesforce: {error} ({description})")]
    Denied { error: String, description: String },
    #[error(
        "no authorization arrived within {} seconds: open the URL, log in and allow access, or run the command again",
        .0.as_secs()
    )]
    TimedOut(Duration),
    #[error("the code exchange failed: {0}")]
    Exchange(#[from] SalesforceError),
}

/// What the operator is told on success (no token in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    pub instance_url: Option<String>,
    pub identity_url: Option<String>,
}

/// A started flow: the callback port is bound and the URL is ready to be opened.
pub struct AuthorizeFlow {
    client: SalesforceClient,
    listener: TcpListener,
    redirect_uri: String,
    state: String,
    /// This authorization's PKCE verifier (its challenge is in `url`).
    verifier: Secret,
    url: Url,
}

impl AuthorizeFlow {
    /// Binds the callback port (0 picks a free one: tests) and builds the authorize URL.
    pub async fn start(
        config: ClientConfig,
        store: TokenStore,
        callback_port: u16,
    ) -> Result<AuthorizeFlow, AuthorizeError> {
        if config.client_id.is_empty() || config.client_secret.expose().is_empty() {
            return Err(AuthorizeError::MissingCredentials);
        }
        let addr = format!("127.0.0.1:{callback_port}");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| AuthorizeError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| AuthorizeError::Listen { addr, source })?
            .port();
        // A browser that tries `localhost` on ::1 first falls back to 127.0.0.1 when refused.
        let redirect_uri = format!("http://localhost:{port}/callback");
        // 122 random bits: the browser's redirect must prove it follows the URL we printed.
        let state = uuid::Uuid::new_v4().simple().to_string();
        let verifier = pkce_verifier();
        let url = authorize_url(&config, &redirect_uri, &state, &verifier)?;
        let client = SalesforceClient::new(config, store)?;
        Ok(AuthorizeFlow {
            client,
            listener,
            redirect_uri,
            state,
            verifier,
            url,
        })
    }

    /// The URL to open in a browser.
    pub fn authorize_url(&self) -> &Url {
        &self.url
    }

    /// The callback URL, which the connected app must list among its callback URLs.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Serves the callback until one authorization completes (or is refused), or `timeout`.
    pub async fn finish(self, timeout: Duration) -> Result<Authorized, AuthorizeError> {
        let (done_tx, done_rx) = oneshot::channel();
        let shared = Arc::new(Callback {
            client: self.client,
            redirect_uri: self.redirect_uri,
            state: self.state,
            verifier: self.verifier,
            done: Mutex::new(Some(done_tx)),
        });
        let app = Router::new()
            .route("/callback", get(callback))
            .with_state(shared);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .into_future(),
        );
        let outcome = match tokio::time::timeout(timeout, done_rx).await {
            Ok(Ok(outcome)) => outcome,
            // The sender lives in the server's state: it cannot drop before an answer.
            Ok(Err(_)) => Err(AuthorizeError::TimedOut(timeout)),
            Err(_) => Err(AuthorizeError::TimedOut(timeout)),
        };
        let _ = stop_tx.send(());
        // The outcome stands either way: a token exchanged is stored, whatever the server does next.
        if let Ok(Err(e)) = server.await {
            tracing::warn!(error = %e, "the OAuth callback server ended with an error");
        }
        outcome
    }
}

/// The whole command: prints the URL, waits for the callback, prints the outcome (stdout is for
/// the operator; nothing secret is in it).
pub async fn run(
    config: ClientConfig,
    store: TokenStore,
    callback_port: u16,
    timeout: Duration,
) -> Result<Authorized, AuthorizeError> {
    let flow = AuthorizeFlow::start(config, store, callback_port).await?;
    println!(
        "The connected app must list this callback URL: {}",
        flow.redirect_uri()
    );
    println!("Open this URL in a browser, log in to Salesforce and allow access:\n");
    println!("  {}\n", flow.authorize_url());
    println!(
        "Waiting up to {} seconds for the authorization...",
        timeout.as_secs()
    );
    let done = flow.finish(timeout).await?;
    println!(
        "Authorized. The refresh token is stored in the database; instance: {}",
        done.instance_url.as_deref().unwrap_or("(none reported)")
    );
    Ok(done)
}

struct Callback {
    client: SalesforceClient,
    redirect_uri: String,
    state: String,
    verifier: Secret,
    done: Mutex<Option<oneshot::Sender<Result<Authorized, AuthorizeError>>>>,
}

impl Callback {
    /// The one-time right to finish the flow: the first valid callback takes it.
    fn take(&self) -> Option<oneshot::Sender<Result<Authorized, AuthorizeError>>> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

async fn callback(
    State(cb): State<Arc<Callback>>,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Html<String>) {
    let state_ok = q
        .get("state")
        .is_some_and(|s| subtle::ConstantTimeEq::ct_eq(s.as_bytes(), cb.state.as_bytes()).into());
    if !state_ok {
        tracing::warn!("OAuth callback with a missing or wrong state ignored");
        return page(
            StatusCode::BAD_REQUEST,
            "This request does not come from the authorization started by idm-sync (wrong state); it was ignored.",
        );
    }
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").cloned().unwrap_or_default();
        let message = format!("Authorization refused: {error} ({description}).");
        if let Some(done) = cb.take() {
            let _ = done.send(Err(AuthorizeError::Denied {
                error: error.clone(),
                description,
            }));
        }
        return page(StatusCode::BAD_REQUEST, &message);
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return page(StatusCode::BAD_REQUEST, "The callback carries no code.");
    };
    let Some(done) = cb.take() else {
        return page(
            StatusCode::CONFLICT,
            "This authorization was already handled.",
        );
    };
    match cb
        .client
        .authorize_with_code(code, &cb.redirect_uri, &cb.verifier)
        .await
    {
        Ok(grant) => {
            let _ = done.send(Ok(Authorized {
                instance_url: grant.instance_url.clone(),
                identity_url: grant.identity_url.clone(),
            }));
            page(
                StatusCode::OK,
                "idm-sync is authorized: the refresh token is stored. You can close this window.",
            )
        }
        Err(e) => {
            let message = format!("The code exchange failed: {e}");
            let _ = done.send(Err(AuthorizeError::Exchange(e)));
            page(StatusCode::BAD_GATEWAY, &message)
        }
    }
}

fn page(status: StatusCode, message: &str) -> (StatusCode, Html<String>) {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    (
        status,
        Html(format!(
            "<!DOCTYPE html><html><head><title>idm-sync</title></head><body><p>{escaped}</p></body></html>"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::Secret;

    fn config(secret: &str) -> ClientConfig {
        ClientConfig::new(
            Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            "key",
            Secret::new(secret),
            None,
        )
    }

    #[tokio::test]
    async fn missing_credentials_are_reported_before_anything_listens() {
        let e = AuthorizeFlow::start(config(""), TokenStore::in_memory(), 0)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, AuthorizeError::MissingCredentials));
    }

    #[tokio::test]
    async fn the_url_carries_the_callback_and_a_random_state() {
        let a = AuthorizeFlow::start(config("s3cret"), TokenStore::in_memory(), 0)
            .await
            .unwrap();
        let b = AuthorizeFlow::start(config("s3cret"), TokenStore::in_memory(), 0)
            .await
            .unwrap();
        let q: HashMap<_, _> = a.authorize_url().query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], a.redirect_uri());
        assert!(a.redirect_uri().starts_with("http://localhost:"));
        assert!(a.redirect_uri().ends_with("/callback"));
        assert_eq!(a.authorize_url().host_str(), Some("login.salesforce.com"));
        assert_ne!(a.state, b.state);
        assert!(!a.authorize_url().as_str().contains("s3cret"));
    }

    #[tokio::test]
    async fn it_times_out_with_a_clear_message() {
        let flow = AuthorizeFlow::start(config("s"), TokenStore::in_memory(), 0)
            .await
            .unwrap();
        let e = flow.finish(Duration::from_millis(50)).await.unwrap_err();
        assert!(matches!(e, AuthorizeError::TimedOut(_)));
        assert!(e.to_string().contains("no authorization arrived"));
    }
}
