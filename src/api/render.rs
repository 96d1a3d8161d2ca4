//! Objects as IDM returns them: `_id` and `_rev` first, private properties left out,
//! `_fields` applied; and the JSON response with `_prettyPrint`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::config::managed::ManagedObjectConfig;
use crate::filter::Pointer;
use crate::repo::managed::StoredObject;

/// The `_fields` selection: `None` is every field.
pub struct Fields(Option<Vec<Pointer>>);

impl Fields {
    pub fn parse(param: Option<&str>) -> Result<Fields, ApiError> {
        let Some(text) = param.map(str::trim).filter(|t| !t.is_empty() && *t != "*") else {
            return Ok(Fields(None));
        };
        let mut pointers = Vec::new();
        for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if field == "*" || field == "/*" {
                return Ok(Fields(None));
            }
            pointers.push(Pointer::parse(field).map_err(|e| {
                ApiError::bad_request(format!("_fields: {field:?} is not a valid field: {e}"))
            })?);
        }
        Ok(Fields(Some(pointers)))
    }
}

pub fn object(object: &StoredObject, schema: &ManagedObjectConfig, fields: &Fields) -> Value {
    let mut out = Map::with_capacity(object.body.len() + 2);
    out.insert("_id".into(), Value::from(object.id.clone()));
    out.insert("_rev".into(), Value::from(object.rev.to_string()));
    let visible = |name: &str| schema.property(name).is_none_or(|p| !p.private);
    match &fields.0 {
        None => {
            for (k, v) in &object.body {
                if visible(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Some(pointers) => {
            for pointer in pointers {
                let tokens = pointer.tokens();
                let Some(first) = tokens.first() else {
                    continue;
                };
                if first == "_id" || first == "_rev" || !visible(first) {
                    continue;
                }
                if let Some(v) = lookup(&object.body, tokens) {
                    place(&mut out, tokens, v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

fn lookup<'a>(body: &'a Map<String, Value>, tokens: &[String]) -> Option<&'a Value> {
    let (first, rest) = tokens.split_first()?;
    rest.iter().try_fold(body.get(first)?, |cur, t| match cur {
        Value::Object(m) => m.get(t),
        Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn place(out: &mut Map<String, Value>, tokens: &[String], value: Value) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut cur = out;
    for t in parents {
        let entry = cur
            .entry(t.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        cur = next;
    }
    cur.insert(last.clone(), value);
}

/// A JSON response, indented when the client asked for `_prettyPrint=true`.
pub fn json(status: StatusCode, body: &Value, pretty: bool) -> Response {
    let text = if pretty {
        serde_json::to_string_pretty(body)
    } else {
        serde_json::to_string(body)
    };
    match text {
        Ok(text) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=UTF-8"),
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// `ETag: "<rev>"`.
pub fn etag(rev: i64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{rev}\""))
}
