//! Authentication of every request but the ping: `X-OpenIDM-Username`/`X-OpenIDM-Password`
//! headers or HTTP Basic, against the configured admin account. Passwords are compared in
//! constant time; a hashed password (argon2, bcrypt) is verified once and then remembered.

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use crate::config::authentication::{AuthConfig, StoredPassword};

pub struct Authenticator {
    config: AuthConfig,
    /// The last password that verified against a hash, so each request does not pay
    /// for a deliberately slow hash.
    verified: Mutex<Option<Vec<u8>>>,
}

impl Authenticator {
    pub fn new(config: AuthConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            verified: Mutex::new(None),
        })
    }

    pub async fn check(&self, username: &str, password: &str) -> bool {
        let user_ok: bool = username
            .as_bytes()
            .ct_eq(self.config.username.as_bytes())
            .into();
        let password_ok = match &self.config.password {
            StoredPassword::Clear(expected) => {
                password.as_bytes().ct_eq(expected.as_bytes()).into()
            }
            StoredPassword::Argon2(hash) | StoredPassword::Bcrypt(hash) => {
                if self.is_remembered(password) {
                    true
                } else {
                    let ok = verify_hash(&self.config.password, hash, password).await;
                    if ok {
                        if let Ok(mut slot) = self.verified.lock() {
                            *slot = Some(password.as_bytes().to_vec());
                        }
                    }
                    ok
                }
            }
        };
        user_ok & password_ok
    }

    fn is_remembered(&self, password: &str) -> bool {
        self.verified
            .lock()
            .ok()
            .and_then(|slot| {
                slot.as_ref()
                    .map(|p| p.as_slice().ct_eq(password.as_bytes()).into())
            })
            .unwrap_or(false)
    }
}

async fn verify_hash(kind: &StoredPassword, hash: &str, password: &str) -> bool {
    let (hash, password) = (hash.to_owned(), password.to_owned());
    let is_argon2 = matches!(kind, StoredPassword::Argon2(_));
    tokio::task::spawn_blocking(move || {
        if is_argon2 {
            crate::managed::hashing::verify(&password, &hash)
        } else {
            bcrypt::verify(&password, &hash).unwrap_or(false)
        }
    })
    .await
    .unwrap_or(false)
}

/// The credentials a request carries, if any.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if let (Some(user), Some(password)) =
        (header("x-openidm-username"), header("x-openidm-password"))
    {
        return Some((user, password));
    }
    let basic = header("authorization")?;
    let encoded = basic
        .strip_prefix("Basic ")
        .or_else(|| basic.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Middleware: 401 in IDM's shape unless the request authenticates.
pub async fn require_auth(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    match credentials(request.headers()) {
        Some((user, password)) if auth.check(&user, &password).await => next.run(request).await,
        _ => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(password: &str) -> Arc<Authenticator> {
        Authenticator::new(AuthConfig {
            username: "admin".into(),
            password: StoredPassword::parse(password),
        })
    }

    #[tokio::test]
    async fn clear_and_hashed_passwords() {
        assert!(auth("secret").check("admin", "secret").await);
        assert!(!auth("secret").check("admin", "secreT").await);
        assert!(!auth("secret").check("root", "secret").await);

        let argon = crate::managed::hashing::hash("s3cret").unwrap();
        let a = auth(&argon);
        assert!(!a.check("admin", "wrong").await);
        assert!(a.check("admin", "s3cret").await);
        assert!(a.check("admin", "s3cret").await, "remembered");
        assert!(!a.check("admin", "wrong").await);

        let bc = bcrypt::hash("bpass", 4).unwrap();
        assert!(auth(&bc).check("admin", "bpass").await);
        assert!(!auth(&bc).check("admin", "nope").await);
    }

    #[test]
    fn reads_headers_and_basic() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic YWRtaW46cGE6c3M=".parse().unwrap());
        assert_eq!(credentials(&h), Some(("admin".into(), "pa:ss".into())));
        h.insert("x-openidm-username", "u".parse().unwrap());
        h.insert("x-openidm-password", "p".parse().unwrap());
        assert_eq!(credentials(&h), Some(("u".into(), "p".into())));
    }
}
