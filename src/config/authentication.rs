//! The admin account (`conf/authentication.json`, `adminAccount` section).
//!
//! ```json
//! { "adminAccount": { "username": "&{env.IDM_ADMIN_USERNAME|openidm-admin}",
//!                     "password": "&{env.IDM_ADMIN_PASSWORD|openidm-admin}" } }
//! ```
//! The password may be clear text or a PHC argon2 hash (`$argon2id$…`) or a bcrypt hash (`$2b$…`).

use serde_json::Value;

use super::Invalid;

pub const DEFAULT_USERNAME: &str = "openidm-admin";
pub const DEFAULT_PASSWORD: &str = "openidm-admin";

#[derive(Clone)]
pub struct AuthConfig {
    pub username: String,
    pub password: StoredPassword,
}

/// How the admin password is stored in configuration.
#[derive(Clone)]
pub enum StoredPassword {
    Clear(String),
    Argon2(String),
    Bcrypt(String),
}

impl std::fmt::Debug for AuthConfig {
    // The password never reaches a log, even hashed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl StoredPassword {
    pub fn parse(text: &str) -> StoredPassword {
        if text.starts_with("$argon2") {
            StoredPassword::Argon2(text.to_owned())
        } else if ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            StoredPassword::Bcrypt(text.to_owned())
        } else {
            StoredPassword::Clear(text.to_owned())
        }
    }
}

impl AuthConfig {
    /// True while the shipped default password is in use (start-up warns about it).
    pub fn uses_default_password(&self) -> bool {
        matches!(&self.password, StoredPassword::Clear(p) if p == DEFAULT_PASSWORD)
    }

    /// Without a file: `IDM_ADMIN_USERNAME` / `IDM_ADMIN_PASSWORD`, else the IDM defaults.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> AuthConfig {
        AuthConfig {
            username: env("IDM_ADMIN_USERNAME").unwrap_or_else(|| DEFAULT_USERNAME.to_owned()),
            password: StoredPassword::parse(
                &env("IDM_ADMIN_PASSWORD").unwrap_or_else(|| DEFAULT_PASSWORD.to_owned()),
            ),
        }
    }

    pub fn from_json(value: &Value) -> Result<AuthConfig, Invalid> {
        let account = value.get("adminAccount").ok_or_else(|| {
            Invalid::new(
                "/adminAccount",
                "missing: the admin account section is required",
            )
        })?;
        let field = |name: &str| -> Result<String, Invalid> {
            let path = format!("/adminAccount/{name}");
            match account.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(Invalid::new(path, "must not be empty")),
                Some(_) => Err(Invalid::new(path, "must be a string")),
                None => Err(Invalid::new(path, "missing")),
            }
        };
        let password = StoredPassword::parse(&field("password")?);
        if let StoredPassword::Argon2(hash) = &password {
            argon2::PasswordHash::new(hash).map_err(|e| {
                Invalid::new(
                    "/adminAccount/password",
                    format!("not a valid argon2 hash: {e}"),
                )
            })?;
        }
        Ok(AuthConfig {
            username: field("username")?,
            password,
        })
    }
}
