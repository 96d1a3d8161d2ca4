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
use crate::salesforce::access::is_access_attribute;
use crate::salesforce::access_read::AccessRead;
use crate::salesforce::soql::{self as sf, is_field_name};
use crate::salesforce::soql_filter::{TranslateError, where_clause};

const ALWAYS: &[&str] = &["Id", "IsActive", "LastModifiedDate", "Username", "Email"];

/// The first segment of each of `paths` and the `_fields` of `query`: the names a query over
/// users must select (a script reading another field needs it listed in `_fields`: scripts
/// cannot be inspected for the fields they read).
pub fn named_fields<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    query: Option<&'a Value>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = paths
        .into_iter()
        .filter_map(|p| p.trim_start_matches('/').split('/').next())
        .collect();
    if let Some(list) = query.and_then(|q| q.get("_fields")).and_then(Value::as_str) {
        out.extend(list.split(',').map(str::trim));
    }
    out
}

/// `always`, then each of `names` that is a `User` field (grants are not), then what reading
/// the grants `access` asks for needs; without repeats, whatever their case.
pub fn select_list(always: &[&str], names: &[&str], access: AccessRead) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let fields = names
        .iter()
        .filter(|n| is_field_name(n) && !is_access_attribute(n));
    for name in always.iter().chain(fields).chain(&access.select_items()) {
        if !out.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            out.push((*name).to_owned());
        }
    }
    out
}

/// The names the mapping's properties and the `sourceQuery`'s `_fields` read.
fn read_names<'a>(mapping: &'a Mapping, source_query: Option<&'a Value>) -> Vec<&'a str> {
    named_fields(
        mapping
            .properties
            .iter()
            .filter_map(|p| p.source.as_deref()),
        source_query,
    )
}

/// The grants the mapping reads (attributes that are not `User` fields).
pub fn access(mapping: &Mapping, source_query: Option<&Value>) -> AccessRead {
    AccessRead::of(read_names(mapping, source_query))
}

/// The select list of the source query: fields, then what reading the grants needs.
pub fn fields(mapping: &Mapping, source_query: Option<&Value>) -> Vec<String> {
    let names = read_names(mapping, source_query);
    select_list(ALWAYS, &names, AccessRead::of(names.iter().copied()))
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

/// A query of users for a run and how its pages' grants are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSoql {
    pub text: String,
    pub access: AccessRead,
    /// Pages come in id order from an unfiltered query: a page's memberships are one query
    /// over its range of ids, which holds no user of another page.
    pub ranged: bool,
}

impl UserSoql {
    /// `text` (a query's select list and object) completed by `filter` and, when
    /// memberships are read, an order by id.
    pub fn finish(
        mut text: String,
        access: AccessRead,
        filter: Option<&Value>,
    ) -> Result<UserSoql, QueryError> {
        let mut filtered = false;
        if let Some(filter) = query_filter(filter)? {
            if let Some(clause) = where_clause(&filter)? {
                text.push_str(" WHERE ");
                text.push_str(&clause);
                filtered = true;
            }
        }
        if access.memberships {
            text.push_str(" ORDER BY Id");
        }
        Ok(UserSoql {
            text,
            access,
            ranged: access.memberships && !filtered,
        })
    }
}

/// `SELECT … FROM User [WHERE …]` for a whole run, or for one id (`reconById`).
pub fn build(
    mapping: &Mapping,
    source_query: Option<&Value>,
    source_id: Option<&str>,
) -> Result<UserSoql, QueryError> {
    let access = access(mapping, source_query);
    let mut soql = format!(
        "SELECT {} FROM User",
        fields(mapping, source_query).join(", ")
    );
    let built = |text: String, ranged: bool| UserSoql {
        text,
        access,
        ranged,
    };
    if let Some(id) = source_id {
        if !(id.len() == 15 || id.len() == 18) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(QueryError::NotAnId(id.to_owned()));
        }
        soql.push_str(" WHERE ");
        soql.push_str(&sf::equals("Id", id));
        return Ok(built(soql, false));
    }
    UserSoql::finish(soql, access, source_query)
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
