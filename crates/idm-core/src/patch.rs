//! IDM/CREST patch operations on a managed object: `add`, `remove`, `replace`, `increment`,
//! `move`, `copy`, addressed by JSON pointers (`/roles/-` appends to an array).
//!
//! A patch is bounded before and while it runs: at most [`MAX_PATCH_OPERATIONS`] operations,
//! pointers of at most [`MAX_POINTER_TOKENS`] tokens, and no operation may put a value deeper
//! than [`MAX_JSON_DEPTH`] or grow the object past [`MAX_OBJECT_BYTES`], so a patch that
//! copies an object into itself again and again stops at the limit instead of at the end of
//! memory.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::limits::{
    self, LimitError, MAX_JSON_DEPTH, MAX_OBJECT_BYTES, MAX_PATCH_OPERATIONS, MAX_POINTER_TOKENS,
};

/// One element of a PATCH body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOperation {
    pub operation: String,
    pub field: String,
    /// `Some(Value::Null)` for an explicit `"value": null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    #[serde(default)]
    pub from: Option<String>,
}

impl PatchOperation {
    /// `replace` of `field` (a JSON pointer such as `/sn`) with `value`.
    pub fn replace(field: impl Into<String>, value: Value) -> PatchOperation {
        PatchOperation {
            operation: "replace".into(),
            field: field.into(),
            value: Some(value),
            from: None,
        }
    }
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error(
        "patch operation {index}: unknown operation {name:?} (supported: add, remove, replace, increment, move, copy)"
    )]
    UnknownOperation { index: usize, name: String },
    #[error("patch operation {index}: {message}")]
    Invalid { index: usize, message: String },
    #[error("a patch has at most {max} operations; this one has {count}")]
    TooManyOperations { count: usize, max: usize },
    #[error("patch operation {index}: {source}")]
    Limit {
        index: usize,
        #[source]
        source: LimitError,
    },
}

impl PatchError {
    /// Whether the patch was refused for the size of what it produces (HTTP 413).
    pub fn is_size(&self) -> bool {
        matches!(self, PatchError::Limit { source, .. } if source.is_size())
    }
}

/// Applies `operations` in order to `object` (the properties, without `_id`/`_rev`).
/// Either all apply or the object is left untouched.
pub fn apply(
    object: &Map<String, Value>,
    operations: &[PatchOperation],
) -> Result<Map<String, Value>, PatchError> {
    if operations.len() > MAX_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            count: operations.len(),
            max: MAX_PATCH_OPERATIONS,
        });
    }
    let mut root = Value::Object(object.clone());
    // An upper bound of the object's size: what it was plus everything added since the last
    // exact count. Recounted only when the bound passes the limit, so checking stays linear.
    let mut size_bound = 0;
    for (index, op) in operations.iter().enumerate() {
        let fail = |error: OpError| match error {
            OpError::Unknown => PatchError::UnknownOperation {
                index,
                name: op.operation.clone(),
            },
            OpError::Invalid(message) => PatchError::Invalid { index, message },
            OpError::Pointer(e) => PatchError::Invalid {
                index,
                message: e.to_string(),
            },
            OpError::Limit(source) => PatchError::Limit { index, source },
        };
        size_bound += apply_one(&mut root, op).map_err(fail)?;
        if index == 0 || size_bound > MAX_OBJECT_BYTES {
            size_bound = limits::compact_len_within(&root, MAX_OBJECT_BYTES)
                .ok_or_else(|| fail(OpError::Limit(too_large())))?;
        }
    }
    match root {
        Value::Object(map) => Ok(map),
        _ => Err(PatchError::Invalid {
            index: operations.len().saturating_sub(1),
            message: "the object root cannot be replaced by a non-object".into(),
        }),
    }
}

enum OpError {
    Unknown,
    Invalid(String),
    Pointer(PointerError),
    Limit(LimitError),
}

/// Why a pointer does not address a place in the object.
#[derive(Debug, thiserror::Error)]
enum PointerError {
    #[error("field must name a property, not the whole object")]
    WholeObject,
    #[error(
        "pointer {} has {tokens} tokens; the limit is {MAX_POINTER_TOKENS}",
        truncated(.field)
    )]
    TooLong { field: String, tokens: usize },
    #[error("{token:?} is not an array index")]
    NotAnIndex { token: String },
    #[error("array index {index} is out of range")]
    OutOfRange { index: usize },
    #[error("cannot descend into {token:?}: not an object or array")]
    NotAContainer { token: String },
}

fn too_large() -> LimitError {
    LimitError::TooLarge {
        what: "the patched object",
        max: MAX_OBJECT_BYTES,
    }
}

/// The value an operation puts at `path`, if it fits there; returns its compact size.
fn fits(value: &Value, path: &[String]) -> Result<usize, OpError> {
    limits::check_depth(
        value,
        "the patched object",
        MAX_JSON_DEPTH.saturating_sub(path.len()),
    )
    .map_err(|_| {
        OpError::Limit(LimitError::TooDeep {
            what: "the patched object",
            max: MAX_JSON_DEPTH,
        })
    })?;
    limits::compact_len_within(value, MAX_OBJECT_BYTES).ok_or(OpError::Limit(too_large()))
}

impl From<PointerError> for OpError {
    fn from(e: PointerError) -> Self {
        OpError::Pointer(e)
    }
}

/// Applies one operation; returns the size of the value it put in (0 when it only removed).
fn apply_one(root: &mut Value, op: &PatchOperation) -> Result<usize, OpError> {
    let path = parse_pointer(&op.field)?;
    if let Some(first) = path.first() {
        if first == "_id" || first == "_rev" {
            return Err(OpError::Invalid(format!(
                "field {} cannot be patched",
                op.field
            )));
        }
    }
    let value = || -> Result<Value, OpError> {
        op.value.clone().ok_or_else(|| {
            OpError::Invalid(format!("{} of {} needs a value", op.operation, op.field))
        })
    };
    match op.operation.as_str() {
        "add" => {
            let v = value()?;
            let size = fits(&v, &path)?;
            add(root, &path, v).map(|()| size)
        }
        "replace" => {
            let v = value()?;
            if v.is_null() {
                remove_at(root, &path);
                Ok(0)
            } else {
                let size = fits(&v, &path)?;
                set(root, &path, v).map(|()| size)
            }
        }
        "remove" => {
            remove(root, &path, op.value.as_ref());
            Ok(0)
        }
        "increment" => increment(root, &path, &value()?, &op.field).map(|()| 0),
        "move" | "copy" => {
            let from = op.from.as_deref().ok_or_else(|| {
                OpError::Invalid(format!("{} needs a \"from\" pointer", op.operation))
            })?;
            let from_path = parse_pointer(from)?;
            let found = get(root, &from_path)
                .cloned()
                .ok_or_else(|| OpError::Invalid(format!("\"from\" field {from} does not exist")))?;
            let size = fits(&found, &path)?;
            if op.operation == "move" {
                remove_at(root, &from_path);
            }
            set(root, &path, found).map(|()| size)
        }
        _ => Err(OpError::Unknown),
    }
}

/// Decodes a JSON pointer (the leading `/` is optional, as IDM accepts `userName`).
fn parse_pointer(field: &str) -> Result<Vec<String>, PointerError> {
    let trimmed = field.strip_prefix('/').unwrap_or(field);
    if trimmed.is_empty() {
        return Err(PointerError::WholeObject);
    }
    let tokens = trimmed.split('/').count();
    if tokens > MAX_POINTER_TOKENS {
        return Err(PointerError::TooLong {
            field: field.to_owned(),
            tokens,
        });
    }
    Ok(trimmed
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// A pointer as quoted in a message: long hostile ones are cut.
fn truncated(field: &str) -> String {
    match field.char_indices().nth(64) {
        Some((at, _)) => format!("{:?}…", &field[..at]),
        None => format!("{field:?}"),
    }
}

/// The token a write lands on; a pointer always has one (`parse_pointer` refuses the root).
fn last_token(path: &[String]) -> Result<&String, OpError> {
    path.last()
        .ok_or_else(|| OpError::Invalid("field must name a property, not the whole object".into()))
}

fn get<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |cur, token| match cur {
        Value::Object(map) => map.get(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// The container that holds the last token, creating intermediate objects.
fn parent_mut<'a>(root: &'a mut Value, path: &[String]) -> Result<&'a mut Value, PointerError> {
    let parents = path.split_last().map_or(&[][..], |(_, parents)| parents);
    let mut cur = root;
    for token in parents {
        cur = match cur {
            Value::Object(map) => map
                .entry(token.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => {
                let i: usize = token.parse().map_err(|_| PointerError::NotAnIndex {
                    token: token.clone(),
                })?;
                items
                    .get_mut(i)
                    .ok_or(PointerError::OutOfRange { index: i })?
            }
            _ => {
                return Err(PointerError::NotAContainer {
                    token: token.clone(),
                });
            }
        };
        if cur.is_null() {
            *cur = Value::Object(Map::new());
        }
    }
    Ok(cur)
}

fn set(root: &mut Value, path: &[String], value: Value) -> Result<(), OpError> {
    let last = last_token(path)?;
    match parent_mut(root, path)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let i = array_index(last, items.len() + 1)?;
            match items.get_mut(i) {
                Some(item) => *item = value,
                None => items.push(value),
            }
            Ok(())
        }
        _ => Err(OpError::Invalid(format!(
            "cannot set {last:?}: parent is not an object or array"
        ))),
    }
}

/// CREST `add`: on an existing array, appends (every item when the value is an array);
/// `/field/-` appends one item; `/field/N` inserts; otherwise sets the field.
fn add(root: &mut Value, path: &[String], value: Value) -> Result<(), OpError> {
    let last = last_token(path)?;
    match parent_mut(root, path)? {
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let i = array_index(last, items.len() + 1)?;
                items.insert(i.min(items.len()), value);
            }
            Ok(())
        }
        Value::Object(map) => {
            match map.get_mut(last) {
                Some(Value::Array(items)) => match value {
                    Value::Array(more) => items.extend(more),
                    single => items.push(single),
                },
                _ => {
                    map.insert(last.clone(), value);
                }
            }
            Ok(())
        }
        _ => Err(OpError::Invalid(format!(
            "cannot add {last:?}: parent is not an object or array"
        ))),
    }
}

/// CREST `remove`: without a value removes the field; with a value removes matching array
/// items, or the field when its single value equals it. Removing what is absent is a no-op.
fn remove(root: &mut Value, path: &[String], value: Option<&Value>) {
    let Some(value) = value else {
        remove_at(root, path);
        return;
    };
    let Ok(parent) = parent_mut(root, path) else {
        return;
    };
    let Some(last) = path.last() else { return };
    if let Value::Object(map) = parent {
        match map.get_mut(last) {
            Some(Value::Array(items)) => {
                let unwanted: Vec<&Value> = match value {
                    Value::Array(vs) => vs.iter().collect(),
                    v => vec![v],
                };
                items.retain(|item| !unwanted.contains(&item));
            }
            Some(current) if current == value => {
                map.shift_remove(last);
            }
            _ => {}
        }
    }
}

fn remove_at(root: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = root;
    for token in parents {
        let next = match cur {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match cur {
        Value::Object(map) => {
            map.shift_remove(last);
        }
        Value::Array(items) => {
            if let Ok(i) = last.parse::<usize>() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

fn increment(root: &mut Value, path: &[String], by: &Value, field: &str) -> Result<(), OpError> {
    let by = by
        .as_f64()
        .filter(|_| by.is_number())
        .ok_or_else(|| OpError::Invalid(format!("increment of {field} needs a number value")))?;
    let current = get(root, path)
        .ok_or_else(|| OpError::Invalid(format!("increment: field {field} does not exist")))?;
    let next = match (current.as_i64(), by.fract() == 0.0) {
        (Some(i), true) => Value::from(i.saturating_add(by as i64)),
        _ => {
            let f = current.as_f64().ok_or_else(|| {
                OpError::Invalid(format!("increment: field {field} is not a number"))
            })?;
            serde_json::Number::from_f64(f + by)
                .map(Value::Number)
                .ok_or_else(|| OpError::Invalid("increment overflowed".into()))?
        }
    };
    set(root, path, next)
}

fn array_index(token: &str, limit: usize) -> Result<usize, PointerError> {
    let i: usize = token.parse().map_err(|_| PointerError::NotAnIndex {
        token: token.to_owned(),
    })?;
    if i >= limit {
        return Err(PointerError::OutOfRange { index: i });
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ops(v: Value) -> Vec<PatchOperation> {
        serde_json::from_value(v).unwrap()
    }

    fn run(object: Value, patch: Value) -> Result<Value, PatchError> {
        let Value::Object(map) = object else { panic!() };
        apply(&map, &ops(patch)).map(Value::Object)
    }

    #[test]
    fn add_replace_remove() {
        let out = run(
            json!({"sn": "Doe", "roles": ["a"], "mail": "x@y.z"}),
            json!([
                {"operation": "replace", "field": "/sn", "value": "Roe"},
                {"operation": "add", "field": "/roles/-", "value": "b"},
                {"operation": "add", "field": "roles", "value": ["c", "d"]},
                {"operation": "add", "field": "/address/city", "value": "Oslo"},
                {"operation": "remove", "field": "/mail"},
                {"operation": "remove", "field": "/roles", "value": "c"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"sn": "Roe", "roles": ["a", "b", "d"], "address": {"city": "Oslo"}})
        );
    }

    #[test]
    fn increment_move_copy() {
        let out = run(
            json!({"n": 1, "f": 1.5, "a": "x"}),
            json!([
                {"operation": "increment", "field": "/n", "value": 2},
                {"operation": "increment", "field": "/f", "value": 1},
                {"operation": "copy", "from": "/a", "field": "/b"},
                {"operation": "move", "from": "/a", "field": "/c"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"n": 3, "f": 2.5, "b": "x", "c": "x"}));
    }

    #[test]
    fn errors_are_specific_and_atomic() {
        let e = run(
            json!({"a": 1}),
            json!([{"operation": "transform", "field": "/a", "value": 1}]),
        )
        .unwrap_err();
        assert!(matches!(e, PatchError::UnknownOperation { index: 0, .. }));
        let e = run(
            json!({"a": "s"}),
            json!([{"operation": "increment", "field": "/a", "value": 1}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not a number"));
        let e = run(
            json!({}),
            json!([{"operation": "replace", "field": "/_id", "value": "x"}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("_id"));
        let e = run(json!({}), json!([{"operation": "add", "field": "/a"}])).unwrap_err();
        assert!(e.to_string().contains("needs a value"));
        let e = run(
            json!({}),
            json!([{"operation": "move", "from": "/nope", "field": "/a"}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not exist"));
    }

    #[test]
    fn bad_pointers_say_why() {
        let long = format!("/{}", ["a"; MAX_POINTER_TOKENS + 1].join("/"));
        for (object, operation, wanted) in [
            (
                json!({}),
                json!({"operation": "add", "field": "/", "value": 1}),
                "field must name a property, not the whole object".to_owned(),
            ),
            (
                json!({}),
                json!({"operation": "add", "field": long.as_str(), "value": 1}),
                format!("pointer {long:?} has 17 tokens; the limit is 16"),
            ),
            (
                json!({"a": [1]}),
                json!({"operation": "add", "field": "/a/x/b", "value": 1}),
                r#""x" is not an array index"#.to_owned(),
            ),
            (
                json!({"a": [1]}),
                json!({"operation": "replace", "field": "/a/5", "value": 1}),
                "array index 5 is out of range".to_owned(),
            ),
            (
                json!({"a": [1]}),
                json!({"operation": "add", "field": "/a/0/b/c", "value": 1}),
                r#"cannot descend into "b": not an object or array"#.to_owned(),
            ),
        ] {
            let e = run(object, json!([operation])).unwrap_err();
            assert_eq!(e.to_string(), format!("patch operation 0: {wanted}"));
        }
    }

    #[test]
    fn replace_with_null_removes_and_remove_of_absent_is_noop() {
        let out = run(
            json!({"a": 1}),
            json!([{"operation": "replace", "field": "/a", "value": null},
                   {"operation": "remove", "field": "/zzz"}]),
        )
        .unwrap();
        assert_eq!(out, json!({}));
    }

    mod properties {
        use super::*;
        use crate::limits::{MAX_JSON_DEPTH, MAX_OBJECT_BYTES};
        use proptest::prelude::*;

        fn pointer() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                proptest::sample::select(&["a", "b", "0", "1", "-", "~0", "~1", "", "x/y"][..]),
                0..5,
            )
            .prop_map(|tokens| format!("/{}", tokens.join("/")))
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<i32>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                "[a-z]{0,3}".prop_map(Value::from),
                Just(json!("x".repeat(100_000))),
            ];
            leaf.prop_recursive(3, 10, 3, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    proptest::collection::vec(("[ab]", inner), 0..3)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        fn operation() -> impl Strategy<Value = PatchOperation> {
            (
                proptest::sample::select(
                    &[
                        "add",
                        "remove",
                        "replace",
                        "increment",
                        "move",
                        "copy",
                        "bogus",
                    ][..],
                ),
                pointer(),
                proptest::option::of(value()),
                proptest::option::of(pointer()),
            )
                .prop_map(|(operation, field, value, from)| PatchOperation {
                    operation: operation.to_owned(),
                    field,
                    value,
                    from,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

            /// Any operations on any object: an error or an object within the limits, never a
            /// panic, and an error leaves nothing half-applied (the input is untouched).
            #[test]
            fn patches_never_panic_and_results_stay_in_bounds(
                object in value(),
                ops in proptest::collection::vec(operation(), 0..40),
            ) {
                let Value::Object(object) = object else { return Ok(()) };
                let copy = object.clone();
                if let Ok(out) = apply(&object, &ops) {
                    let out = Value::Object(out);
                    prop_assert!(limits::check_depth(&out, "x", MAX_JSON_DEPTH).is_ok());
                    prop_assert!(limits::compact_len_within(&out, MAX_OBJECT_BYTES).is_some());
                }
                prop_assert_eq!(object, copy);
            }
        }
    }
}
