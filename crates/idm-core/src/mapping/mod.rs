//! The mapping engine: `conf/sync.json` as IDM defines it, with no database and no network.
//!
//! The recon engine and the outbound worker gather facts (objects, links, correlation query
//! results) and call this module to decide: does an object qualify ([`Mapping::source_qualifies`],
//! [`Mapping::target_qualifies`]), which situation it is in ([`situation`]), what to do about it
//! ([`Mapping::decide`]), what the target should look like ([`Mapping::map_object`]), what an
//! outbound UPDATE must send ([`Mapping::delta`]), and how to correlate an unlinked source
//! ([`Mapping::correlate`]). One file per responsibility:
//!
//! | file | what |
//! |---|---|
//! | `config.rs` | the sync.json model, defaults, load-time validation |
//! | `script.rs` | the embedded JavaScript engine (QuickJS) |
//! | `condition.rs` | conditions: query filter or script |
//! | `qualify.rs` | validSource, validTarget, sourceCondition |
//! | `properties.rs` | property mapping and the outbound delta |
//! | `situation.rs` | the 13 situations and their assessment |
//! | `policy.rs` | situation → action, policy conditions, postAction |
//! | `action.rs` | the actions |
//! | `correlation.rs` | correlationQuery / correlationScript |
//! | `hooks.rs` | onCreate, onUpdate, onDelete, onLink, onUnlink, result |
//! | `error.rs` | per-object errors |
//! | `well_formed.rs` | script results made valid Unicode (lone UTF-16 surrogates) |

pub mod action;
pub mod condition;
pub mod config;
pub mod correlation;
pub mod error;
pub mod hooks;
pub mod policy;
pub mod properties;
pub mod qualify;
pub mod script;
pub mod situation;
pub mod well_formed;

use serde_json::Value;

pub use action::Action;
pub use condition::Condition;
pub use config::{
    DEFAULT_LINK_QUALIFIER, LoadOptions, Mapping, Policy, PolicyAction, PropertyMapping, SyncConfig,
};
pub use correlation::CorrelationRequest;
pub use error::MappingError;
pub use hooks::{Event, Hooks};
pub use policy::{Decision, PolicyScope};
pub use properties::MappedObject;
pub use script::{Script, ScriptEngine, ScriptError};
pub use situation::{
    Correlation, DeletedSourceFacts, LinkState, LinkedSource, Situation, SourceFacts,
    assess_deleted_source, assess_source, assess_target,
};

/// What every evaluation may see besides the objects themselves.
#[derive(Debug, Clone, Copy)]
pub struct SyncContext<'a> {
    /// Bound as `linkQualifier`; idm-sync supports only `"default"`.
    pub link_qualifier: &'a str,
    /// The source before the change that triggered an implicit sync (bound as `oldSource`).
    pub old_source: Option<&'a Value>,
}

impl Default for SyncContext<'_> {
    fn default() -> Self {
        SyncContext {
            link_qualifier: DEFAULT_LINK_QUALIFIER,
            old_source: None,
        }
    }
}
