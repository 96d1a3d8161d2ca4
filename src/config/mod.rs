//! `conf/` loading: IDM file formats, `&{env.X}` substitution, validation with clear errors.
//! Every error names the file, the JSON path and what is wrong.

pub mod authentication;
pub mod env_subst;
pub mod managed;
pub mod provisioner;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use authentication::AuthConfig;
pub use managed::ManagedConfig;
pub use provisioner::ProvisionerConfig;

/// The whole configuration directory, parsed and validated.
#[derive(Debug, Clone)]
pub struct Conf {
    pub dir: PathBuf,
    pub managed: ManagedConfig,
    pub auth: AuthConfig,
    /// `provisioner.openicf-salesforce.json`, when the directory has one.
    pub salesforce: Option<ProvisionerConfig>,
}

impl Conf {
    /// Loads `managed.json`, `authentication.json` and (if present) the Salesforce provisioner from `dir`, substituting from the process environment.
    pub fn load(dir: &Path) -> Result<Conf, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::load_with(dir, &env)
    }

    /// As [`Conf::load`], with an explicit environment lookup.
    pub fn load_with(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Conf, ConfigError> {
        let managed_file = ConfFile::read(&dir.join("managed.json"), env)?;
        let managed = ManagedConfig::from_json(&managed_file.value)
            .map_err(|e| managed_file.invalid(e.path, e.message))?;
        let auth_path = dir.join("authentication.json");
        let auth = if auth_path.exists() {
            let auth_file = ConfFile::read(&auth_path, env)?;
            AuthConfig::from_json(&auth_file.value)
                .map_err(|e| auth_file.invalid(e.path, e.message))?
        } else {
            AuthConfig::from_env(env)
        };
        let salesforce_path = dir.join(provisioner::SALESFORCE_FILE);
        let salesforce = if salesforce_path.exists() {
            let file = ConfFile::read(&salesforce_path, env)?;
            Some(
                ProvisionerConfig::from_json("salesforce", &file.value)
                    .map_err(|e| file.invalid(e.path, e.message))?,
            )
        } else {
            None
        };
        Ok(Conf {
            dir: dir.to_owned(),
            managed,
            auth,
            salesforce,
        })
    }
}

/// One configuration file after JSON parsing and substitution.
pub struct ConfFile {
    pub path: PathBuf,
    pub value: Value,
}

impl ConfFile {
    pub fn read(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConfFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: path.to_owned(),
            source,
        })?;
        let mut value: Value = serde_json::from_str(&text).map_err(|e| ConfigError::Syntax {
            file: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        env_subst::substitute(&mut value, env).map_err(|(json_path, e)| ConfigError::Invalid {
            file: path.to_owned(),
            json_path,
            message: e.to_string(),
        })?;
        Ok(ConfFile {
            path: path.to_owned(),
            value,
        })
    }

    pub fn invalid(&self, json_path: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.path.clone(),
            json_path,
            message,
        }
    }
}

/// A problem found while validating a parsed file, before the file name is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub path: String,
    pub message: String,
}

impl Invalid {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}: not valid JSON: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {json_path}: {message}", file.display())]
    Invalid {
        file: PathBuf,
        json_path: String,
        message: String,
    },
}
