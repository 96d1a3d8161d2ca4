//! Policy selection: situation → action, with policy `condition`s, action scripts and
//! `postAction`.
//!
//! The mapping's policies for the situation are tried in `sync.json` order; the first whose
//! condition holds (or that has none) decides. With no such policy the situation's default
//! action applies (IDM `ObjectMapping` / `Situation.getDefaultAction`).

use serde_json::{Value, json};

use super::action::Action;
use super::config::{Mapping, Policy, PolicyAction};
use super::error::MappingError;
use super::situation::Situation;

/// The objects and context a policy sees.
#[derive(Debug, Clone, Copy)]
pub struct PolicyScope<'a> {
    pub source: Option<&'a Value>,
    pub target: Option<&'a Value>,
    pub link_qualifier: &'a str,
    /// True in recon's source phase and implicit sync (IDM's `sourceAction`), false in the
    /// target phase.
    pub source_phase: bool,
    /// The recon run, if any (bound as `reconId` in postAction).
    pub recon_id: Option<&'a str>,
}

/// The decided action, and the policy that decided it (for its postAction).
#[derive(Debug)]
pub struct Decision<'a> {
    pub situation: Situation,
    pub action: Action,
    pub policy: Option<&'a Policy>,
}

impl Mapping {
    /// Decides the action for `situation`. A policy condition is a filter over
    /// `{"object": source, "source": source, "target": target, "linkQualifier": …}` or a script
    /// with those variables; an action script additionally sees `situation`, `sourceAction`
    /// and `recon` (`{"actionParam": {…}}`) and must return an action name valid for the
    /// situation.
    pub fn decide<'a>(
        &'a self,
        situation: Situation,
        scope: &PolicyScope,
    ) -> Result<Decision<'a>, MappingError> {
        let lq = Value::String(scope.link_qualifier.to_owned());
        for policy in self.policies.iter().filter(|p| p.situation == situation) {
            if let Some(condition) = &policy.condition {
                let params = [
                    ("object", scope.source),
                    ("source", scope.source),
                    ("target", scope.target),
                    ("linkQualifier", Some(&lq)),
                ];
                let holds = condition.holds(&params).map_err(|e| {
                    MappingError::script(
                        &self.name,
                        format!("policy {} condition", policy.index),
                        e,
                    )
                })?;
                if !holds {
                    continue;
                }
            }
            let action = match &policy.action {
                PolicyAction::Static(action) => *action,
                PolicyAction::Script(script) => {
                    self.scripted_action(policy, script, situation, scope)?
                }
            };
            return Ok(Decision {
                situation,
                action,
                policy: Some(policy),
            });
        }
        Ok(Decision {
            situation,
            action: situation.default_action(),
            policy: None,
        })
    }

    /// The decision for `situation` when no object decides it: the first policy for it is
    /// unconditional and names its action (or there is no policy for it). `None` otherwise.
    pub fn static_decision(&self, situation: Situation) -> Option<Decision<'_>> {
        let Some(policy) = self.policies.iter().find(|p| p.situation == situation) else {
            return Some(Decision {
                situation,
                action: situation.default_action(),
                policy: None,
            });
        };
        match (&policy.condition, &policy.action) {
            (None, PolicyAction::Static(action)) => Some(Decision {
                situation,
                action: *action,
                policy: Some(policy),
            }),
            _ => None,
        }
    }

    fn scripted_action(
        &self,
        policy: &Policy,
        script: &super::script::Script,
        situation: Situation,
        scope: &PolicyScope,
    ) -> Result<Action, MappingError> {
        let during = format!("policy {} action", policy.index);
        let lq = Value::String(scope.link_qualifier.to_owned());
        let sit = Value::String(situation.as_str().to_owned());
        let source_action = Value::Bool(scope.source_phase);
        let recon = json!({"actionParam": {
            "mapping": self.name,
            "situation": situation.as_str(),
            "linkQualifier": scope.link_qualifier,
            "reconId": scope.recon_id,
            "_action": "performAction",
        }});
        let result = script
            .eval(&[
                ("source", scope.source),
                ("target", scope.target),
                ("linkQualifier", Some(&lq)),
                ("situation", Some(&sit)),
                ("sourceAction", Some(&source_action)),
                ("recon", Some(&recon)),
            ])
            .map_err(|e| MappingError::script(&self.name, during.as_str(), e))?;
        let name = match &result {
            Some(Value::String(s)) => s.as_str(),
            _ => {
                return Err(MappingError::bad_result(
                    &self.name,
                    during,
                    "action script returned no action name",
                ));
            }
        };
        let action = Action::from_name(name).ok_or_else(|| {
            MappingError::bad_result(
                &self.name,
                during.as_str(),
                format!("action script returned invalid action {name:?}"),
            )
        })?;
        if !situation.allows(action) {
            return Err(MappingError::bad_result(
                &self.name,
                during,
                format!("action {action} is not valid for situation {situation}"),
            ));
        }
        Ok(action)
    }
}

impl Decision<'_> {
    /// Runs the deciding policy's `postAction` after the action was carried out (not for
    /// IGNORE or ASYNC). Scope: `source`, `target`, `action`, `situation`, `sourceAction`,
    /// `linkQualifier`, `reconId`.
    pub fn run_post_action(
        &self,
        mapping: &Mapping,
        scope: &PolicyScope,
    ) -> Result<(), MappingError> {
        let Some(script) = self.policy.and_then(|p| p.post_action.as_ref()) else {
            return Ok(());
        };
        if !self.action.runs_post_action() {
            return Ok(());
        }
        let lq = Value::String(scope.link_qualifier.to_owned());
        let action = Value::String(self.action.as_str().to_owned());
        let situation = Value::String(self.situation.as_str().to_owned());
        let source_action = Value::Bool(scope.source_phase);
        let recon_id = scope.recon_id.map(|id| Value::String(id.to_owned()));
        script
            .eval(&[
                ("source", scope.source),
                ("target", scope.target),
                ("action", Some(&action)),
                ("situation", Some(&situation)),
                ("sourceAction", Some(&source_action)),
                ("linkQualifier", Some(&lq)),
                ("reconId", recon_id.as_ref()),
            ])
            .map(|_| ())
            .map_err(|e| {
                let index = self.policy.map_or(0, |p| p.index);
                MappingError::script(&mapping.name, format!("policy {index} postAction"), e)
            })
    }
}
