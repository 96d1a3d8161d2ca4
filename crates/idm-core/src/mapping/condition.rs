//! Conditions: a query filter string (IDM `_queryFilter` syntax) or a script.
//!
//! Used by property mappings, policies and `sourceCondition`. Both kinds see the same
//! parameters: a filter is evaluated against them as one JSON object (so a property condition
//! reads `/object/accountStatus` or `/linkQualifier`), a script gets each as a variable.
//! A script condition holds only when it yields exactly `true`, as in IDM.

use serde_json::{Map, Value};

use super::script::{Script, ScriptError};
use crate::filter::Filter;

#[derive(Debug)]
pub enum Condition {
    Filter(Filter),
    Script(Script),
}

impl Condition {
    /// Evaluates the condition with `params` (variable name → value; `None` binds `null` for a
    /// script and leaves the field out for a filter).
    pub fn holds(&self, params: &[(&str, Option<&Value>)]) -> Result<bool, ScriptError> {
        match self {
            Condition::Filter(filter) => {
                let object: Map<String, Value> = params
                    .iter()
                    .filter_map(|(name, value)| value.map(|v| ((*name).to_owned(), v.clone())))
                    .collect();
                Ok(filter.matches(&Value::Object(object)))
            }
            Condition::Script(script) => Ok(script.eval(params)? == Some(Value::Bool(true))),
        }
    }
}
