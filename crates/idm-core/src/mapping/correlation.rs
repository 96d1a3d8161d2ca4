//! Correlation of an unlinked source with existing targets: `correlationQuery` yields a query
//! filter for the caller to run against the target set; `correlationScript` yields the ids.

use serde_json::Value;

use super::SyncContext;
use super::config::Mapping;
use super::error::MappingError;
use crate::filter::{self, Filter};

/// What the caller must do to find the correlated targets of one source.
#[derive(Debug, Clone, PartialEq)]
pub enum CorrelationRequest {
    /// Run this filter on the target resource (`correlationQuery` returned
    /// `{"_queryFilter": "…"}`; the same filter engine as the REST API's `_queryFilter`).
    Query(Filter),
    /// The targets' ids, as `correlationScript` returned them (`[{"_id": …}, …]`).
    Ids(Vec<String>),
}

impl Mapping {
    /// Whether the mapping correlates at all (otherwise an unlinked qualifying source is ABSENT).
    pub fn has_correlation(&self) -> bool {
        self.correlation_query.is_some() || self.correlation_script.is_some()
    }

    /// Evaluates `correlationQuery` or `correlationScript` for `source` (scope: `source`,
    /// `linkQualifier`). `Ok(None)` when the mapping has neither.
    pub fn correlate(
        &self,
        source: &Value,
        ctx: &SyncContext,
    ) -> Result<Option<CorrelationRequest>, MappingError> {
        let lq = Value::String(ctx.link_qualifier.to_owned());
        let params = [("source", Some(source)), ("linkQualifier", Some(&lq))];
        if let Some(script) = &self.correlation_query {
            let during = "correlationQuery";
            let result = script
                .eval(&params)
                .map_err(|e| MappingError::script(&self.name, during, e))?;
            let text = result
                .as_ref()
                .and_then(|v| v.get("_queryFilter"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    MappingError::bad_result(
                        &self.name,
                        during,
                        format!(
                            "expected {{\"_queryFilter\": \"…\"}}, got {}",
                            result
                                .as_ref()
                                .map_or_else(|| "undefined".to_owned(), Value::to_string)
                        ),
                    )
                })?;
            let filter = filter::parse(text)
                .map_err(|e| MappingError::bad_result(&self.name, during, e.to_string()))?;
            return Ok(Some(CorrelationRequest::Query(filter)));
        }
        if let Some(script) = &self.correlation_script {
            let during = "correlationScript";
            let result = script
                .eval(&params)
                .map_err(|e| MappingError::script(&self.name, during, e))?;
            let bad = || {
                MappingError::bad_result(
                    &self.name,
                    during,
                    "expected a list of objects with an \"_id\" string",
                )
            };
            let list = match result {
                Some(Value::Array(list)) => list,
                None | Some(Value::Null) => Vec::new(),
                Some(_) => return Err(bad()),
            };
            let ids = list
                .iter()
                .map(|e| e.get("_id").and_then(Value::as_str).map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(bad)?;
            return Ok(Some(CorrelationRequest::Ids(ids)));
        }
        Ok(None)
    }
}
