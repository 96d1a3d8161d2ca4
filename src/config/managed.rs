//! `conf/managed.json`: managed object types, their schema, and the property policies
//! that IDM's policy service enforces on every write.

use serde_json::{Map, Value};

use super::Invalid;

#[derive(Debug, Clone)]
pub struct ManagedConfig {
    pub objects: Vec<ManagedObjectConfig>,
}

#[derive(Debug, Clone)]
pub struct ManagedObjectConfig {
    pub name: String,
    pub required: Vec<String>,
    pub properties: Vec<PropertyConfig>,
}

#[derive(Debug, Clone)]
pub struct PropertyConfig {
    pub name: String,
    /// Allowed JSON types; empty means any.
    pub types: Vec<JsonType>,
    pub policies: Vec<Policy>,
    /// `"scope": "private"`: stored, never returned over REST.
    pub private: bool,
    /// `secureHash` or `encryption`: stored as an argon2 hash, never in clear text.
    pub hashed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Array,
    Object,
    Null,
}

impl JsonType {
    fn parse(s: &str) -> Option<JsonType> {
        Some(match s {
            "string" => JsonType::String,
            "number" => JsonType::Number,
            "integer" => JsonType::Integer,
            "boolean" => JsonType::Boolean,
            "array" => JsonType::Array,
            "object" | "relationship" => JsonType::Object,
            "null" => JsonType::Null,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            JsonType::String => "string",
            JsonType::Number => "number",
            JsonType::Integer => "integer",
            JsonType::Boolean => "boolean",
            JsonType::Array => "array",
            JsonType::Object => "object",
            JsonType::Null => "null",
        }
    }

    pub fn admits(self, value: &Value) -> bool {
        match self {
            JsonType::String => value.is_string(),
            JsonType::Number => value.is_number(),
            JsonType::Integer => value.is_i64() || value.is_u64(),
            JsonType::Boolean => value.is_boolean(),
            JsonType::Array => value.is_array(),
            JsonType::Object => value.is_object(),
            JsonType::Null => value.is_null(),
        }
    }
}

/// The property policies idm-sync enforces, by IDM `policyId`.
#[derive(Debug, Clone)]
pub enum Policy {
    /// `required`, `not-empty`, `not-null`.
    Required,
    /// `unique`, `valid-username`: no other object of the type has the same value.
    Unique,
    /// `cannot-contain-characters` (`forbiddenChars`).
    CannotContainCharacters(Vec<String>),
    /// `minimum-length` (`minLength`).
    MinLength(usize),
    /// `maximum-length` (`maxLength`).
    MaxLength(usize),
    /// `valid-email-address-format`.
    ValidEmail,
    /// `regexpMatches` (`regexp`, `flags`).
    Regexp {
        regex: regex::Regex,
        source: String,
        flags: String,
    },
    /// `at-least-X-capitals` (`numCaps`).
    AtLeastCapitals(usize),
    /// `at-least-X-numbers` (`numNums`).
    AtLeastNumbers(usize),
    /// `cannot-contain-others` (`disallowedFields`): the value may not contain these properties' values.
    CannotContainOthers(Vec<String>),
    /// `cannot-contain-duplicates`: array items are distinct.
    NoDuplicates,
}

impl ManagedConfig {
    pub fn object(&self, name: &str) -> Option<&ManagedObjectConfig> {
        self.objects.iter().find(|o| o.name == name)
    }

    pub fn from_json(value: &Value) -> Result<ManagedConfig, Invalid> {
        let objects = value
            .get("objects")
            .and_then(Value::as_array)
            .ok_or_else(|| Invalid::new("/objects", "missing or not an array"))?;
        let mut parsed = Vec::with_capacity(objects.len());
        for (i, object) in objects.iter().enumerate() {
            let at = format!("/objects/{i}");
            let parsed_object = parse_object(object, &at)?;
            if parsed
                .iter()
                .any(|o: &ManagedObjectConfig| o.name == parsed_object.name)
            {
                return Err(Invalid::new(
                    format!("{at}/name"),
                    format!("duplicate object name {:?}", parsed_object.name),
                ));
            }
            parsed.push(parsed_object);
        }
        Ok(ManagedConfig { objects: parsed })
    }
}

impl ManagedObjectConfig {
    pub fn property(&self, name: &str) -> Option<&PropertyConfig> {
        self.properties.iter().find(|p| p.name == name)
    }
}

fn parse_object(object: &Value, at: &str) -> Result<ManagedObjectConfig, Invalid> {
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| Invalid::new(format!("{at}/name"), "missing, empty or contains '/'"))?
        .to_owned();
    let empty = Map::new();
    let schema = match object.get("schema") {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Invalid::new(format!("{at}/schema"), "must be an object")),
    };
    let required = match schema.get("required") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    Invalid::new(
                        format!("{at}/schema/required/{i}"),
                        "must be a property name",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Invalid::new(
                format!("{at}/schema/required"),
                "must be an array",
            ));
        }
    };
    let properties = match schema.get("properties") {
        None => Vec::new(),
        Some(Value::Object(props)) => props
            .iter()
            .filter(|(name, _)| !name.starts_with('_'))
            .map(|(name, p)| parse_property(name, p, &format!("{at}/schema/properties/{name}")))
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Invalid::new(
                format!("{at}/schema/properties"),
                "must be an object",
            ));
        }
    };
    Ok(ManagedObjectConfig {
        name,
        required,
        properties,
    })
}

fn parse_property(name: &str, p: &Value, at: &str) -> Result<PropertyConfig, Invalid> {
    let types = match p.get("type") {
        None => Vec::new(),
        Some(Value::String(t)) => vec![parse_type(t, &format!("{at}/type"))?],
        Some(Value::Array(ts)) => ts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let path = format!("{at}/type/{i}");
                t.as_str()
                    .ok_or_else(|| Invalid::new(path.clone(), "must be a type name"))
                    .and_then(|t| parse_type(t, &path))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(Invalid::new(
                format!("{at}/type"),
                "must be a string or an array",
            ));
        }
    };
    let policies = match p.get("policies") {
        None => Vec::new(),
        Some(Value::Array(ps)) => ps
            .iter()
            .enumerate()
            .map(|(i, policy)| parse_policy(policy, &format!("{at}/policies/{i}")))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(Invalid::new(format!("{at}/policies"), "must be an array")),
    };
    Ok(PropertyConfig {
        name: name.to_owned(),
        types,
        policies,
        private: p.get("scope").and_then(Value::as_str) == Some("private"),
        hashed: p.get("secureHash").is_some() || p.get("encryption").is_some(),
    })
}

fn parse_type(t: &str, at: &str) -> Result<JsonType, Invalid> {
    JsonType::parse(t).ok_or_else(|| Invalid::new(at, format!("unknown type {t:?}")))
}

fn parse_policy(policy: &Value, at: &str) -> Result<Policy, Invalid> {
    let id = policy
        .get("policyId")
        .and_then(Value::as_str)
        .ok_or_else(|| Invalid::new(format!("{at}/policyId"), "missing or not a string"))?;
    let params = policy.get("params");
    let param = |key: &str| params.and_then(|p| p.get(key));
    let count = |key: &str| -> Result<usize, Invalid> {
        param(key)
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .ok_or_else(|| {
                Invalid::new(
                    format!("{at}/params/{key}"),
                    "missing or not a whole number",
                )
            })
    };
    let strings = |key: &str| -> Result<Vec<String>, Invalid> {
        let path = format!("{at}/params/{key}");
        match param(key) {
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Invalid::new(path.clone(), "must hold strings"))
                })
                .collect(),
            _ => Err(Invalid::new(
                path,
                "missing: a string or an array of strings",
            )),
        }
    };
    Ok(match id {
        "required" | "not-empty" | "not-null" => Policy::Required,
        "unique" | "valid-username" => Policy::Unique,
        "cannot-contain-characters" => Policy::CannotContainCharacters(strings("forbiddenChars")?),
        "minimum-length" => Policy::MinLength(count("minLength")?),
        "maximum-length" => Policy::MaxLength(count("maxLength")?),
        "valid-email-address-format" => Policy::ValidEmail,
        "at-least-X-capitals" => Policy::AtLeastCapitals(count("numCaps")?),
        "at-least-X-numbers" => Policy::AtLeastNumbers(count("numNums")?),
        "cannot-contain-others" => Policy::CannotContainOthers(strings("disallowedFields")?),
        "cannot-contain-duplicates" => Policy::NoDuplicates,
        "regexpMatches" => {
            let source = param("regexp")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    Invalid::new(format!("{at}/params/regexp"), "missing or not a string")
                })?
                .to_owned();
            let flags = param("flags")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut builder = regex::RegexBuilder::new(&source);
            for flag in flags.chars() {
                match flag {
                    'i' => builder.case_insensitive(true),
                    'm' => builder.multi_line(true),
                    's' => builder.dot_matches_new_line(true),
                    other => {
                        return Err(Invalid::new(
                            format!("{at}/params/flags"),
                            format!("unsupported regexp flag {other:?} (supported: i, m, s)"),
                        ));
                    }
                };
            }
            let regex = builder.build().map_err(|e| {
                Invalid::new(
                    format!("{at}/params/regexp"),
                    format!("invalid regular expression: {e}"),
                )
            })?;
            Policy::Regexp {
                regex,
                source,
                flags,
            }
        }
        other => {
            return Err(Invalid::new(
                format!("{at}/policyId"),
                format!("unsupported policy {other:?}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_properties_types_and_policies() {
        let conf = ManagedConfig::from_json(&json!({"objects": [{"name": "user", "schema": {
        "required": ["userName"],
        "properties": {
            "_id": {"type": "string"},
            "userName": {"type": "string", "policies": [
                {"policyId": "valid-username"},
                {"policyId": "maximum-length", "params": {"maxLength": 255}}]},
            "password": {"type": "string", "scope": "private", "encryption": {"purpose": "x"}},
            "manager": {"type": ["relationship", "null"]}
        }}}]}))
        .unwrap();
        let user = conf.object("user").unwrap();
        assert_eq!(user.required, vec!["userName"]);
        assert!(user.property("_id").is_none());
        assert!(matches!(
            user.property("userName").unwrap().policies[1],
            Policy::MaxLength(255)
        ));
        let password = user.property("password").unwrap();
        assert!(password.private && password.hashed);
        assert_eq!(
            user.property("manager").unwrap().types,
            vec![JsonType::Object, JsonType::Null]
        );
    }

    #[test]
    fn errors_name_the_json_path() {
        let err = ManagedConfig::from_json(&json!({"objects": [{"name": "user", "schema": {
            "properties": {"mail": {"policies": [{"policyId": "no-such-policy"}]}}}}]}))
        .unwrap_err();
        assert_eq!(
            err.path,
            "/objects/0/schema/properties/mail/policies/0/policyId"
        );
        assert!(err.message.contains("no-such-policy"));

        let err = ManagedConfig::from_json(&json!({"objects": [{"name": "user", "schema": {
            "properties": {"sn": {"policies": [{"policyId": "minimum-length", "params": {}}]}}}}]}))
        .unwrap_err();
        assert_eq!(
            err.path,
            "/objects/0/schema/properties/sn/policies/0/params/minLength"
        );
    }
}
