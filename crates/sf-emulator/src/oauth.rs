//! OAuth 2.0 as Salesforce serves it: `/services/oauth2/token` (refresh_token, authorization_code,
//! client_credentials), the `authorize` log-in-and-allow page, and `revoke`.
//!
//! Token answers carry `access_token`, `signature`, `scope`, `instance_url`, `id`, `token_type`,
//! `issued_at` (epoch ms as a string) and no `expires_in`; errors are HTTP 400
//! `{"error","error_description"}`. With rotation on, each refresh answer carries a new
//! `refresh_token` and the old one stops working; replaying a rotated-out token revokes its whole
//! family (Salesforce's documented reuse detection).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Form, Json};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors::OAuthError;
use super::{Shared, lock, read};

/// How long an authorization code lives (Salesforce: 15 minutes at most; the brief settles on 10).
const CODE_LIFETIME_MINUTES: i64 = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub expires_at: DateTime<Utc>,
    /// Data calls it has served.
    #[serde(default)]
    pub uses: u64,
    /// The refresh-token family it came from (None: client credentials).
    pub family: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshToken {
    pub family: u64,
}

#[derive(Debug, Clone)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    expires_at: DateTime<Utc>,
    /// The PKCE challenge the authorize request carried (RFC 7636).
    challenge: Option<Challenge>,
}

/// A PKCE code challenge and its method.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    value: String,
    s256: bool,
}

impl Challenge {
    /// The challenge of an authorize request: `None` without one; an error for a method other
    /// than `S256` or `plain` (RFC 7636: `plain` when absent).
    fn of(value: Option<&str>, method: Option<&str>) -> Result<Option<Challenge>, ()> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let s256 = match method.unwrap_or("plain") {
            "S256" => true,
            "plain" => false,
            _ => return Err(()),
        };
        Ok(Some(Challenge {
            value: value.to_owned(),
            s256,
        }))
    }

    /// Whether `verifier` answers this challenge.
    fn accepts(&self, verifier: &str) -> bool {
        use sha2::Digest;
        match self.s256 {
            true => {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sha2::Sha256::digest(verifier.as_bytes()))
                    == self.value
            }
            false => verifier == self.value,
        }
    }
}

/// Issued tokens (persisted in the state file, except authorization codes).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenStore {
    pub access: HashMap<String, AccessToken>,
    pub refresh: HashMap<String, RefreshToken>,
    /// Refresh tokens rotated out → their family, to detect replays.
    pub rotated: HashMap<String, u64>,
    pub next_family: u64,
    #[serde(skip)]
    codes: HashMap<String, AuthCode>,
}

impl TokenStore {
    /// A store where `refresh_token` (the configured one) is valid.
    pub fn with_refresh_token(refresh_token: &str) -> Self {
        let mut s = Self {
            next_family: 1,
            ..Self::default()
        };
        s.refresh
            .insert(refresh_token.to_owned(), RefreshToken { family: 0 });
        s
    }

    /// Whether `token` is live and may serve one more data call (at most `max_uses` in all,
    /// when set); counts the call if so.
    pub fn use_access(&mut self, token: &str, now: DateTime<Utc>, max_uses: Option<u64>) -> bool {
        match self.access.get_mut(token) {
            Some(t) if t.expires_at > now && max_uses.is_none_or(|max| t.uses < max) => {
                t.uses += 1;
                true
            }
            _ => false,
        }
    }

    /// Whether `token` is live, without counting a use (Pub/Sub API calls are not data calls).
    pub fn is_live(&self, token: &str, now: DateTime<Utc>, max_uses: Option<u64>) -> bool {
        self.access
            .get(token)
            .is_some_and(|t| t.expires_at > now && max_uses.is_none_or(|max| t.uses < max))
    }

    /// A copy of what is persisted (authorization codes are not: they live 10 minutes).
    pub fn persistable(&self) -> Self {
        Self {
            access: self.access.clone(),
            refresh: self.refresh.clone(),
            rotated: self.rotated.clone(),
            next_family: self.next_family,
            codes: HashMap::new(),
        }
    }

    pub fn expire_all_access(&mut self) {
        self.access.clear();
    }

    fn revoke_family(&mut self, family: u64) {
        self.refresh.retain(|_, t| t.family != family);
        self.access.retain(|_, t| t.family != Some(family));
    }
}

/// The form fields any grant may carry.
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// Client credentials from the form or from `Authorization: Basic`.
fn client_credentials(form: &TokenForm, headers: &HeaderMap) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim())
        && let Ok(text) = String::from_utf8(decoded)
        && let Some((id, secret)) = text.split_once(':')
    {
        return (Some(id.to_owned()), Some(secret.to_owned()));
    }
    (form.client_id.clone(), form.client_secret.clone())
}

fn check_client(shared: &Shared, id: Option<&str>, secret: Option<&str>) -> Result<(), OAuthError> {
    let cfg = &shared.config;
    if id != Some(cfg.consumer_key.as_str()) {
        return Err(OAuthError::BAD_CLIENT_ID);
    }
    if secret != Some(cfg.consumer_secret.as_str()) {
        return Err(OAuthError::BAD_CLIENT);
    }
    Ok(())
}

/// `POST /services/oauth2/token`.
pub async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    shared
        .stats
        .token_calls
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A body that is not a form has no grant_type, which Salesforce reports as an unsupported grant.
    let form = form.map(|f| f.0).unwrap_or_default();
    match grant(&shared, &form, &headers) {
        Ok(body) => {
            shared.mark_dirty();
            (
                StatusCode::OK,
                [(
                    header::CACHE_CONTROL,
                    "no-cache,must-revalidate,max-age=0,no-store,private",
                )],
                Json(body),
            )
                .into_response()
        }
        Err(e) => {
            if e.error == OAuthError::EXPIRED_GRANT.error {
                shared
                    .stats
                    .invalid_grants
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            e.into_response()
        }
    }
}

fn grant(
    shared: &Shared,
    form: &TokenForm,
    headers: &HeaderMap,
) -> Result<serde_json::Value, OAuthError> {
    let grant_type = form.grant_type.as_deref().unwrap_or_default();
    if !matches!(
        grant_type,
        "refresh_token" | "authorization_code" | "client_credentials"
    ) {
        return Err(OAuthError::UNSUPPORTED_GRANT);
    }
    let (id, secret) = client_credentials(form, headers);
    check_client(shared, id.as_deref(), secret.as_deref())?;
    let now = Utc::now();
    // Read the org before taking the token lock: no code path holds both locks at once.
    let (org_id, user_id) = {
        let org = read(&shared.org);
        (org.org_id.clone(), org.integration_user_id())
    };
    let mut tokens = lock(&shared.tokens);
    let (family, new_refresh, scope) = match grant_type {
        "refresh_token" => {
            let presented = form.refresh_token.as_deref().unwrap_or_default();
            if let Some(family) = tokens.rotated.get(presented).copied() {
                // Reuse of a rotated-out token: Salesforce revokes the current one and its sessions.
                tokens.revoke_family(family);
                return Err(OAuthError::EXPIRED_GRANT);
            }
            let Some(rt) = tokens.refresh.get(presented).cloned() else {
                return Err(OAuthError::EXPIRED_GRANT);
            };
            let new_refresh = if shared.config.rotate_refresh_tokens {
                let fresh = shared.random_token(64);
                tokens.refresh.remove(presented);
                tokens.rotated.insert(presented.to_owned(), rt.family);
                tokens
                    .refresh
                    .insert(fresh.clone(), RefreshToken { family: rt.family });
                Some(fresh)
            } else {
                None
            };
            (Some(rt.family), new_refresh, "refresh_token api id full")
        }
        "authorization_code" => {
            let presented = form.code.as_deref().unwrap_or_default();
            // Codes are single-use: taken out whatever happens next.
            let Some(code) = tokens.codes.remove(presented) else {
                return Err(OAuthError::BAD_CODE);
            };
            if code.expires_at <= now || Some(code.client_id.as_str()) != id.as_deref() {
                return Err(OAuthError::BAD_CODE);
            }
            if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
                return Err(OAuthError::REDIRECT_MISMATCH);
            }
            if let Some(challenge) = &code.challenge
                && !form
                    .code_verifier
                    .as_deref()
                    .is_some_and(|v| challenge.accepts(v))
            {
                return Err(OAuthError::BAD_VERIFIER);
            }
            let family = tokens.next_family;
            tokens.next_family += 1;
            let fresh = shared.random_token(64);
            tokens
                .refresh
                .insert(fresh.clone(), RefreshToken { family });
            (Some(family), Some(fresh), "refresh_token api id full")
        }
        _ => (None, None, "api id"),
    };
    let access = format!(
        "{}!{}",
        org_id.get(..15).unwrap_or(&org_id),
        shared.random_token(96)
    );
    let lifetime =
        Duration::from_std(shared.config.access_token_lifetime).unwrap_or(Duration::hours(2));
    tokens.access.insert(
        access.clone(),
        AccessToken {
            expires_at: now + lifetime,
            uses: 0,
            family,
        },
    );
    if tokens.access.len() > 10_000 {
        tokens.access.retain(|_, t| t.expires_at > now);
    }
    drop(tokens);

    let identity = format!("{}/id/{org_id}/{user_id}", shared.config.base_url);
    let issued_at = now.timestamp_millis().to_string();
    let mut body = json!({
        "access_token": access,
        "signature": signature(&shared.config.consumer_secret, &identity, &issued_at),
        "scope": scope,
        "instance_url": shared.config.base_url,
        "id": identity,
        "token_type": "Bearer",
        "issued_at": issued_at,
    });
    if let (Some(rt), Some(obj)) = (new_refresh, body.as_object_mut()) {
        obj.insert("refresh_token".to_owned(), json!(rt));
    }
    Ok(body)
}

/// Base64 HMAC-SHA256 of `id + issued_at`, keyed by the consumer secret (how Salesforce signs the
/// identity URL so a client can check it came from the token endpoint).
pub fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot happen.
        return String::new();
    };
    mac.update(id.as_bytes());
    mac.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay as they are).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect();
    format!("{uri}{sep}{}", q.join("&"))
}

/// A 302 redirect, as Salesforce's authorize endpoint answers.
fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

fn error_page(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Html(format!("<!DOCTYPE html><html><head><title>Error</title></head><body><h1>OAuth Error</h1><p>{}</p></body></html>", html_escape(message))),
    )
        .into_response()
}

/// `GET /services/oauth2/authorize`: the log-in-and-allow page of the web-server flow.
pub async fn authorize_page(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    if p.client_id.as_deref() != Some(shared.config.consumer_key.as_str()) {
        return error_page("error=invalid_client_id: client identifier invalid");
    }
    let Some(redirect_uri) = p.redirect_uri.as_deref().filter(|r| !r.is_empty()) else {
        return error_page("error=redirect_uri_missing: redirect_uri must match configuration");
    };
    let state = p.state.as_deref().unwrap_or_default();
    if p.response_type.as_deref() != Some("code") {
        let mut params = vec![
            ("error", "unsupported_response_type"),
            ("error_description", "response type not supported"),
        ];
        if !state.is_empty() {
            params.push(("state", state));
        }
        return found(&with_query(redirect_uri, &params));
    }
    if Challenge::of(
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    )
    .is_err()
    {
        let mut params = vec![
            ("error", "invalid_request"),
            ("error_description", "unsupported code_challenge_method"),
        ];
        if !state.is_empty() {
            params.push(("state", state));
        }
        return found(&with_query(redirect_uri, &params));
    }
    let username = {
        let org = read(&shared.org);
        org.users
            .first()
            .and_then(|r| r[super::schema::idx::USERNAME].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            html_escape(value)
        )
    };
    let page = format!(
        "<!DOCTYPE html><html><head><title>Login | Salesforce emulator</title></head><body>\
<h1>Log in and allow access</h1>\
<form method=\"post\" action=\"/services/oauth2/authorize\">\
{}{}{}{}{}{}\
<label>Username <input name=\"username\" value=\"{}\"></label>\
<label>Password <input name=\"password\" type=\"password\"></label>\
<p>The connected app <b>{}</b> asks for: {}</p>\
<button name=\"action\" value=\"allow\">Allow</button> <button name=\"action\" value=\"deny\">Deny</button>\
</form></body></html>",
        hidden("client_id", p.client_id.as_deref().unwrap_or_default()),
        hidden("redirect_uri", redirect_uri),
        hidden("state", state),
        hidden("scope", p.scope.as_deref().unwrap_or("api refresh_token")),
        hidden(
            "code_challenge",
            p.code_challenge.as_deref().unwrap_or_default()
        ),
        hidden(
            "code_challenge_method",
            p.code_challenge_method.as_deref().unwrap_or_default()
        ),
        html_escape(&username),
        html_escape(&shared.config.consumer_key),
        html_escape(p.scope.as_deref().unwrap_or("api refresh_token")),
    );
    Html(page).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeForm {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    username: Option<String>,
    action: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// `POST /services/oauth2/authorize`: the submitted page. "allow" with the username of an active
/// user redirects to `redirect_uri?code=…&state=…` (the password is not checked: the emulator has
/// none); "deny" redirects with `error=access_denied`.
pub async fn authorize_submit(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<AuthorizeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = form.map(|f| f.0).unwrap_or_default();
    if f.client_id.as_deref() != Some(shared.config.consumer_key.as_str()) {
        return error_page("error=invalid_client_id: client identifier invalid");
    }
    let Some(redirect_uri) = f.redirect_uri.filter(|r| !r.is_empty()) else {
        return error_page("error=redirect_uri_missing: redirect_uri must match configuration");
    };
    let state = f.state.unwrap_or_default();
    let mut params: Vec<(&str, &str)> = Vec::new();
    let code;
    if f.action.as_deref() == Some("deny") {
        params.push(("error", "access_denied"));
        params.push(("error_description", "end-user denied authorization"));
    } else {
        let username_ok = {
            let org = read(&shared.org);
            f.username
                .as_deref()
                .and_then(|u| org.find_username(u))
                .and_then(|i| org.users.get(i))
                .is_some_and(|r| r[super::schema::idx::IS_ACTIVE] == super::schema::Val::Bool(true))
        };
        if !username_ok {
            return (
                StatusCode::UNAUTHORIZED,
                Html("<!DOCTYPE html><html><body><p>Please check your username and password. If you still can't log in, contact your Salesforce administrator.</p></body></html>"),
            )
                .into_response();
        }
        let Ok(challenge) = Challenge::of(
            f.code_challenge.as_deref(),
            f.code_challenge_method.as_deref(),
        ) else {
            return error_page("error=invalid_request: unsupported code_challenge_method");
        };
        code = shared.random_token(80);
        lock(&shared.tokens).codes.insert(
            code.clone(),
            AuthCode {
                client_id: shared.config.consumer_key.clone(),
                redirect_uri: redirect_uri.clone(),
                expires_at: Utc::now() + Duration::minutes(CODE_LIFETIME_MINUTES),
                challenge,
            },
        );
        params.push(("code", &code));
    }
    if !state.is_empty() {
        params.push(("state", &state));
    }
    found(&with_query(&redirect_uri, &params))
}

#[derive(Debug, Default, Deserialize)]
pub struct RevokeForm {
    token: Option<String>,
}

fn revoke_token(shared: &Shared, token: &str) -> Response {
    let mut tokens = lock(&shared.tokens);
    let found = if let Some(rt) = tokens.refresh.get(token).cloned() {
        // A refresh token takes its access tokens with it.
        tokens.revoke_family(rt.family);
        true
    } else {
        tokens.access.remove(token).is_some()
    };
    drop(tokens);
    if found {
        shared.mark_dirty();
        StatusCode::OK.into_response()
    } else {
        OAuthError::INVALID_TOKEN.into_response()
    }
}

/// `POST /services/oauth2/revoke` (form `token=`).
pub async fn revoke_post(
    State(shared): State<Arc<Shared>>,
    form: Result<Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let token = form.ok().and_then(|f| f.0.token).unwrap_or_default();
    revoke_token(&shared, &token)
}

/// `GET /services/oauth2/revoke?token=` (Salesforce accepts both).
pub async fn revoke_get(
    State(shared): State<Arc<Shared>>,
    Query(f): Query<RevokeForm>,
) -> Response {
    revoke_token(&shared, f.token.as_deref().unwrap_or_default())
}

/// The token of an `Authorization: Bearer …` (or legacy `OAuth …`) header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("OAuth "))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pkce_challenge_accepts_its_verifier_only() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let s256 = Challenge::of(Some(challenge), Some("S256"))
            .unwrap()
            .unwrap();
        assert!(s256.accepts(verifier));
        assert!(!s256.accepts(challenge));
        let plain = Challenge::of(Some("abc"), None).unwrap().unwrap();
        assert!(plain.accepts("abc") && !plain.accepts("abd"));
        assert!(Challenge::of(Some("abc"), Some("S512")).is_err());
        assert_eq!(Challenge::of(None, Some("S256")), Ok(None));
    }

    use super::*;

    #[test]
    fn signature_is_base64_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature("Jefe", "what do ya want ", "for nothing?");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .unwrap();
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn redirect_query_is_encoded() {
        assert_eq!(
            with_query("http://x/cb", &[("code", "a b"), ("state", "s&t")]),
            "http://x/cb?code=a%20b&state=s%26t"
        );
        assert_eq!(
            with_query("http://x/cb?y=1", &[("code", "c")]),
            "http://x/cb?y=1&code=c"
        );
    }
}
