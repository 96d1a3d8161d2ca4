//! Whether objects qualify for a mapping: `validSource`, `sourceCondition`, `validTarget`.

use serde_json::Value;

use super::SyncContext;
use super::config::Mapping;
use super::error::MappingError;
use super::script::Script;

impl Mapping {
    /// `validSource` (scope: `source`, `linkQualifier`) and then `sourceCondition` (a filter
    /// over `{"source": …, "linkQualifier": …}`, or a script with those variables). Absent
    /// ones hold. A script error fails this one object.
    pub fn source_qualifies(
        &self,
        source: &Value,
        ctx: &SyncContext,
    ) -> Result<bool, MappingError> {
        let lq = Value::String(ctx.link_qualifier.to_owned());
        if let Some(script) = &self.valid_source {
            let params = [("source", Some(source)), ("linkQualifier", Some(&lq))];
            if !self.boolean(script, "validSource", &params)? {
                return Ok(false);
            }
        }
        if let Some(condition) = &self.source_condition {
            let params = [("source", Some(source)), ("linkQualifier", Some(&lq))];
            return condition
                .holds(&params)
                .map_err(|e| MappingError::script(&self.name, "sourceCondition", e));
        }
        Ok(true)
    }

    /// `validTarget`, with `target` and `linkQualifier` in scope, and nothing else.
    ///
    /// IDM binds only these two (`SyncOperation.isTargetValid`). The IDM sample's own
    /// `validTarget` reads `source.Email`, so under IDM it throws for every target it is
    /// asked about; idm-sync does the same, faithfully: `source` is not bound, the script
    /// fails with `ReferenceError: source is not defined`, and that one target's
    /// synchronization fails with that message (the run goes on). The shipped
    /// `conf/sync.json` therefore tests `target.mail` instead.
    pub fn target_qualifies(
        &self,
        target: &Value,
        ctx: &SyncContext,
    ) -> Result<bool, MappingError> {
        let Some(script) = &self.valid_target else {
            return Ok(true);
        };
        let lq = Value::String(ctx.link_qualifier.to_owned());
        self.boolean(
            script,
            "validTarget",
            &[("target", Some(target)), ("linkQualifier", Some(&lq))],
        )
    }

    /// Runs a script that must yield a boolean (IDM: "Expecting boolean value").
    fn boolean(
        &self,
        script: &Script,
        during: &str,
        params: &[(&str, Option<&Value>)],
    ) -> Result<bool, MappingError> {
        match script.eval(params) {
            Ok(Some(Value::Bool(b))) => Ok(b),
            Ok(other) => Err(MappingError::bad_result(
                &self.name,
                during,
                format!(
                    "expected true or false, got {}",
                    other.map_or_else(|| "undefined".to_owned(), |v| v.to_string())
                ),
            )),
            Err(e) => Err(MappingError::script(&self.name, during, e)),
        }
    }
}
