//! The sync core's last pure step: once an object's situation is assessed and its action
//! decided ([`Mapping::decide`]), what that action writes to the target.
//!
//! Recon (into managed objects) and the outbound worker (into Salesforce) gather the facts,
//! call [`plan`], then write and record; neither maps values on its own. The one thing that
//! differs between them is how much they know of the target, which is [`Known`]:
//!
//! - recon has read the managed object, so an UPDATE carries every mapped value and the
//!   managed store merges them ([`Known::Current`]);
//! - the worker has not read the Salesforce user (that would cost an API call per change);
//!   it knows the source last in step with it, the link's snapshot, so an UPDATE carries only
//!   what changed since ([`Known::InStepWith`]).

use serde_json::{Map, Value};

use crate::mapping::{Action, Mapping, MappingError, Situation, SyncContext};

/// What the caller knows of the object's target.
#[derive(Debug, Clone, Copy)]
pub enum Known<'a> {
    /// No target: none is linked and correlation found none.
    Nothing,
    /// The target as just read, with its `_id` (and `_rev`, where it has one).
    Current(&'a Map<String, Value>),
    /// Only the target's id and the source object last known to be in step with it (`None`
    /// when that is unknown: a correlated target, a forced re-sync).
    InStepWith {
        id: &'a str,
        snapshot: Option<&'a Value>,
    },
}

impl Known<'_> {
    fn exists(&self) -> bool {
        !matches!(self, Known::Nothing)
    }
}

/// The facts [`plan`] needs about one object.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub situation: Situation,
    pub action: Action,
    /// The source object (`None` when it is gone).
    pub source: Option<&'a Value>,
    pub target: Known<'a>,
    /// Whether a link between source and target exists.
    pub linked: bool,
}

/// What an action writes to the target.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create a target with these values (the mapping, then `onCreate`).
    Create(Map<String, Value>),
    /// Set these values on the target; empty when there is nothing to send.
    Update(Map<String, Value>),
    /// Delete the target (a connector may deactivate instead).
    Delete,
    /// The target is gone; only the link is left to remove.
    DropLink,
    /// Link source and target.
    Link,
    /// Remove the link.
    Unlink,
    /// No write (IGNORE, REPORT, NOREPORT, ASYNC, or an action with nothing left to do).
    Nothing,
    /// EXCEPTION: the object fails, nothing is written.
    Exception,
}

/// Why an action cannot be planned for an object; it fails that object only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("action {action} needs {what}, and there is none")]
    Missing { action: Action, what: &'static str },
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// The write `facts.action` means for this object.
pub fn plan(mapping: &Mapping, facts: &Facts<'_>) -> Result<Write, PlanError> {
    let missing = |what| PlanError::Missing {
        action: facts.action,
        what,
    };
    let ctx = SyncContext::default();
    Ok(match facts.action {
        Action::Create => {
            let source = facts.source.ok_or_else(|| missing("a source object"))?;
            let mapped = mapping.map_object(source, None, &ctx)?;
            Write::Create(mapping.on_create(source, mapped.object, facts.situation, &ctx)?)
        }
        Action::Update => {
            let source = facts.source.ok_or_else(|| missing("a source object"))?;
            Write::Update(match facts.target {
                Known::Nothing => return Err(missing("a target object")),
                Known::Current(current) => update_current(mapping, facts, source, current)?,
                Known::InStepWith { id, snapshot } => {
                    update_since(mapping, facts.situation, source, id, snapshot)?
                }
            })
        }
        Action::Delete => match (facts.target.exists(), facts.linked) {
            (true, _) => Write::Delete,
            (false, true) => Write::DropLink,
            (false, false) => return Err(missing("a target object")),
        },
        Action::Link if !facts.target.exists() => return Err(missing("a target object")),
        Action::Link => Write::Link,
        Action::Unlink if !facts.linked => return Err(missing("a link")),
        Action::Unlink => Write::Unlink,
        Action::Exception => Write::Exception,
        Action::Ignore | Action::Report | Action::NoReport | Action::Async => Write::Nothing,
    })
}

/// An UPDATE of a target just read: every mapped value (defaults too), which the store
/// merges. `onUpdate` sees the target with them merged and the target before; what it
/// leaves (but `_id`, `_rev`) is the update. A property it removes is left as it is: an
/// UPDATE sets properties, it never drops them.
fn update_current(
    mapping: &Mapping,
    facts: &Facts<'_>,
    source: &Value,
    current: &Map<String, Value>,
) -> Result<Map<String, Value>, MappingError> {
    let ctx = SyncContext::default();
    let old = Value::Object(current.clone());
    let mapped = mapping.map_object(source, Some(&old), &ctx)?.object;
    if !mapping.has_on_update() {
        return Ok(mapped);
    }
    let mut new = current.clone();
    merge(&mut new, &mapped);
    let mut changed = mapping.on_update(source, new, Some(&old), facts.situation, &ctx)?;
    changed.remove("_id");
    changed.remove("_rev");
    Ok(changed)
}

/// An UPDATE of a target known only by the source last in step with it: what changed since
/// that snapshot, or with none, every mapped value. Defaults never overwrite the target's
/// values on UPDATE (a delta against an empty snapshot would miss properties a transform
/// maps to the same value whether or not the source has them, so "none" is not "empty").
fn update_since(
    mapping: &Mapping,
    situation: Situation,
    source: &Value,
    target_id: &str,
    snapshot: Option<&Value>,
) -> Result<Map<String, Value>, MappingError> {
    let ctx = SyncContext::default();
    if mapping.has_on_update() {
        return update_through_hook(mapping, situation, source, snapshot, target_id);
    }
    match snapshot {
        Some(old) => mapping.delta(old, source, None, &ctx),
        None => without_defaults(mapping, source),
    }
}

/// The mapped values of `object`, but those that came from a default.
fn without_defaults(mapping: &Mapping, object: &Value) -> Result<Map<String, Value>, MappingError> {
    let m = mapping.map_object(object, None, &SyncContext::default())?;
    Ok(m.object
        .into_iter()
        .filter(|(k, _)| !m.defaulted.contains(k))
        .collect())
}

/// An UPDATE under an `onUpdate` script, target unread: the script sees every mapped value
/// (`target`) and what the snapshot in step maps to (`oldTarget`); the update is what it
/// leaves in `target` that differs from `oldTarget` (all of it, with no snapshot).
fn update_through_hook(
    mapping: &Mapping,
    situation: Situation,
    source: &Value,
    snapshot: Option<&Value>,
    target_id: &str,
) -> Result<Map<String, Value>, MappingError> {
    let mut new = without_defaults(mapping, source)?;
    // A script error on the old snapshot only means its values are unknown: all are sent.
    let old = snapshot.and_then(|s| without_defaults(mapping, s).ok());
    let id = Value::from(target_id.to_owned());
    new.insert("_id".into(), id.clone());
    let old_target = old.clone().map(|mut o| {
        o.insert("_id".into(), id);
        Value::Object(o)
    });
    let ctx = SyncContext::default();
    let mut target = mapping.on_update(source, new, old_target.as_ref(), situation, &ctx)?;
    target.remove("_id");
    Ok(target
        .into_iter()
        .filter(|(k, v)| old.as_ref().is_none_or(|o| o.get(k) != Some(v)))
        .collect())
}

/// Merges `changes` into `body`: objects key by key, any other value replaced.
pub fn merge(body: &mut Map<String, Value>, changes: &Map<String, Value>) {
    for (key, value) in changes {
        match (body.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(inner)) => merge(existing, inner),
            _ => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mapping::SyncConfig;

    /// Outbound-shaped: givenName → FirstName, a defaulted LanguageLocaleKey.
    fn mapping(extra: Value) -> Mapping {
        let mut m = json!({
            "name": "m", "source": "managed/user", "target": "system/salesforce/User",
            "properties": [
                {"source": "givenName", "target": "FirstName"},
                {"source": "sn", "target": "LastName"},
                {"source": "locale", "target": "LanguageLocaleKey", "default": "en_US"}
            ]
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        let conf = SyncConfig::from_json(&json!({"mappings": [m]})).unwrap();
        conf.mappings.into_iter().next().unwrap()
    }

    fn facts<'a>(action: Action, source: Option<&'a Value>, target: Known<'a>) -> Facts<'a> {
        Facts {
            situation: Situation::Confirmed,
            action,
            source,
            target,
            linked: !matches!(target, Known::Nothing),
        }
    }

    /// The UPDATE of a target just read.
    fn update_of_read(m: &Mapping, source: &Value, current: &Map<String, Value>) -> Write {
        plan(
            m,
            &facts(Action::Update, Some(source), Known::Current(current)),
        )
        .unwrap()
    }

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn create_maps_every_property_with_defaults_then_on_create() {
        let m = mapping(json!({"onCreate": {"type": "text/javascript",
            "source": "target.Alias = source.givenName.substring(0, 2);"}}));
        let source = json!({"givenName": "Ada", "sn": "Lovelace"});
        let write = plan(&m, &facts(Action::Create, Some(&source), Known::Nothing)).unwrap();
        assert_eq!(
            write,
            Write::Create(object(json!({"FirstName": "Ada", "LastName": "Lovelace",
                "LanguageLocaleKey": "en_US", "Alias": "Ad"})))
        );
    }

    #[test]
    fn update_of_a_read_target_carries_every_mapped_value() {
        let m = mapping(json!({}));
        let source = json!({"givenName": "Ada", "sn": "Lovelace"});
        let current = object(json!({"_id": "t1", "FirstName": "Ada", "LastName": "Byron"}));
        assert_eq!(
            update_of_read(&m, &source, &current),
            Write::Update(object(json!({"FirstName": "Ada", "LastName": "Lovelace",
                "LanguageLocaleKey": "en_US"})))
        );
    }

    #[test]
    fn update_since_a_snapshot_carries_only_what_changed_and_never_a_default() {
        let m = mapping(json!({}));
        let old = json!({"givenName": "Ada", "sn": "Byron"});
        let new = json!({"givenName": "Ada", "sn": "Lovelace"});
        let in_step = |snapshot| Known::InStepWith {
            id: "005x",
            snapshot,
        };
        let since = plan(&m, &facts(Action::Update, Some(&new), in_step(Some(&old)))).unwrap();
        assert_eq!(
            since,
            Write::Update(object(json!({"LastName": "Lovelace"})))
        );
        let same = plan(&m, &facts(Action::Update, Some(&new), in_step(Some(&new)))).unwrap();
        assert_eq!(same, Write::Update(Map::new()));
        let unknown = plan(&m, &facts(Action::Update, Some(&new), in_step(None))).unwrap();
        assert_eq!(
            unknown,
            Write::Update(object(json!({"FirstName": "Ada", "LastName": "Lovelace"})))
        );
    }

    #[test]
    fn on_update_of_an_unread_target_sends_what_differs_from_the_old_mapping() {
        let m = mapping(json!({"onUpdate": {"type": "text/javascript",
            "source": "target.Title = 'Dr'; target.Seen = oldTarget ? oldTarget._id : null;"}}));
        let old = json!({"givenName": "Ada", "sn": "Byron"});
        let new = json!({"givenName": "Ada", "sn": "Lovelace"});
        let known = Known::InStepWith {
            id: "005x",
            snapshot: Some(&old),
        };
        let write = plan(&m, &facts(Action::Update, Some(&new), known)).unwrap();
        assert_eq!(
            write,
            Write::Update(object(
                json!({"LastName": "Lovelace", "Title": "Dr", "Seen": "005x"})
            ))
        );
    }

    #[test]
    fn on_update_of_a_read_target_keeps_what_the_script_leaves_but_ids() {
        let m = mapping(json!({"onUpdate": {"type": "text/javascript",
            "source": "delete target.LastName; target.Was = oldTarget.LastName;"}}));
        let source = json!({"givenName": "Ada", "sn": "Lovelace"});
        let current = object(json!({"_id": "t1", "_rev": "3", "LastName": "Byron"}));
        assert_eq!(
            update_of_read(&m, &source, &current),
            Write::Update(object(
                json!({"FirstName": "Ada", "LanguageLocaleKey": "en_US",
                "Was": "Byron"})
            ))
        );
    }

    #[test]
    fn actions_without_the_objects_they_need_fail_and_a_gone_target_only_drops_its_link() {
        let m = mapping(json!({}));
        let source = json!({"givenName": "Ada"});
        let missing = |action, what| PlanError::Missing { action, what };
        let cases = [
            (Action::Create, None, Known::Nothing, false),
            (Action::Update, Some(&source), Known::Nothing, false),
            (Action::Link, Some(&source), Known::Nothing, false),
            (Action::Unlink, Some(&source), Known::Nothing, false),
            (Action::Delete, None, Known::Nothing, false),
        ];
        let whats = [
            "a source object",
            "a target object",
            "a target object",
            "a link",
            "a target object",
        ];
        for ((action, source, target, linked), what) in cases.into_iter().zip(whats) {
            let f = Facts {
                situation: Situation::Confirmed,
                action,
                source,
                target,
                linked,
            };
            assert_eq!(plan(&m, &f), Err(missing(action, what)), "{action}");
        }
        let gone = Facts {
            situation: Situation::Missing,
            action: Action::Delete,
            source: None,
            target: Known::Nothing,
            linked: true,
        };
        assert_eq!(plan(&m, &gone), Ok(Write::DropLink));
    }

    #[test]
    fn quiet_actions_write_nothing_and_exception_says_so() {
        let m = mapping(json!({}));
        for action in [
            Action::Ignore,
            Action::Report,
            Action::NoReport,
            Action::Async,
        ] {
            assert_eq!(
                plan(&m, &facts(action, None, Known::Nothing)),
                Ok(Write::Nothing)
            );
        }
        assert_eq!(
            plan(&m, &facts(Action::Exception, None, Known::Nothing)),
            Ok(Write::Exception)
        );
    }

    #[test]
    fn a_throwing_transform_fails_the_object() {
        let m = mapping(json!({"properties": [{"source": "sn", "target": "LastName",
            "transform": {"type": "text/javascript", "source": "throw 'bad';"}}]}));
        let source = json!({"sn": "x"});
        let err = plan(&m, &facts(Action::Create, Some(&source), Known::Nothing)).unwrap_err();
        assert!(matches!(err, PlanError::Mapping(_)), "{err}");
    }

    #[test]
    fn merge_joins_objects_and_replaces_the_rest() {
        let mut body = object(json!({"a": {"x": 1, "y": 2}, "b": [1], "c": 1}));
        merge(
            &mut body,
            &object(json!({"a": {"y": 3}, "b": [2], "d": null})),
        );
        assert_eq!(
            Value::Object(body),
            json!({"a": {"x": 1, "y": 3}, "b": [2], "c": 1, "d": null})
        );
    }
}
