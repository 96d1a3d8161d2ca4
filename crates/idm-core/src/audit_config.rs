//! `conf/audit.json` in IDM's format: which topics are written (`eventHandlers[].config.topics`)
//! and, per topic, which events (`eventTopics.<topic>.filter`: `actions`, `fields`).
//!
//! idm-sync writes the `recon` and `sync` topics to its repository (the `/openidm/audit/*`
//! endpoints read them back); every enabled handler's topics count, whatever its class, and the
//! other topics IDM knows (`access`, `activity`, `authentication`, `config`) are accepted and not
//! written. Filters follow IDM's, with two rules of ours, both in the file's documentation:
//! an entry that failed is always written when its topic is on (operators need every failure),
//! and under an `actions` filter an entry counts as its action only when it did something: an
//! UPDATE that found the target already equal to the mapping is not an `update`. A topic
//! without a filter writes every entry.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::conf_file::Invalid;

/// The topics idm-sync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Recon,
    Sync,
}

impl Topic {
    fn name(self) -> &'static str {
        match self {
            Topic::Recon => "recon",
            Topic::Sync => "sync",
        }
    }
}

/// Topics IDM defines that idm-sync accepts in the file and does not write.
const OTHER_TOPICS: [&str; 4] = ["access", "activity", "authentication", "config"];

/// The actions the shipped filter keeps: what changed something, failed or was to be reported.
const CHANGING_ACTIONS: [&str; 7] = [
    "create",
    "update",
    "delete",
    "link",
    "unlink",
    "exception",
    "report",
];

/// The actions a `recon` or `sync` filter may name (IDM's sync actions, lower case).
const ACTIONS: [&str; 10] = [
    "create",
    "update",
    "delete",
    "link",
    "unlink",
    "exception",
    "ignore",
    "report",
    "noreport",
    "async",
];

/// The entry fields a `fields` filter may name.
const FIELDS: [&str; 5] = ["situation", "action", "status", "reconciling", "mapping"];

/// What a filter sees of an audit entry.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    pub action: Option<&'a str>,
    pub situation: Option<&'a str>,
    pub status: &'a str,
    /// `source` or `target` (recon entries only).
    pub reconciling: Option<&'a str>,
    pub mapping: &'a str,
    /// The entry's action changed nothing (an UPDATE that found the target in step).
    pub unchanged: bool,
}

impl AuditEvent<'_> {
    fn field(&self, name: &str) -> Option<&str> {
        match name {
            "situation" => self.situation,
            "action" => self.action,
            "status" => Some(self.status),
            "reconciling" => self.reconciling,
            "mapping" => Some(self.mapping),
            _ => None,
        }
    }

    fn failed(&self) -> bool {
        self.status.eq_ignore_ascii_case("FAILURE")
    }
}

/// One topic's filter; the default admits every entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicFilter {
    /// Lower-case action names; `None`: any action.
    actions: Option<BTreeSet<String>>,
    /// Each named field's value must be one of its values (compared case-insensitively).
    fields: Vec<(String, BTreeSet<String>)>,
}

impl TopicFilter {
    /// Whether the entry is written.
    pub fn admits(&self, event: &AuditEvent<'_>) -> bool {
        if event.failed() {
            return true;
        }
        if let Some(actions) = &self.actions {
            let listed = event
                .action
                .is_some_and(|a| actions.contains(&a.to_ascii_lowercase()));
            if !listed || event.unchanged {
                return false;
            }
        }
        self.fields.iter().all(|(name, values)| {
            event
                .field(name)
                .is_some_and(|v| values.contains(&v.to_ascii_lowercase()))
        })
    }
}

/// The parsed file: for each topic idm-sync writes, its filter, or `None` when it is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    recon: Option<TopicFilter>,
    sync: Option<TopicFilter>,
}

impl Default for AuditConfig {
    /// What `conf/audit.json` ships, and what applies without the file: both topics on,
    /// entries that changed something, reported or failed.
    fn default() -> Self {
        let changes = TopicFilter {
            actions: Some(CHANGING_ACTIONS.into_iter().map(str::to_owned).collect()),
            fields: Vec::new(),
        };
        AuditConfig {
            recon: Some(changes.clone()),
            sync: Some(changes),
        }
    }
}

impl AuditConfig {
    /// The topic's filter, or `None` when the topic is not written.
    pub fn topic(&self, topic: Topic) -> Option<&TopicFilter> {
        match topic {
            Topic::Recon => self.recon.as_ref(),
            Topic::Sync => self.sync.as_ref(),
        }
    }

    /// Whether an entry of `topic` is written.
    pub fn admits(&self, topic: Topic, event: &AuditEvent<'_>) -> bool {
        self.topic(topic).is_some_and(|f| f.admits(event))
    }

    pub fn from_json(value: &Value) -> Result<AuditConfig, Invalid> {
        let root = value
            .as_object()
            .ok_or_else(|| Invalid::new("", "must be an object"))?;
        let handlers = match root.get("eventHandlers") {
            None => return Err(Invalid::new("/eventHandlers", "missing")),
            Some(Value::Array(h)) => h,
            Some(_) => return Err(Invalid::new("/eventHandlers", "must be an array")),
        };
        let mut on = BTreeSet::new();
        for (i, handler) in handlers.iter().enumerate() {
            let path = format!("/eventHandlers/{i}/config");
            let config = handler
                .get("config")
                .and_then(Value::as_object)
                .ok_or_else(|| Invalid::new(&path, "missing: a handler needs a config object"))?;
            match config.get("enabled") {
                None | Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) => continue,
                Some(_) => {
                    return Err(Invalid::new(format!("{path}/enabled"), "must be a boolean"));
                }
            }
            let topics = config
                .get("topics")
                .and_then(Value::as_array)
                .ok_or_else(|| Invalid::new(format!("{path}/topics"), "must be an array"))?;
            for (j, t) in topics.iter().enumerate() {
                let name = t.as_str().ok_or_else(|| {
                    Invalid::new(format!("{path}/topics/{j}"), "must be a string")
                })?;
                on.insert(name.to_owned());
            }
        }
        let topics = match root.get("eventTopics") {
            None => None,
            Some(Value::Object(t)) => Some(t),
            Some(_) => return Err(Invalid::new("/eventTopics", "must be an object")),
        };
        if let Some(topics) = topics {
            for name in topics.keys() {
                let known = [Topic::Recon, Topic::Sync].iter().any(|t| t.name() == name)
                    || OTHER_TOPICS.contains(&name.as_str());
                if !known {
                    return Err(Invalid::new(
                        format!("/eventTopics/{name}"),
                        "unknown topic (idm-sync writes recon and sync; access, activity, authentication and config are accepted and not written)",
                    ));
                }
            }
        }
        let filter_of = |topic: Topic| -> Result<Option<TopicFilter>, Invalid> {
            if !on.contains(topic.name()) {
                return Ok(None);
            }
            let filter = topics
                .and_then(|t| t.get(topic.name()))
                .and_then(|t| t.get("filter"));
            match filter {
                None => Ok(Some(TopicFilter::default())),
                Some(f) => {
                    parse_filter(&format!("/eventTopics/{}/filter", topic.name()), f).map(Some)
                }
            }
        };
        Ok(AuditConfig {
            recon: filter_of(Topic::Recon)?,
            sync: filter_of(Topic::Sync)?,
        })
    }
}

fn parse_filter(path: &str, value: &Value) -> Result<TopicFilter, Invalid> {
    let object = value
        .as_object()
        .ok_or_else(|| Invalid::new(path, "must be an object"))?;
    let mut filter = TopicFilter::default();
    for (key, v) in object {
        let at = format!("{path}/{key}");
        match key.as_str() {
            "actions" => {
                let mut actions = BTreeSet::new();
                for (i, a) in strings(&at, v)?.into_iter().enumerate() {
                    let a = a.to_ascii_lowercase();
                    if !ACTIONS.contains(&a.as_str()) {
                        return Err(Invalid::new(
                            format!("{at}/{i}"),
                            format!("unknown action {a:?} (one of {})", ACTIONS.join(", ")),
                        ));
                    }
                    actions.insert(a);
                }
                filter.actions = Some(actions);
            }
            "fields" => {
                let list = v
                    .as_array()
                    .ok_or_else(|| Invalid::new(&at, "must be an array"))?;
                for (i, field) in list.iter().enumerate() {
                    let at = format!("{at}/{i}");
                    let name = field
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| Invalid::new(format!("{at}/name"), "must be a string"))?;
                    if !FIELDS.contains(&name) {
                        return Err(Invalid::new(
                            format!("{at}/name"),
                            format!("unknown field {name:?} (one of {})", FIELDS.join(", ")),
                        ));
                    }
                    let values = field
                        .get("values")
                        .ok_or_else(|| Invalid::new(format!("{at}/values"), "missing"))?;
                    let values = strings(&format!("{at}/values"), values)?
                        .into_iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect();
                    filter.fields.push((name.to_owned(), values));
                }
            }
            "script" | "triggers" => {
                return Err(Invalid::new(
                    at,
                    "not supported by idm-sync (filter by actions or fields)",
                ));
            }
            _ => return Err(Invalid::new(at, "unknown filter (actions or fields)")),
        }
    }
    Ok(filter)
}

fn strings<'a>(path: &str, value: &'a Value) -> Result<Vec<&'a str>, Invalid> {
    let list = value
        .as_array()
        .ok_or_else(|| Invalid::new(path, "must be an array of strings"))?;
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_str()
                .ok_or_else(|| Invalid::new(format!("{path}/{i}"), "must be a string"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(action: &'static str, status: &'static str, unchanged: bool) -> AuditEvent<'static> {
        AuditEvent {
            action: Some(action),
            situation: Some("CONFIRMED"),
            status,
            reconciling: Some("source"),
            mapping: "m",
            unchanged,
        }
    }

    fn shipped() -> Value {
        let text = include_str!("../../../conf/audit.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_shipped_file_is_the_default() {
        assert_eq!(
            AuditConfig::from_json(&shipped()).unwrap(),
            AuditConfig::default()
        );
    }

    #[test]
    fn the_default_writes_changes_and_failures_only() {
        let c = AuditConfig::default();
        assert!(c.admits(Topic::Recon, &event("CREATE", "SUCCESS", false)));
        assert!(c.admits(Topic::Recon, &event("UPDATE", "SUCCESS", false)));
        assert!(!c.admits(Topic::Recon, &event("UPDATE", "SUCCESS", true)));
        assert!(c.admits(Topic::Recon, &event("UPDATE", "FAILURE", true)));
        assert!(!c.admits(Topic::Recon, &event("IGNORE", "SUCCESS", false)));
        assert!(c.admits(Topic::Recon, &event("IGNORE", "FAILURE", false)));
        assert!(c.admits(Topic::Sync, &event("UPDATE", "SUCCESS", false)));
    }

    #[test]
    fn a_topic_without_a_filter_writes_everything_and_one_not_listed_nothing() {
        let c = AuditConfig::from_json(&json!({
            "eventHandlers": [
                {"class": "json", "config": {"name": "json", "topics": ["access", "recon"]}},
                {"class": "off", "config": {"name": "off", "enabled": false, "topics": ["sync"]}}
            ],
            "eventTopics": {"activity": {"filter": {"actions": ["create"]}}}
        }))
        .unwrap();
        assert!(c.admits(Topic::Recon, &event("UPDATE", "SUCCESS", true)));
        assert!(c.topic(Topic::Sync).is_none());
        assert!(!c.admits(Topic::Sync, &event("UPDATE", "FAILURE", false)));
    }

    #[test]
    fn fields_filters_narrow_by_value() {
        let c = AuditConfig::from_json(&json!({
            "eventHandlers": [{"config": {"topics": ["recon"]}}],
            "eventTopics": {"recon": {"filter": {"fields": [{"name": "situation", "values": ["ABSENT", "found"]}]}}}
        }))
        .unwrap();
        let mut e = event("CREATE", "SUCCESS", false);
        assert!(!c.admits(Topic::Recon, &e));
        e.situation = Some("FOUND");
        assert!(c.admits(Topic::Recon, &e));
    }

    #[test]
    fn mistakes_name_their_place() {
        let bad = |v: Value| AuditConfig::from_json(&v).unwrap_err().path;
        assert_eq!(bad(json!({})), "/eventHandlers");
        assert_eq!(
            bad(json!({"eventHandlers": [{"config": {"topics": ["recon"]}}],
                "eventTopics": {"recon": {"filter": {"actions": ["create", "explode"]}}}})),
            "/eventTopics/recon/filter/actions/1"
        );
        assert_eq!(
            bad(json!({"eventHandlers": [{"config": {"topics": ["recon"]}}],
                "eventTopics": {"recon": {"filter": {"script": {}}}}})),
            "/eventTopics/recon/filter/script"
        );
        assert_eq!(
            bad(json!({"eventHandlers": [{"config": {"topics": ["recon"]}}],
                "eventTopics": {"recno": {}}})),
            "/eventTopics/recno"
        );
        assert_eq!(
            bad(json!({"eventHandlers": [{"config": {"topics": ["recon"]}}],
                "eventTopics": {"recon": {"filter": {"fields": [{"name": "colour", "values": []}]}}}})),
            "/eventTopics/recon/filter/fields/0/name"
        );
    }
}
