//! The source phase's SOQL: the fields the mapping needs, and a `_queryFilter` translated to a
//! `WHERE` clause.
//!
//! Selected fields: `Id`, `IsActive`, `LastModifiedDate`, `Username`, `Email` (the sample's
//! correlation and validSource read the last two), every property's `source`, and the
//! `_fields` of the `sourceQuery` (a script reading another field needs it listed there:
//! scripts cannot be inspected for the fields they read).
//!
//! Filters: `eq`, `co`, `sw`, `lt`, `le`, `gt`, `ge`, `pr`, `and`, `or`, `!`, `true`, `false` on
//! top-level fields. As in SOQL, text comparisons are case-insensitive (IDM's are not): the
//! difference is documented, not hidden.

use serde_json::Value;

use crate::filter::{self, CompareOp, Filter, Literal};
use crate::mapping::Mapping;

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

fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `SELECT … FROM User [WHERE …]` for a whole run, or for one id (`reconById`).
pub fn build(
    mapping: &Mapping,
    source_query: Option<&Value>,
    source_id: Option<&str>,
) -> Result<String, String> {
    let mut soql = format!(
        "SELECT {} FROM User",
        fields(mapping, source_query).join(", ")
    );
    if let Some(id) = source_id {
        if !(id.len() == 15 || id.len() == 18) || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{id:?} is not a Salesforce id"));
        }
        soql.push_str(&format!(" WHERE Id = '{id}'"));
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

/// The `_queryFilter` of a `sourceQuery`/`targetQuery` (`{"_queryFilter": "…"}`), parsed.
/// Other query forms (`_queryId`, `_queryExpression`) are refused.
pub fn query_filter(query: Option<&Value>) -> Result<Option<Filter>, String> {
    let Some(query) = query else { return Ok(None) };
    let Some(obj) = query.as_object() else {
        return Err("a query must be a JSON object like {\"_queryFilter\": \"true\"}".into());
    };
    for key in obj.keys() {
        if !matches!(key.as_str(), "_queryFilter" | "_fields" | "resourceName") {
            return Err(format!(
                "unsupported query parameter {key:?} (only _queryFilter and _fields are supported)"
            ));
        }
    }
    match obj.get("_queryFilter") {
        None => Ok(None),
        Some(Value::String(text)) => filter::parse(text)
            .map(Some)
            .map_err(|e| format!("_queryFilter {text:?}: {e}")),
        Some(_) => Err("_queryFilter must be a string".into()),
    }
}

/// A SOQL condition equivalent to `filter`; `None` for `true`.
pub fn where_clause(filter: &Filter) -> Result<Option<String>, String> {
    if *filter == Filter::True {
        return Ok(None);
    }
    let mut out = String::new();
    push(&mut out, filter)?;
    Ok(Some(out))
}

fn push(out: &mut String, filter: &Filter) -> Result<(), String> {
    match filter {
        Filter::True => out.push_str("Id != null"),
        Filter::False => out.push_str("Id = null"),
        Filter::Not(inner) => {
            out.push_str("(NOT ");
            push(out, inner)?;
            out.push(')');
        }
        Filter::And(parts) | Filter::Or(parts) => {
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            if parts.is_empty() {
                return push(
                    out,
                    if matches!(filter, Filter::And(_)) {
                        &Filter::True
                    } else {
                        &Filter::False
                    },
                );
            }
            out.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(joiner);
                }
                push(out, p)?;
            }
            out.push(')');
        }
        Filter::Present(field) => {
            out.push_str(&format!("{} != null", field_name(field.tokens())?));
        }
        Filter::Compare { field, op, value } => {
            let name = field_name(field.tokens())?;
            let literal = match value {
                Literal::String(s) => s.clone(),
                Literal::Number(n) => n.to_string(),
                Literal::Bool(b) => b.to_string(),
            };
            let quoted = |s: &str| format!("'{}'", escape(s));
            let value_sql = match value {
                Literal::String(s) => quoted(s),
                _ => literal.clone(),
            };
            let text = match op {
                CompareOp::Eq => format!("{name} = {value_sql}"),
                CompareOp::Lt => format!("{name} < {value_sql}"),
                CompareOp::Le => format!("{name} <= {value_sql}"),
                CompareOp::Gt => format!("{name} > {value_sql}"),
                CompareOp::Ge => format!("{name} >= {value_sql}"),
                CompareOp::Co => format!("{name} LIKE '%{}%'", like_escape(&literal)),
                CompareOp::Sw => format!("{name} LIKE '{}%'", like_escape(&literal)),
            };
            out.push_str(&text);
        }
    }
    Ok(())
}

fn field_name(tokens: &[String]) -> Result<&str, String> {
    match tokens {
        [name] if name == "_id" => Ok("Id"),
        [name] if is_field_name(name) => Ok(name),
        _ => Err(format!(
            "field /{} cannot be queried in Salesforce (only top-level fields)",
            tokens.join("/")
        )),
    }
}

/// SOQL string literal escaping.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// LIKE patterns also escape their wildcards.
fn like_escape(s: &str) -> String {
    escape(s).replace('%', "\\%").replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soql(text: &str) -> String {
        where_clause(&filter::parse(text).unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn translates_filters() {
        assert_eq!(soql("Username eq \"a'b\""), "Username = 'a\\'b'");
        assert_eq!(
            soql("IsActive eq true and Email sw \"x_\""),
            "(IsActive = true AND Email LIKE 'x\\_%')"
        );
        assert_eq!(soql("!(Email pr)"), "(NOT Email != null)");
        assert_eq!(where_clause(&Filter::True).unwrap(), None);
        assert!(where_clause(&filter::parse("/a/b eq 1").unwrap()).is_err());
    }
}
