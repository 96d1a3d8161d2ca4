//! The UI's settings, from the environment (read once when the router is built).

use std::time::Duration;

use crate::credentials::settings::positive;

#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `Secure` on the session cookie over plain HTTP too (`IDM_ADMIN_SECURE_COOKIE=true`: behind
    /// a TLS-terminating proxy); requests on the HTTPS listener always get it.
    pub secure_cookie: bool,
    /// A session unused this long is gone (`IDM_ADMIN_SESSION_IDLE_MINUTES`, default 30).
    pub idle: Duration,
    /// A session this old is gone however busy (`IDM_ADMIN_SESSION_MAX_HOURS`, default 12: a
    /// working day, so a stolen cookie does not last for ever).
    pub max_age: Duration,
    /// How browsers reach this server, e.g. `https://idm.example.com` (`IDM_ADMIN_PUBLIC_URL`):
    /// the OAuth callback is `<it>/admin/oauth`. Default: the request's `Host`, over https when
    /// the request came over HTTPS or the cookie is always `Secure`, else http.
    pub public_url: Option<String>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            secure_cookie: false,
            idle: Duration::from_secs(30 * 60),
            max_age: Duration::from_secs(12 * 60 * 60),
            public_url: None,
        }
    }
}

impl AdminSettings {
    pub fn from_env() -> AdminSettings {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Unparseable values fall back to the defaults, with a warning.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> AdminSettings {
        let mut s = AdminSettings::default();
        if let Some(v) = env("IDM_ADMIN_SECURE_COOKIE") {
            match v.trim() {
                "true" | "1" | "yes" => s.secure_cookie = true,
                "false" | "0" | "no" | "" => {}
                other => tracing::warn!(
                    value = other,
                    "IDM_ADMIN_SECURE_COOKIE is not true/false; ignored"
                ),
            }
        }
        if let Some(m) = positive(env, "IDM_ADMIN_SESSION_IDLE_MINUTES") {
            s.idle = Duration::from_secs(m.saturating_mul(60));
        }
        if let Some(h) = positive(env, "IDM_ADMIN_SESSION_MAX_HOURS") {
            s.max_age = Duration::from_secs(h.saturating_mul(3600));
        }
        s.public_url = env("IDM_ADMIN_PUBLIC_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_environment() {
        let s = AdminSettings::from_lookup(&|n| match n {
            "IDM_ADMIN_SECURE_COOKIE" => Some("true".into()),
            "IDM_ADMIN_SESSION_IDLE_MINUTES" => Some("5".into()),
            "IDM_ADMIN_PUBLIC_URL" => Some("https://idm.example.com/".into()),
            "IDM_ADMIN_SESSION_MAX_HOURS" => Some("2".into()),
            _ => None,
        });
        assert_eq!(s.max_age, Duration::from_secs(7200));
        assert!(s.secure_cookie);
        assert_eq!(s.idle, Duration::from_secs(300));
        assert_eq!(s.public_url.as_deref(), Some("https://idm.example.com"));
        let d = AdminSettings::from_lookup(&|_| Some("bogus".into()));
        assert!(!d.secure_cookie);
        assert_eq!(d.idle, Duration::from_secs(1800));
        assert_eq!(d.max_age, Duration::from_secs(12 * 3600));
    }
}
