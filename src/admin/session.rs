//! Log-in sessions, stored in Postgres so every `serve` replica knows them.
//!
//! The cookie holds a random token (two v4 UUIDs: 244 random bits); the table keeps only its
//! SHA-256, so a copy of the table opens no session. The cookie is `HttpOnly; SameSite=Strict;
//! Path=/admin` (+ `Secure` when configured). A session unused for the idle time is gone, and so
//! is one older than its absolute lifetime or created under another admin credential (the
//! password changed); its `last_seen` is written at most once a minute. Every session has its own CSRF token, put in
//! every form; [`require_session`] checks it on every POST before any handler runs, so no
//! handler can forget to.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::repo::Pool;
use crate::repo::RepoError;
use crate::repo::admin_sessions::{self, Liveness};

use super::AdminState;
use super::form::FormData;
use super::html;
use super::settings::AdminSettings;
use super::signed_in::AdminSession;
use crate::tls::OverTls;

pub const COOKIE: &str = "idm_admin_session";

/// Largest form the UI accepts.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A fresh random token (hex).
pub fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What makes a session live here: the settings' idle time and lifetime, and the running
/// admin credential.
fn liveness<'a>(settings: &AdminSettings, credential: &'a str) -> Liveness<'a> {
    Liveness {
        idle: settings.idle,
        max_age: settings.max_age,
        credential,
    }
}

/// Creates a session under the admin credential `credential` (its fingerprint); returns the
/// cookie token. Expired sessions are purged on the way.
pub async fn create(
    pool: &Pool,
    settings: &AdminSettings,
    credential: &str,
    username: &str,
) -> Result<String, RepoError> {
    admin_sessions::purge_expired(pool, settings.idle, settings.max_age).await?;
    let token = random_token();
    admin_sessions::insert(pool, &hash(&token), username, &random_token(), credential).await?;
    Ok(token)
}

/// The live session of a cookie token, touching `last_seen` when a minute old.
pub async fn lookup(
    pool: &Pool,
    settings: &AdminSettings,
    credential: &str,
    token: &str,
) -> Result<Option<AdminSession>, RepoError> {
    let id = hash(token);
    let Some(row) = admin_sessions::find_live(pool, &id, liveness(settings, credential)).await?
    else {
        return Ok(None);
    };
    if row.stale {
        admin_sessions::touch(pool, &id).await?;
    }
    Ok(Some(AdminSession {
        id,
        username: row.username,
        csrf_token: row.csrf_token,
    }))
}

/// Whether session `id` is live (the OAuth callback's check).
pub async fn is_live(
    pool: &Pool,
    settings: &AdminSettings,
    credential: &str,
    id: &str,
) -> Result<bool, RepoError> {
    admin_sessions::is_live(pool, id, liveness(settings, credential)).await
}

pub async fn delete(pool: &Pool, id: &str) -> Result<(), RepoError> {
    admin_sessions::delete(pool, id).await
}

/// The session cookie's token in a request, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a new session (`Some`) or removing it (`None`); `Secure` when configured
/// or when the request came over HTTPS.
pub fn set_cookie(settings: &AdminSettings, token: Option<&str>, over_tls: bool) -> HeaderValue {
    let secure = if settings.secure_cookie || over_tls {
        "; Secure"
    } else {
        ""
    };
    let text = match token {
        Some(t) => format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/admin{secure}"),
        None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/admin; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `303` to the log-in page.
pub fn to_login() -> Response {
    html::see_other("/admin/login")
}

/// Middleware of every page but the log-in page: no live session → the log-in page; a POST
/// whose `csrf` field is not the session's → 403, and the handler never runs.
pub async fn require_session(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = cookie_token(request.headers()) else {
        return to_login();
    };
    let over_tls = request.extensions().get::<OverTls>().is_some();
    let pool = state.app.managed.pool();
    let credential = state.app.auth.credential_fingerprint();
    let session = match lookup(pool, &state.settings, credential, &token).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let mut res = to_login();
            res.headers_mut().insert(
                header::SET_COOKIE,
                set_cookie(&state.settings, None, over_tls),
            );
            return res;
        }
        Err(e) => return super::error::AdminError::from(e).into_response(),
    };
    let mut request = request;
    if request.method() == Method::POST {
        let (parts, body) = request.into_parts();
        let bytes: Bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return html::bare_page(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Form too large",
                    html! { p { "The form was too large." } },
                );
            }
        };
        let form = FormData::parse(&bytes);
        if !csrf_matches(form.get("csrf"), &session.csrf_token) {
            tracing::warn!(path = %parts.uri.path(), "admin UI POST refused: missing or wrong CSRF token");
            return html::bare_page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                html! {
                    p #error {
                        "This form is out of date or did not come from this site. Nothing was changed. "
                        a href="/admin" { "Reload" }
                        " and try again."
                    }
                },
            );
        }
        // Refused here, for every form at once: no handler gets to store what Postgres cannot.
        if let Some(field) = form.field_with_nul() {
            return html::bare_page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                html! {
                    p #error {
                        "The field " (field.replace('\0', "\\0"))
                        " contains a NUL character, which cannot be stored. Nothing was changed."
                    }
                },
            );
        }
        request = Request::from_parts(parts, Body::from(bytes));
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

fn csrf_matches(given: Option<&str>, expected: &str) -> bool {
    match given {
        Some(g) if !expected.is_empty() => g.as_bytes().ct_eq(expected.as_bytes()).into(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cookie_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; idm_admin_session=tok; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("tok"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("idm_admin_session="),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn cookie_attributes() {
        let mut s = AdminSettings::default();
        let c = set_cookie(&s, Some("t"), false);
        assert_eq!(
            c.to_str().unwrap(),
            "idm_admin_session=t; HttpOnly; SameSite=Strict; Path=/admin"
        );
        s.secure_cookie = true;
        assert!(
            set_cookie(&s, Some("t"), false)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert!(
            set_cookie(&s, None, false)
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn csrf_needs_the_exact_token() {
        assert!(csrf_matches(Some("abc"), "abc"));
        assert!(!csrf_matches(Some("abd"), "abc"));
        assert!(!csrf_matches(None, "abc"));
        assert!(!csrf_matches(Some(""), ""));
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 64);
    }
}
