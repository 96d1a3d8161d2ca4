//! The mapping's event scripts, as IDM runs them: `onCreate` and `onUpdate` see the target
//! about to be written and may change it; `onDelete`, `onLink` and `onUnlink` run beside
//! their operation; `result` runs once when a reconciliation ends. A script that throws fails
//! its one object (the operation is not carried out), never the run.
//!
//! Scopes: `source`, `target`, `situation`, `linkQualifier` for every object hook, plus
//! `oldTarget` for `onUpdate` and `oldSource` where an implicit sync knows it; `source`,
//! `target` (the phases' progress) and `global` (the run's summary) for `result`.

use serde_json::{Map, Value};

use super::script::Script;
use super::{Mapping, MappingError, Situation, SyncContext};

/// What an object hook other than onCreate/onUpdate is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Delete,
    Link,
    Unlink,
}

/// The configured scripts; `None` where the mapping has none.
#[derive(Debug, Default)]
pub struct Hooks {
    pub on_create: Option<Script>,
    pub on_update: Option<Script>,
    pub on_delete: Option<Script>,
    pub on_link: Option<Script>,
    pub on_unlink: Option<Script>,
    pub result: Option<Script>,
}

impl Hooks {
    /// The names of the configured scripts, in IDM's order.
    pub fn configured(&self) -> Vec<&'static str> {
        [
            ("onCreate", &self.on_create),
            ("onUpdate", &self.on_update),
            ("onDelete", &self.on_delete),
            ("onLink", &self.on_link),
            ("onUnlink", &self.on_unlink),
            ("result", &self.result),
        ]
        .into_iter()
        .filter_map(|(name, script)| script.as_ref().map(|_| name))
        .collect()
    }
}

impl Mapping {
    /// `onCreate`: returns the target to create, as the script left it.
    pub fn on_create(
        &self,
        source: &Value,
        target: Map<String, Value>,
        situation: Situation,
        ctx: &SyncContext,
    ) -> Result<Map<String, Value>, MappingError> {
        let Some(script) = &self.hooks.on_create else {
            return Ok(target);
        };
        self.rewrite(("onCreate", script), source, target, None, situation, ctx)
    }

    /// `onUpdate`: `target` is the target with the mapped values applied, `old_target` the
    /// target before; returns the target to write, as the script left it. IDM calls it for
    /// every UPDATE, whether or not the mapped values change anything.
    pub fn on_update(
        &self,
        source: &Value,
        target: Map<String, Value>,
        old_target: Option<&Value>,
        situation: Situation,
        ctx: &SyncContext,
    ) -> Result<Map<String, Value>, MappingError> {
        let Some(script) = &self.hooks.on_update else {
            return Ok(target);
        };
        let extra = Some(("oldTarget", old_target));
        self.rewrite(("onUpdate", script), source, target, extra, situation, ctx)
    }

    /// Whether the mapping has an `onUpdate` script (recon's unchanged fast path then runs
    /// the full UPDATE, so the script sees every object, as in IDM).
    pub fn has_on_update(&self) -> bool {
        self.hooks.on_update.is_some()
    }

    /// Whether the mapping has a script for `event` (callers skip building its scope if not).
    pub fn handles(&self, event: Event) -> bool {
        self.event_script(event).0.is_some()
    }

    fn event_script(&self, event: Event) -> (&Option<Script>, &'static str) {
        match event {
            Event::Delete => (&self.hooks.on_delete, "onDelete"),
            Event::Link => (&self.hooks.on_link, "onLink"),
            Event::Unlink => (&self.hooks.on_unlink, "onUnlink"),
        }
    }

    /// `onDelete` before the target is deleted (on Salesforce: deactivated), `onLink` when a
    /// link between `source` and `target` is made, `onUnlink` before one is removed.
    pub fn notify(
        &self,
        event: Event,
        source: Option<&Value>,
        target: &Value,
        situation: Situation,
    ) -> Result<(), MappingError> {
        let (script, hook) = self.event_script(event);
        let Some(script) = script else {
            return Ok(());
        };
        let situation = Value::String(situation.as_str().to_owned());
        let lq = Value::String(super::DEFAULT_LINK_QUALIFIER.to_owned());
        script
            .eval(&[
                ("source", source),
                ("target", Some(target)),
                ("situation", Some(&situation)),
                ("linkQualifier", Some(&lq)),
            ])
            .map(|_| ())
            .map_err(|e| MappingError::script(&self.name, hook, e))
    }

    /// `result`, once a reconciliation has ended: its completion value, if any.
    pub fn run_result(
        &self,
        source: &Value,
        target: &Value,
        global: &Value,
    ) -> Result<Option<Value>, MappingError> {
        let Some(script) = &self.hooks.result else {
            return Ok(None);
        };
        script
            .eval(&[
                ("source", Some(source)),
                ("target", Some(target)),
                ("global", Some(global)),
            ])
            .map_err(|e| MappingError::script(&self.name, "result", e))
    }

    /// Runs the hook `(name, script)` over `target`, with `extra` in scope if given; returns
    /// the target as the script left it.
    fn rewrite(
        &self,
        (hook, script): (&str, &Script),
        source: &Value,
        target: Map<String, Value>,
        extra: Option<(&str, Option<&Value>)>,
        situation: Situation,
        ctx: &SyncContext,
    ) -> Result<Map<String, Value>, MappingError> {
        let target = Value::Object(target);
        let situation = Value::String(situation.as_str().to_owned());
        let lq = Value::String(ctx.link_qualifier.to_owned());
        let mut scope = vec![
            ("source", Some(source)),
            ("target", Some(&target)),
            ("situation", Some(&situation)),
            ("linkQualifier", Some(&lq)),
            ("oldSource", ctx.old_source),
        ];
        scope.extend(extra);
        match script.eval_reading(&scope, "target") {
            Ok(Some(Value::Object(changed))) => Ok(changed),
            Ok(_) => Err(MappingError::bad_result(
                &self.name,
                hook,
                "the script must leave `target` an object",
            )),
            Err(e) => Err(MappingError::script(&self.name, hook, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mapping::SyncConfig;

    fn mapping(hooks: Value) -> Mapping {
        let mut m = json!({
            "name": "m", "source": "system/salesforce/User", "target": "managed/user",
            "properties": [{"source": "Username", "target": "userName"}],
            "policies": [{"situation": "ABSENT", "action": "CREATE"}]
        });
        for (k, v) in hooks.as_object().unwrap() {
            m[k] = v.clone();
        }
        let conf = SyncConfig::from_json(&json!({"mappings": [m]})).unwrap();
        conf.mappings.into_iter().next().unwrap()
    }

    fn js(source: &str) -> Value {
        json!({"type": "text/javascript", "source": source})
    }

    #[test]
    fn on_create_changes_the_target() {
        let m = mapping(
            json!({"onCreate": js("target.description = 'from ' + source.Username + ' (' + situation + ')';")}),
        );
        let target = json!({"userName": "a"}).as_object().unwrap().clone();
        let out = m
            .on_create(
                &json!({"Username": "a"}),
                target,
                Situation::Absent,
                &SyncContext::default(),
            )
            .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"userName": "a", "description": "from a (ABSENT)"})
        );
    }

    #[test]
    fn on_update_sees_the_old_target_and_a_throw_fails() {
        let m = mapping(
            json!({"onUpdate": js("if (oldTarget.sn === 'x') { throw 'no updates of x'; } target.seen = oldTarget.sn;")}),
        );
        let target = json!({"sn": "new"}).as_object().unwrap().clone();
        let out = m
            .on_update(
                &json!({}),
                target.clone(),
                Some(&json!({"sn": "old"})),
                Situation::Confirmed,
                &SyncContext::default(),
            )
            .unwrap();
        assert_eq!(Value::Object(out), json!({"sn": "new", "seen": "old"}));
        let err = m
            .on_update(
                &json!({}),
                target,
                Some(&json!({"sn": "x"})),
                Situation::Confirmed,
                &SyncContext::default(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("onUpdate") && err.to_string().contains("no updates of x"),
            "{err}"
        );
    }

    #[test]
    fn a_target_that_is_no_longer_an_object_fails() {
        let m = mapping(json!({"onCreate": js("target = 'gone';")}));
        let err = m
            .on_create(
                &json!({}),
                Map::new(),
                Situation::Absent,
                &SyncContext::default(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("must leave `target` an object"),
            "{err}"
        );
    }

    #[test]
    fn notifications_and_result() {
        let m = mapping(json!({
            "onLink": js("if (!target._id) { throw 'no id'; }"),
            "onUnlink": js("source.Username;"),
            "onDelete": js("throw 'kept: ' + target._id;"),
            "result": js("global.reconId + ': ' + source.existing.processed;")
        }));
        let t = json!({"_id": "t1"});
        assert!(m.notify(Event::Link, None, &t, Situation::Found).is_ok());
        assert!(
            m.notify(Event::Link, None, &json!({}), Situation::Found)
                .unwrap_err()
                .to_string()
                .contains("no id")
        );
        assert!(
            m.notify(
                Event::Unlink,
                Some(&json!({"Username": "u"})),
                &t,
                Situation::Unqualified
            )
            .is_ok()
        );
        let err = m
            .notify(Event::Delete, None, &t, Situation::Unqualified)
            .unwrap_err();
        assert!(
            err.to_string().contains("onDelete") && err.to_string().contains("kept: t1"),
            "{err}"
        );
        let out = m
            .run_result(
                &json!({"existing": {"processed": 3}}),
                &json!({}),
                &json!({"reconId": "r"}),
            )
            .unwrap();
        assert_eq!(out, Some(json!("r: 3")));
        assert_eq!(
            m.hooks.configured(),
            ["onDelete", "onLink", "onUnlink", "result"]
        );
        // No script: nothing runs, the target passes through.
        let plain = mapping(json!({}));
        assert!(plain.hooks.configured().is_empty());
        assert!(
            plain
                .notify(Event::Delete, None, &t, Situation::Unqualified)
                .is_ok()
        );
        assert_eq!(
            plain
                .run_result(&json!({}), &json!({}), &json!({}))
                .unwrap(),
            None
        );
    }
}
