//! Property mapping: the target object a source maps to, and the outbound delta.
//!
//! For each property, in order, as IDM's `PropertyMapping.apply` does:
//! 1. `condition` (filter or script over `object` = the whole source, `target`, `oldTarget`,
//!    `oldSource`, `linkQualifier`): false → the property is skipped, the target keeps its
//!    value. IDM evaluates the condition *first*, on the whole source, not on the transformed
//!    value.
//! 2. the value: the source property at `source` (a JSON pointer; `""` = the whole source
//!    object; no `source` = no value);
//! 3. `transform` (script with `source` = that value, `linkQualifier`); its result replaces it;
//! 4. `default` when the value is `null` or absent.
//!
//! A property with no value and no default maps to `null`, as in IDM (the target property is
//! cleared).

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::SyncContext;
use super::config::{Mapping, PropertyMapping};
use super::error::MappingError;

/// The mapped target values of one source.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MappedObject {
    /// The target properties, at their (possibly nested) target paths.
    pub object: Map<String, Value>,
    /// Target properties (as configured in `target`) whose value came from `default`.
    pub defaulted: BTreeSet<String>,
}

/// One property's outcome.
struct Mapped {
    value: Value,
    from_default: bool,
}

impl Mapping {
    /// Maps `source` to target values. `target` is the existing target, if any (bound as
    /// `target` and `oldTarget` in conditions). A script error fails this object.
    pub fn map_object(
        &self,
        source: &Value,
        target: Option<&Value>,
        ctx: &SyncContext,
    ) -> Result<MappedObject, MappingError> {
        let mut out = MappedObject::default();
        for property in &self.properties {
            let Some(mapped) = self.map_property(property, source, target, ctx)? else {
                continue;
            };
            if mapped.from_default {
                out.defaulted.insert(property.target.clone());
            }
            put(&mut out.object, &property.target_path, mapped.value);
        }
        Ok(out)
    }

    /// The target values an UPDATE must send when the source changed from `old_source` (the
    /// snapshot last known to be in step with the target) to `new_source` (delta sync,
    /// ARCHITECTURE.md invariant 4): only the properties whose mapped value differs. Identical snapshots give
    /// an empty map (no API call). Defaulted properties are left out, since a default never
    /// overwrites the target on UPDATE, except where `current_target` is given and has no
    /// value for the property (defaults fill empty target properties).
    ///
    /// A script error on the new source fails the object; one on the old snapshot only means
    /// the old value is unknown, so the property is sent.
    pub fn delta(
        &self,
        old_source: &Value,
        new_source: &Value,
        current_target: Option<&Value>,
        ctx: &SyncContext,
    ) -> Result<Map<String, Value>, MappingError> {
        let mut out = Map::new();
        for property in &self.properties {
            let Some(new) = self.map_property(property, new_source, current_target, ctx)? else {
                continue;
            };
            if new.from_default {
                let empty = current_target.is_some_and(|t| {
                    get(t, &property.target_path).is_none_or(|v| v.is_null() || v == "")
                });
                if empty {
                    put(&mut out, &property.target_path, new.value);
                }
                continue;
            }
            let old = self
                .map_property(property, old_source, current_target, ctx)
                .ok()
                .flatten();
            let same = old.is_some_and(|old| !old.from_default && old.value == new.value);
            if !same {
                put(&mut out, &property.target_path, new.value);
            }
        }
        Ok(out)
    }

    /// One property; `None` when its condition is false.
    fn map_property(
        &self,
        property: &PropertyMapping,
        source: &Value,
        target: Option<&Value>,
        ctx: &SyncContext,
    ) -> Result<Option<Mapped>, MappingError> {
        let lq = Value::String(ctx.link_qualifier.to_owned());
        if let Some(condition) = &property.condition {
            let params = [
                ("object", Some(source)),
                ("target", target),
                ("oldTarget", target),
                ("oldSource", ctx.old_source),
                ("linkQualifier", Some(&lq)),
            ];
            let holds = condition.holds(&params).map_err(|e| {
                MappingError::script(
                    &self.name,
                    format!("property {:?} condition", property.target),
                    e,
                )
            })?;
            if !holds {
                return Ok(None);
            }
        }
        let mut value = property
            .source_path
            .as_ref()
            .and_then(|path| get(source, path))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(transform) = &property.transform {
            value = transform
                .eval(&[("source", Some(&value)), ("linkQualifier", Some(&lq))])
                .map_err(|e| {
                    MappingError::script(
                        &self.name,
                        format!("property {:?} transform", property.target),
                        e,
                    )
                })?
                .unwrap_or(Value::Null);
        }
        if value.is_null() {
            if let Some(default) = &property.default {
                return Ok(Some(Mapped {
                    value: default.clone(),
                    from_default: true,
                }));
            }
        }
        Ok(Some(Mapped {
            value,
            from_default: false,
        }))
    }
}

/// The value at `path` (object keys; array indexes as decimal tokens).
pub(crate) fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |current, token| match current {
        Value::Object(map) => map.get(token),
        Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Sets `path` in `object`, creating intermediate objects (IDM's `PropertyMapping.put`).
fn put(object: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return; // the configuration loader refuses an empty target
    };
    let mut current = object;
    for token in parents {
        let entry = current
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else { return };
        current = next;
    }
    current.insert(last.clone(), value);
}
