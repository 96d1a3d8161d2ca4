//! IDM's policy service for managed objects: the `required` list, property types and the
//! property policies of `managed.json`, reported as IDM's `failedPolicyRequirements`.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::config::managed::{ManagedObjectConfig, Policy};

/// One failed requirement of one property.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub property: String,
    pub requirement: &'static str,
    pub params: Option<Value>,
}

impl Failure {
    fn new(property: &str, requirement: &'static str, params: Option<Value>) -> Self {
        Self {
            property: property.to_owned(),
            requirement,
            params,
        }
    }
}

/// IDM's `detail` body: `{"result":false,"failedPolicyRequirements":[{"policyRequirements":[…],"property":…}]}`.
pub fn detail(failures: &[Failure]) -> Value {
    let mut by_property: Vec<(String, Vec<Value>)> = Vec::new();
    for f in failures {
        let mut requirement = Map::new();
        requirement.insert("policyRequirement".into(), Value::from(f.requirement));
        if let Some(params) = &f.params {
            requirement.insert("params".into(), params.clone());
        }
        match by_property.iter_mut().find(|(p, _)| *p == f.property) {
            Some((_, list)) => list.push(Value::Object(requirement)),
            None => by_property.push((f.property.clone(), vec![Value::Object(requirement)])),
        }
    }
    json!({
        "result": false,
        "failedPolicyRequirements": by_property
            .into_iter()
            .map(|(property, reqs)| json!({"policyRequirements": reqs, "property": property}))
            .collect::<Vec<_>>()
    })
}

/// Checks everything that needs only the object itself; uniqueness is checked by the caller
/// against the repository (see [`unique_properties`]).
pub fn validate(schema: &ManagedObjectConfig, object: &Map<String, Value>) -> Vec<Failure> {
    let mut failures = Vec::new();
    for name in &schema.required {
        if is_blank(object.get(name)) {
            failures.push(Failure::new(name, "REQUIRED", None));
        }
    }
    for property in &schema.properties {
        let value = object.get(&property.name);
        let present = !matches!(value, None | Some(Value::Null));
        if let (Some(v), false) = (value, property.types.is_empty()) {
            if present && !property.types.iter().any(|t| t.admits(v)) {
                let types: Vec<&str> = property.types.iter().map(|t| t.name()).collect();
                failures.push(Failure::new(
                    &property.name,
                    "VALID_TYPE",
                    Some(json!({"types": types})),
                ));
                continue;
            }
        }
        for policy in &property.policies {
            if let Some(f) = check(policy, &property.name, value, object) {
                if !failures.contains(&f) {
                    failures.push(f);
                }
            }
        }
    }
    failures
}

/// Properties whose value must be unique across the object type, with the value to look up.
pub fn unique_properties<'a>(
    schema: &'a ManagedObjectConfig,
    object: &'a Map<String, Value>,
) -> impl Iterator<Item = (&'a str, &'a str)> {
    schema
        .properties
        .iter()
        .filter(|p| p.policies.iter().any(|pol| matches!(pol, Policy::Unique)))
        .filter_map(|p| Some((p.name.as_str(), object.get(&p.name)?.as_str()?)))
}

pub fn unique_failure(property: &str) -> Failure {
    Failure::new(property, "UNIQUE", None)
}

fn is_blank(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn check(
    policy: &Policy,
    name: &str,
    value: Option<&Value>,
    object: &Map<String, Value>,
) -> Option<Failure> {
    let text = value.and_then(Value::as_str);
    let fail = |req: &'static str, params: Option<Value>| Some(Failure::new(name, req, params));
    match policy {
        Policy::Required => is_blank(value).then(|| Failure::new(name, "REQUIRED", None)),
        // Checked against the repository by the caller.
        Policy::Unique => None,
        Policy::CannotContainCharacters(chars) => {
            let s = text?;
            chars.iter().any(|c| s.contains(c.as_str())).then(|| {
                Failure::new(
                    name,
                    "CANNOT_CONTAIN_CHARACTERS",
                    Some(json!({"forbiddenChars": chars})),
                )
            })
        }
        Policy::MinLength(min) => {
            let s = text?;
            (s.chars().count() < *min)
                .then(|| Failure::new(name, "MIN_LENGTH", Some(json!({"minLength": min}))))
        }
        Policy::MaxLength(max) => {
            let s = text?;
            (s.chars().count() > *max)
                .then(|| Failure::new(name, "MAX_LENGTH", Some(json!({"maxLength": max}))))
        }
        Policy::ValidEmail => {
            let s = text?;
            if email_regex().is_match(s) {
                None
            } else {
                fail("VALID_EMAIL_ADDRESS_FORMAT", None)
            }
        }
        Policy::Regexp {
            regex,
            source,
            flags,
        } => {
            let s = text?;
            (!regex.is_match(s)).then(|| {
                Failure::new(
                    name,
                    "MATCH_REGEXP",
                    Some(json!({"regexp": source, "flags": flags})),
                )
            })
        }
        Policy::AtLeastCapitals(n) => {
            let s = text?;
            (s.chars().filter(|c| c.is_uppercase()).count() < *n).then(|| {
                Failure::new(
                    name,
                    "AT_LEAST_X_CAPITAL_LETTERS",
                    Some(json!({"numCaps": n})),
                )
            })
        }
        Policy::AtLeastNumbers(n) => {
            let s = text?;
            (s.chars().filter(|c| c.is_ascii_digit()).count() < *n)
                .then(|| Failure::new(name, "AT_LEAST_X_NUMBERS", Some(json!({"numNums": n}))))
        }
        Policy::CannotContainOthers(fields) => {
            let s = text?.to_lowercase();
            let hit = fields.iter().any(|f| {
                object
                    .get(f)
                    .and_then(Value::as_str)
                    .is_some_and(|other| !other.is_empty() && s.contains(&other.to_lowercase()))
            });
            hit.then(|| {
                Failure::new(
                    name,
                    "CANNOT_CONTAIN_OTHERS",
                    Some(json!({"disallowedFields": fields})),
                )
            })
        }
        Policy::NoDuplicates => {
            let items = value?.as_array()?;
            let dup = items
                .iter()
                .enumerate()
                .any(|(i, a)| items.get(..i).is_some_and(|before| before.contains(a)));
            dup.then(|| Failure::new(name, "CANNOT_CONTAIN_DUPLICATES", None))
        }
    }
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces.
fn email_regex() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::expect_used)] // a constant pattern: checked by the unit tests
        regex::Regex::new(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$").expect("valid email regex")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::managed::ManagedConfig;

    fn schema() -> ManagedObjectConfig {
        let conf = ManagedConfig::from_json(&json!({"objects": [{"name": "user", "schema": {
        "required": ["userName", "mail"],
        "properties": {
            "userName": {"type": "string", "policies": [
                {"policyId": "valid-username"},
                {"policyId": "cannot-contain-characters", "params": {"forbiddenChars": ["/"]}},
                {"policyId": "maximum-length", "params": {"maxLength": 10}}]},
            "mail": {"type": "string", "policies": [{"policyId": "valid-email-address-format"}]},
            "accountStatus": {"type": "string", "policies": [
                {"policyId": "regexpMatches", "params": {"regexp": "^(active|inactive)$"}}]},
            "age": {"type": "number"}
        }}}]}))
        .unwrap();
        conf.objects.into_iter().next().unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn valid_object_passes() {
        let o = obj(
            json!({"userName": "bjensen", "mail": "b@example.com", "accountStatus": "active", "extra": 1}),
        );
        assert!(validate(&schema(), &o).is_empty());
    }

    #[test]
    fn reports_each_failure_in_idm_shape() {
        let o = obj(
            json!({"userName": "a/very/long/name", "mail": "not-an-address", "accountStatus": "gone", "age": "x"}),
        );
        let failures = validate(&schema(), &o);
        let reqs: Vec<_> = failures
            .iter()
            .map(|f| (f.property.as_str(), f.requirement))
            .collect();
        assert_eq!(
            reqs,
            vec![
                ("userName", "CANNOT_CONTAIN_CHARACTERS"),
                ("userName", "MAX_LENGTH"),
                ("mail", "VALID_EMAIL_ADDRESS_FORMAT"),
                ("accountStatus", "MATCH_REGEXP"),
                ("age", "VALID_TYPE"),
            ]
        );
        let d = detail(&failures);
        assert_eq!(d["result"], json!(false));
        assert_eq!(
            d["failedPolicyRequirements"][0]["property"],
            json!("userName")
        );
        assert_eq!(
            d["failedPolicyRequirements"][0]["policyRequirements"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn missing_required_properties() {
        let failures = validate(&schema(), &obj(json!({"userName": ""})));
        assert!(failures.contains(&Failure::new("userName", "REQUIRED", None)));
        assert!(failures.contains(&Failure::new("mail", "REQUIRED", None)));
    }

    #[test]
    fn email_format() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org"] {
            assert!(email_regex().is_match(ok), "{ok}");
        }
        for bad in ["", "a", "a@b", "a b@c.de", "@b.co", "a@@b.co", "a@b..co"] {
            assert!(!email_regex().is_match(bad), "{bad}");
        }
    }
}
