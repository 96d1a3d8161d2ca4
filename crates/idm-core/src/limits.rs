//! The bounds every request is held to (invariant 9), in one place. Each kind of input is
//! checked once, where it enters: request bodies in `api::body`, URLs in `api::url_guard`,
//! stored objects in `managed::service` (whatever wrote them: a body, a patch, a recon),
//! patches in `managed::patch`, query pages in `api::stream`. A refusal names the limit.
//!
//! The JSON walks below use an explicit stack, never recursion: they run on values that are
//! being checked precisely because they may be too deep.

use serde_json::{Map, Value};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Deepest nesting of objects and arrays in a body or a stored object (a managed user is
/// three or four levels deep; serde_json alone would stop at 128).
pub const MAX_JSON_DEPTH: usize = 32;
/// Largest stored object, as compact JSON. Checked on every write, so a patch that copies an
/// object into itself is refused before it grows.
pub const MAX_OBJECT_BYTES: usize = 1024 * 1024;
/// Most operations in one PATCH body.
pub const MAX_PATCH_OPERATIONS: usize = 100;
/// Most tokens in a patch's JSON pointer (`/a/b/c` has three).
pub const MAX_POINTER_TOKENS: usize = 16;
/// Most `_sortKeys` in one query.
pub const MAX_SORT_KEYS: usize = 8;
/// Rows read per round trip when a query's results are streamed: the memory of one query
/// answer is at most this many rows, whatever `_pageSize` says.
pub const QUERY_CHUNK_ROWS: u32 = 1_000;

/// Why a JSON value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{what} is nested deeper than the limit of {max} levels")]
    TooDeep { what: &'static str, max: usize },
    #[error("{what} is larger than the limit of {max} bytes")]
    TooLarge { what: &'static str, max: usize },
    /// PostgreSQL cannot store U+0000 in text or JSON.
    #[error("{field} contains a NUL character (U+0000), which cannot be stored")]
    Nul { field: String },
}

impl LimitError {
    /// Whether the refusal is about size (HTTP 413) rather than shape (HTTP 400).
    pub fn is_size(&self) -> bool {
        matches!(self, LimitError::TooLarge { .. })
    }
}

/// The checks every stored object passes: depth, then size, then no NUL characters.
pub fn check_object(object: &Map<String, Value>) -> Result<(), LimitError> {
    let what = "the object";
    // The object's own braces are its first level.
    for value in object.values() {
        check_depth_from(value, 1, what, MAX_JSON_DEPTH)?;
    }
    let mut budget = MAX_OBJECT_BYTES.checked_sub(object_overhead(object));
    for value in object.values() {
        budget = budget.and_then(|left| compact_len_within(value, left).map(|used| left - used));
    }
    if budget.is_none() {
        return Err(LimitError::TooLarge {
            what,
            max: MAX_OBJECT_BYTES,
        });
    }
    for (key, value) in object {
        let path = format!("/{}", escape_token(key));
        if key.contains('\0') {
            return Err(nul_at(&path));
        }
        check_no_nul_at(value, path)?;
    }
    Ok(())
}

/// Refuses `value` when its objects and arrays nest deeper than `max` (a scalar is depth 0).
pub fn check_depth(value: &Value, what: &'static str, max: usize) -> Result<(), LimitError> {
    check_depth_from(value, 0, what, max)
}

fn check_depth_from(
    value: &Value,
    start: usize,
    what: &'static str,
    max: usize,
) -> Result<(), LimitError> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, start)];
    while let Some((v, depth)) = stack.pop() {
        let is_container = matches!(v, Value::Object(_) | Value::Array(_));
        if is_container && depth >= max {
            return Err(LimitError::TooDeep { what, max });
        }
        match v {
            Value::Object(map) => stack.extend(map.values().map(|c| (c, depth + 1))),
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// `value`'s length as compact JSON, if it is at most `budget` bytes. Stops counting as soon
/// as it knows, so a huge value costs no more than the budget to refuse.
pub fn compact_len_within(value: &Value, budget: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        total += match v {
            Value::Null => 4,
            Value::Bool(b) => 4 + usize::from(!b),
            Value::Number(n) => n.to_string().len(),
            Value::String(s) => string_len(s),
            Value::Array(items) => {
                stack.extend(items.iter());
                2 + items.len().saturating_sub(1)
            }
            Value::Object(map) => {
                stack.extend(map.values());
                object_overhead(map)
            }
        };
        if total > budget {
            return None;
        }
    }
    Some(total)
}

/// Braces, commas, and per key its quoted text and a colon.
fn object_overhead(map: &Map<String, Value>) -> usize {
    2 + map.len().saturating_sub(1) + map.keys().map(|k| string_len(k) + 1).sum::<usize>()
}

/// A JSON string's length with quotes, counting escapes as serde_json writes them.
fn string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// The first string (a value or a key) holding U+0000, named by its JSON pointer.
pub fn check_no_nul(value: &Value) -> Result<(), LimitError> {
    check_no_nul_at(value, String::new())
}

fn check_no_nul_at(value: &Value, root: String) -> Result<(), LimitError> {
    let mut stack: Vec<(&Value, String)> = vec![(value, root)];
    while let Some((v, path)) = stack.pop() {
        match v {
            Value::String(s) if s.contains('\0') => return Err(nul_at(&path)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((item, format!("{path}/{i}")));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    let child = format!("{path}/{}", escape_token(key));
                    if key.contains('\0') {
                        return Err(nul_at(&child));
                    }
                    stack.push((item, child));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn escape_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn nul_at(path: &str) -> LimitError {
    LimitError::Nul {
        field: if path.is_empty() {
            "the value".to_owned()
        } else {
            // A key with NUL is shown escaped, so the message itself stays printable.
            format!("field {}", path.replace('\0', "\\u0000"))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!({ "a": v });
        }
        v
    }

    #[test]
    fn depth_counts_containers() {
        assert!(check_depth(&json!(1), "x", 0).is_ok());
        assert!(check_depth(&json!({"a": 1}), "x", 0).is_err());
        assert!(check_depth(&nested(32), "x", 32).is_ok());
        assert_eq!(
            check_depth(&nested(33), "the body", 32),
            Err(LimitError::TooDeep {
                what: "the body",
                max: 32
            })
        );
        assert!(check_depth(&json!([[[[]]]]), "x", 4).is_ok());
        assert!(check_depth(&json!([[[[[]]]]]), "x", 4).is_err());
    }

    #[test]
    fn compact_length_matches_serde_json() {
        let samples = [
            json!(null),
            json!(true),
            json!(false),
            json!(-12.5),
            json!("a\"b\\c\n\u{1}é😀"),
            json!([]),
            json!({}),
            json!({"sn": "Doe", "roles": ["a", "b"], "n": {"x": [1, 2, {"y~/": null}]}}),
        ];
        for v in samples {
            let len = serde_json::to_string(&v).unwrap().len();
            assert_eq!(compact_len_within(&v, len), Some(len), "{v}");
            assert_eq!(compact_len_within(&v, len - 1), None, "{v}");
        }
    }

    #[test]
    fn nul_is_found_in_values_and_keys_with_its_path() {
        assert!(check_no_nul(&json!({"a": ["x", "y"]})).is_ok());
        assert_eq!(
            check_no_nul(&json!({"name": {"given": ["x", "a\u{0}b"]}})),
            Err(LimitError::Nul {
                field: "field /name/given/1".into()
            })
        );
        assert_eq!(
            check_no_nul(&json!({"a/\u{0}": 1})),
            Err(LimitError::Nul {
                field: "field /a~1\\u0000".into()
            })
        );
        assert!(check_no_nul(&json!("\u{0}")).is_err());
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn objects_are_checked_for_all_three() {
        assert!(check_object(&object(json!({"userName": "a"}))).is_ok());
        assert!(check_object(&object(nested(32))).is_ok());
        let deep = check_object(&object(nested(33))).unwrap_err();
        assert!(deep.to_string().contains("32 levels"), "{deep}");
        let at_limit = "y".repeat(MAX_OBJECT_BYTES - r#"{"x":""}"#.len());
        assert!(check_object(&object(json!({ "x": at_limit }))).is_ok());
        let over = "y".repeat(MAX_OBJECT_BYTES - r#"{"x":""}"#.len() + 1);
        assert!(
            check_object(&object(json!({ "x": over })))
                .unwrap_err()
                .is_size()
        );
        assert_eq!(
            check_object(&object(json!({"a": {"b": "\u{0}"}}))),
            Err(LimitError::Nul {
                field: "field /a/b".into()
            })
        );
        assert!(matches!(
            check_object(&object(json!({"\u{0}": 1}))),
            Err(LimitError::Nul { .. })
        ));
    }
}
