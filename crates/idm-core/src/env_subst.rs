//! IDM property substitution: `&{env.NAME}` and `&{env.NAME|default}` inside string values,
//! and IDM's `{"$bool": …}`, `{"$int": …}`, `{"$number": …}` coercions around them.

use serde_json::{Map, Value};

/// Why a value could not be substituted; the caller adds the file and JSON path.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SubstError {
    #[error(
        "environment variable {0} is not set and the value has no default (&{{env.{0}|default}})"
    )]
    Missing(String),
    #[error("unsupported property reference `&{{{0}}}`: only &{{env.NAME}} is supported")]
    Unsupported(String),
    #[error("unterminated property reference `&{{` in {0:?}")]
    Unterminated(String),
    #[error("{kind} expects a {expected}, got {got:?}")]
    Coercion {
        kind: &'static str,
        expected: &'static str,
        got: String,
    },
}

/// Substitutes every reference in `value`, in place. `lookup` reads the environment
/// (a parameter so tests need not mutate the process environment).
/// On error, returns the JSON pointer of the offending value with the error.
pub fn substitute(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, SubstError)> {
    walk(value, lookup, &mut String::new())
}

fn walk(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
    path: &mut String,
) -> Result<(), (String, SubstError)> {
    match value {
        Value::String(s) if s.contains("&{") => {
            let replaced = substitute_str(s, lookup).map_err(|e| (pointer(path), e))?;
            *s = replaced;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                walk(item, lookup, path)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            if let Some(coerced) = coerce(map, lookup).map_err(|e| (pointer(path), e))? {
                *value = coerced;
                return Ok(());
            }
            for (key, item) in map.iter_mut() {
                let len = path.len();
                path.push('/');
                path.push_str(&key.replace('~', "~0").replace('/', "~1"));
                walk(item, lookup, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn pointer(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// `{"$bool": "&{env.X|true}"}` → `true`, and likewise `$int` and `$number`.
fn coerce(
    map: &Map<String, Value>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Value>, SubstError> {
    if map.len() != 1 {
        return Ok(None);
    }
    let Some((kind, inner)) = map.iter().next() else {
        return Ok(None);
    };
    let text = match inner {
        Value::String(s) => substitute_str(s, lookup)?,
        other => other.to_string(),
    };
    let text = text.trim();
    let bad = |kind: &'static str, expected: &'static str| SubstError::Coercion {
        kind,
        expected,
        got: text.to_owned(),
    };
    let value = match kind.as_str() {
        "$bool" => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("$bool", "true or false")),
        },
        "$int" => Value::from(
            text.parse::<i64>()
                .map_err(|_| bad("$int", "whole number"))?,
        ),
        "$number" => {
            let n: f64 = text.parse().map_err(|_| bad("$number", "number"))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| bad("$number", "finite number"))?
        }
        _ => return Ok(None),
    };
    Ok(Some(value))
}

fn substitute_str(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, SubstError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("&{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| SubstError::Unterminated(s.to_owned()))?;
        let reference = &after[..end];
        let (name, default) = match reference.split_once('|') {
            Some((name, default)) => (name, Some(default)),
            None => (reference, None),
        };
        let Some(var) = name.strip_prefix("env.") else {
            return Err(SubstError::Unsupported(reference.to_owned()));
        };
        match (lookup(var), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(SubstError::Missing(var.to_owned())),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.example".into()),
            "FLAG" => Some("false".into()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_values_defaults_and_coercions() {
        let mut v = json!({
            "a": "&{env.HOST}:5432",
            "b": ["x", "&{env.NOPE|fallback}"],
            "c": {"$bool": "&{env.FLAG}"},
            "d": {"$int": "&{env.NOPE|42}"},
            "e": "no refs"
        });
        substitute(&mut v, &env).unwrap();
        assert_eq!(
            v,
            json!({"a": "db.example:5432", "b": ["x", "fallback"], "c": false, "d": 42, "e": "no refs"})
        );
    }

    #[test]
    fn missing_variable_names_the_path_and_variable() {
        let mut v = json!({"outer": {"list": [1, "&{env.SECRET_X}"]}});
        let (path, err) = substitute(&mut v, &env).unwrap_err();
        assert_eq!(path, "/outer/list/1");
        assert_eq!(err, SubstError::Missing("SECRET_X".into()));
    }

    #[test]
    fn rejects_non_env_references_and_bad_coercions() {
        let mut v = json!({"p": "&{openidm.port.http}"});
        assert!(matches!(
            substitute(&mut v, &env),
            Err((_, SubstError::Unsupported(_)))
        ));
        let mut v = json!({"p": "&{env.HOST"});
        assert!(matches!(
            substitute(&mut v, &env),
            Err((_, SubstError::Unterminated(_)))
        ));
        let mut v = json!({"p": {"$int": "&{env.HOST}"}});
        assert!(matches!(
            substitute(&mut v, &env),
            Err((_, SubstError::Coercion { .. }))
        ));
    }
}
