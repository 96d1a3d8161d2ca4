//! The source phase's SOQL: the fields the mapping needs, and the `sourceQuery`'s
//! `_queryFilter` as a `WHERE` clause (translated by `salesforce::soql_filter`).
//!
//! Selected fields: `Id`, `IsActive`, `LastModifiedDate`, `Username`, `Email` (the sample's
//! correlation and validSource read the last two), every property's `source`, and the
//! `_fields` of the `sourceQuery` (a script reading another field needs it listed there:
//! scripts cannot be inspected for the fields they read).

use serde_json::Value;

use crate::filter::{self, Filter};
use crate::mapping::Mapping;
use crate::salesforce::soql::{self as sf, is_field_name};
use crate::salesforce::soql_filter::{TranslateError, where_clause};

const ALWAYS: &[&str] = &["Id", "IsActive", "LastModifiedDate", "Username", "Email"];

/// The field list of the source query.
pub fn fields(mapping: &Mapping, source_query: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = ALWAYS.iter().map(|s| (*s).to_owned()).collect();
    let mut add = |name: &str| {
        if is_field_name(name) && !out.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            out.push(name.to_owned());
        }
    };
    for p in &mapping.properties {
        if let Some(source) = p.source.as_deref() {
            if let Some(first) = source.trim_start_matches('/').split('/').next() {
                add(first);
            }
        }
    }
    if let Some(list) = source_query
        .and_then(|q| q.get("_fields"))
        .and_then(Value::as_str)
    {
        for f in list.split(',') {
            add(f.trim());
        }
    }
    out
}

/// Why a `sourceQuery`/`targetQuery` or a `reconById` id cannot be run: the request's mistake.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("a query must be a JSON object like {{\"_queryFilter\": \"true\"}}")]
    NotAnObject,
    #[error("unsupported query parameter {0:?} (only _queryFilter and _fields are supported)")]
    Unsupported(String),
    #[error("_queryFilter must be a string")]
    FilterNotAString,
    #[error("_queryFilter {text:?}: {source}")]
    Filter {
        text: String,
        #[source]
        source: filter::FilterError,
    },
    #[error(transparent)]
    Translate(#[from] TranslateError),
    #[error("{0:?} is not a Salesforce id")]
    NotAnId(String),
}

/// `SELECT … FROM User [WHERE …]` for a whole run, or for one id (`reconById`).
pub fn build(
    mapping: &Mapping,
    source_query: Option<&Value>,
    source_id: Option<&str>,
) -> Result<String, QueryError> {
    let mut soql = format!(
        "SELECT {} FROM User",
        fields(mapping, source_query).join(", ")
    );
    if let Some(id) = source_id {
        if !(id.len() == 15 || id.len() == 18) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(QueryError::NotAnId(id.to_owned()));
        }
        soql.push_str(" WHERE ");
        soql.push_str(&sf::equals("Id", id));
        return Ok(soql);
    }
    if let Some(filter) = query_filter(source_query)? {
        if let Some(clause) = where_clause(&filter)? {
            soql.push_str(" WHERE ");
            soql.push_str(&clause);
        }
    }
    Ok(soql)
}

/// The `_queryFilter` text of a query as a run's parameters show it (`"true"` without one).
pub fn filter_text(query: Option<&Value>) -> Value {
    query
        .and_then(|q| q.get("_queryFilter"))
        .cloned()
        .unwrap_or(Value::from("true"))
}

/// The `_queryFilter` of a `sourceQuery`/`targetQuery` (`{"_queryFilter": "…"}`), parsed.
/// Other query forms (`_queryId`, `_queryExpression`) are refused.
pub fn query_filter(query: Option<&Value>) -> Result<Option<Filter>, QueryError> {
    let Some(query) = query else { return Ok(None) };
    let Some(obj) = query.as_object() else {
        return Err(QueryError::NotAnObject);
    };
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "_queryFilter" | "_fields" | "resourceName"))
    {
        return Err(QueryError::Unsupported(key.clone()));
    }
    match obj.get("_queryFilter") {
        None => Ok(None),
        Some(Value::String(text)) => {
            filter::parse(text)
                .map(Some)
                .map_err(|source| QueryError::Filter {
                    text: text.clone(),
                    source,
                })
        }
        Some(_) => Err(QueryError::FilterNotAString),
    }
}
