//! A configuration file of `conf/` (IDM's JSON formats): read, parsed, `&{env.X}`
//! substituted, and the errors that name the file, the JSON path and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::env_subst;

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
