//! Errors that fail one object's synchronization (never the whole run).

use super::script::ScriptError;

/// Why mapping one object failed. The caller records it (audit status FAILURE, the message)
/// and goes on with the next object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MappingError {
    /// A script threw or timed out. `during` says which one (`property "Alias" transform`).
    #[error("mapping {mapping}: {during}: {source}")]
    Script {
        mapping: String,
        during: String,
        #[source]
        source: ScriptError,
    },
    /// A script ran but yielded something unusable (validSource not a boolean, an unknown
    /// action name, a correlation query without `_queryFilter`, ...).
    #[error("mapping {mapping}: {during}: {message}")]
    BadResult {
        mapping: String,
        during: String,
        message: String,
    },
}

impl MappingError {
    pub(crate) fn script(mapping: &str, during: impl Into<String>, source: ScriptError) -> Self {
        MappingError::Script {
            mapping: mapping.to_owned(),
            during: during.into(),
            source,
        }
    }

    pub(crate) fn bad_result(
        mapping: &str,
        during: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        MappingError::BadResult {
            mapping: mapping.to_owned(),
            during: during.into(),
            message: message.into(),
        }
    }
}
