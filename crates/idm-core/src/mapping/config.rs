//! `conf/sync.json`: the mappings, parsed, validated and with every script compiled.
//!
//! Every key IDM defines for a mapping is either supported here or refused at load time with
//! its JSON path: idm-sync never ignores configuration silently, because an ignored key (say
//! `linkQualifiers`) would make it behave differently from IDM without anyone noticing.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::action::Action;
use super::condition::Condition;
use super::hooks::Hooks;
use super::script::{DEFAULT_BUDGET, Script, ScriptEngine};
use super::situation::Situation;
use crate::conf_file::{ConfFile, ConfigError, Invalid};
use crate::filter;

/// Mapping keys idm-sync supports.
const MAPPING_KEYS: &[&str] = &[
    "name",
    "displayName",
    "source",
    "target",
    "links",
    "enableSync",
    "properties",
    "validSource",
    "validTarget",
    "sourceCondition",
    "correlationQuery",
    "correlationScript",
    "policies",
    "onCreate",
    "onUpdate",
    "onDelete",
    "onLink",
    "onUnlink",
    "result",
    "runTargetPhase",
    "allowEmptySourceSet",
    "correlateEmptyTargetSet",
    "prefetchLinks",
    "sourceQuery",
    "targetQuery",
    "taskThreads",
    "feedSize",
];
const PROPERTY_KEYS: &[&str] = &["source", "target", "transform", "condition", "default"];
const POLICY_KEYS: &[&str] = &["situation", "action", "condition", "postAction"];

/// The default link qualifier, the only one idm-sync supports (no `linkQualifiers`).
pub const DEFAULT_LINK_QUALIFIER: &str = "default";

/// Where scripts come from and how long they may run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Directories searched, in order, for a script's `"file"`.
    pub script_dirs: Vec<PathBuf>,
    /// Time budget of one script evaluation.
    pub script_budget: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            script_dirs: Vec::new(),
            script_budget: DEFAULT_BUDGET,
        }
    }
}

/// The loaded `sync.json`. `Send + Sync`: share it in an `Arc`.
#[derive(Debug)]
pub struct SyncConfig {
    pub mappings: Vec<Mapping>,
    engine: ScriptEngine,
}

/// One mapping. Defaults are IDM's.
#[derive(Debug)]
pub struct Mapping {
    pub name: String,
    pub display_name: Option<String>,
    /// Source resource, e.g. `system/salesforce/User`.
    pub source: String,
    /// Target resource, e.g. `managed/user`.
    pub target: String,
    /// `links` as configured: the mapping whose links this one reuses, in reverse.
    pub links: Option<String>,
    /// Implicit sync (managed source) / liveSync (system source) on. Default true.
    pub enable_sync: bool,
    pub properties: Vec<PropertyMapping>,
    pub valid_source: Option<Script>,
    pub valid_target: Option<Script>,
    pub source_condition: Option<Condition>,
    pub correlation_query: Option<Script>,
    pub correlation_script: Option<Script>,
    pub policies: Vec<Policy>,
    /// Default true.
    pub run_target_phase: bool,
    /// Default false.
    pub allow_empty_source_set: bool,
    /// Default false.
    pub correlate_empty_target_set: bool,
    /// Default true.
    pub prefetch_links: bool,
    /// e.g. `{"_queryFilter": "..."}`; its `_queryFilter`, when present, is checked at load.
    pub source_query: Option<Value>,
    pub target_query: Option<Value>,
    /// Default 10.
    pub task_threads: u64,
    /// Default 1000.
    pub feed_size: u64,
    /// onCreate, onUpdate, onDelete, onLink, onUnlink, result.
    pub hooks: Hooks,
    /// A digest of everything that decides this mapping's results (its JSON, its script
    /// files): recon's unchanged fast path is valid only under the same fingerprint.
    pub fingerprint: [u8; 32],
}

impl Mapping {
    /// The `linkType` of this mapping's links: its own name, or the `links` mapping's.
    pub fn link_type(&self) -> &str {
        self.links.as_deref().unwrap_or(&self.name)
    }

    /// True when this mapping reads another mapping's links in reverse: its source ids are
    /// the links' `secondId`, its target ids their `firstId`.
    pub fn links_reversed(&self) -> bool {
        self.links.is_some()
    }

    /// The digest of a source record under this mapping: equal digests map equally.
    pub fn source_digest(&self, record: &Map<String, Value>) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.fingerprint);
        // A map serializes as its JSON object: no copy of the record on recon's hot path. It
        // cannot fail; if it ever did, random bytes make a digest that matches nothing.
        let bytes =
            serde_json::to_vec(record).unwrap_or_else(|_| uuid::Uuid::new_v4().as_bytes().to_vec());
        hasher.update(bytes);
        hasher.finalize().into()
    }
}

/// One entry of `properties`.
#[derive(Debug)]
pub struct PropertyMapping {
    /// Target property as configured (`mail`, `/name/givenName`).
    pub target: String,
    pub(crate) target_path: Vec<String>,
    /// Source property as configured; `Some("")` is the whole source object; `None` no source.
    pub source: Option<String>,
    pub(crate) source_path: Option<Vec<String>>,
    pub transform: Option<Script>,
    pub condition: Option<Condition>,
    pub default: Option<Value>,
}

/// One entry of `policies`.
#[derive(Debug)]
pub struct Policy {
    pub situation: Situation,
    pub action: PolicyAction,
    pub condition: Option<Condition>,
    pub post_action: Option<Script>,
    /// Position in `policies`, for messages.
    pub index: usize,
}

/// A policy's action: a name, or a script returning one.
#[derive(Debug)]
pub enum PolicyAction {
    Static(Action),
    Script(Script),
}

impl SyncConfig {
    /// Loads `sync.json` from `conf_dir`, with `&{env.X}` substitution from the process
    /// environment; scripts' `"file"`s resolve under `conf_dir`, then `conf_dir/../script`.
    pub fn load(conf_dir: &Path) -> Result<SyncConfig, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::load_with(conf_dir, &env, DEFAULT_BUDGET)
    }

    /// As [`SyncConfig::load`], with an explicit environment and script time budget.
    pub fn load_with(
        conf_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        script_budget: Duration,
    ) -> Result<SyncConfig, ConfigError> {
        let file = ConfFile::read(&conf_dir.join("sync.json"), env)?;
        let options = LoadOptions {
            script_dirs: default_script_dirs(conf_dir),
            script_budget,
        };
        let sync = Self::from_json_with(&file.value, &options)
            .map_err(|e| file.invalid(e.path, e.message))?;
        for m in &sync.mappings {
            if (m.task_threads, m.feed_size) != (10, 1000) {
                tracing::info!(
                    mapping = %m.name,
                    task_threads = m.task_threads,
                    feed_size = m.feed_size,
                    "taskThreads and feedSize do not tune idm-sync: recon works a page at a time"
                );
            }
        }
        Ok(sync)
    }

    /// Parses an already-read `sync.json`; script files resolve against the current directory.
    pub fn from_json(value: &Value) -> Result<SyncConfig, Invalid> {
        Self::from_json_with(value, &LoadOptions::default())
    }

    pub fn from_json_with(value: &Value, options: &LoadOptions) -> Result<SyncConfig, Invalid> {
        let engine = ScriptEngine::with_budget(options.script_budget)
            .map_err(|e| Invalid::new("", e.message))?;
        let top = value
            .as_object()
            .ok_or_else(|| Invalid::new("", "sync.json must be a JSON object"))?;
        for key in top.keys() {
            // `_id` appears in configurations exported from IDM's REST API (`config/sync`).
            if key != "mappings" && key != "_id" {
                return Err(Invalid::new(
                    format!("/{}", escape(key)),
                    format!("unsupported key {key:?} (sync.json has only \"mappings\")"),
                ));
            }
        }
        let list = match top.get("mappings") {
            None => &Vec::new(),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(Invalid::new("/mappings", "must be an array")),
        };
        let loader = Loader {
            engine: &engine,
            dirs: &options.script_dirs,
            files: RefCell::default(),
        };
        let mut mappings = Vec::with_capacity(list.len());
        let mut names = HashSet::new();
        for (i, raw) in list.iter().enumerate() {
            let path = format!("/mappings/{i}");
            let mapping = loader.mapping(&path, raw)?;
            if !names.insert(mapping.name.clone()) {
                return Err(Invalid::new(
                    format!("{path}/name"),
                    format!("duplicate mapping name {:?}", mapping.name),
                ));
            }
            mappings.push(mapping);
        }
        check_links(&mappings)?;
        Ok(SyncConfig { mappings, engine })
    }

    pub fn mapping(&self, name: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.name == name)
    }

    /// The mappings implicit sync runs for a change of `source` (e.g. `managed/user`): those
    /// with that source and `enableSync`, in `sync.json` order (IDM's order).
    pub fn sync_mappings_for<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a Mapping> {
        self.mappings
            .iter()
            .filter(move |m| m.enable_sync && m.source == source)
    }

    /// The engine that compiled this configuration's scripts.
    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }
}

/// `conf/` itself, then `script/` beside it (IDM's project layout), then `conf/script`.
fn default_script_dirs(conf_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![conf_dir.to_owned()];
    if let Some(parent) = conf_dir.parent() {
        dirs.push(parent.join("script"));
    }
    dirs.push(conf_dir.join("script"));
    dirs
}

/// JSON-pointer escaping of one key.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_links(mappings: &[Mapping]) -> Result<(), Invalid> {
    for (i, m) in mappings.iter().enumerate() {
        let Some(links) = &m.links else { continue };
        let path = format!("/mappings/{i}/links");
        let other = mappings
            .iter()
            .find(|o| &o.name == links)
            .ok_or_else(|| Invalid::new(&path, format!("no mapping named {links:?}")))?;
        if other.name == m.name {
            return Err(Invalid::new(&path, "a mapping cannot reuse its own links"));
        }
        if other.links.is_some() {
            return Err(Invalid::new(
                &path,
                format!("mapping {links:?} itself reuses another mapping's links"),
            ));
        }
        if other.source != m.target || other.target != m.source {
            return Err(Invalid::new(
                &path,
                format!(
                    "mapping {links:?} maps {} to {}; to reuse its links this mapping must map {} to {}",
                    other.source, other.target, other.target, other.source
                ),
            ));
        }
    }
    Ok(())
}

struct Loader<'a> {
    engine: &'a ScriptEngine,
    dirs: &'a [PathBuf],
    /// Digests of the script files the mapping being loaded reads (for its fingerprint).
    files: RefCell<Vec<[u8; 32]>>,
}

impl Loader<'_> {
    fn mapping(&self, path: &str, raw: &Value) -> Result<Mapping, Invalid> {
        self.files.borrow_mut().clear();
        let obj = raw
            .as_object()
            .ok_or_else(|| Invalid::new(path, "a mapping must be a JSON object"))?;
        for key in obj.keys() {
            if !MAPPING_KEYS.contains(&key.as_str()) {
                return Err(Invalid::new(
                    format!("{path}/{}", escape(key)),
                    format!("unsupported mapping key {key:?}"),
                ));
            }
        }
        let name = required_string(obj, path, "name")?;
        if name.is_empty() {
            return Err(Invalid::new(format!("{path}/name"), "must not be empty"));
        }
        let properties = match obj.get("properties") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, p)| self.property(&format!("{path}/properties/{i}"), p))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Invalid::new(
                    format!("{path}/properties"),
                    "must be an array",
                ));
            }
        };
        let policies = match obj.get("policies") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, p)| self.policy(&format!("{path}/policies/{i}"), i, p))
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(Invalid::new(format!("{path}/policies"), "must be an array"));
            }
        };
        let correlation_query = self.optional_script(obj, path, "correlationQuery")?;
        let correlation_script = self.optional_script(obj, path, "correlationScript")?;
        if correlation_query.is_some() && correlation_script.is_some() {
            return Err(Invalid::new(
                format!("{path}/correlationScript"),
                "a mapping has either correlationQuery or correlationScript, not both",
            ));
        }
        let hooks = Hooks {
            on_create: self.optional_script(obj, path, "onCreate")?,
            on_update: self.optional_script(obj, path, "onUpdate")?,
            on_delete: self.optional_script(obj, path, "onDelete")?,
            on_link: self.optional_script(obj, path, "onLink")?,
            on_unlink: self.optional_script(obj, path, "onUnlink")?,
            result: self.optional_script(obj, path, "result")?,
        };
        Ok(Mapping {
            display_name: optional_string(obj, path, "displayName")?,
            source: required_string(obj, path, "source")?,
            target: required_string(obj, path, "target")?,
            links: optional_string(obj, path, "links")?,
            enable_sync: bool_or(obj, path, "enableSync", true)?,
            properties,
            valid_source: self.optional_script(obj, path, "validSource")?,
            valid_target: self.optional_script(obj, path, "validTarget")?,
            source_condition: match obj.get("sourceCondition") {
                None => None,
                Some(v) => Some(self.condition(&format!("{path}/sourceCondition"), v)?),
            },
            correlation_query,
            correlation_script,
            policies,
            run_target_phase: bool_or(obj, path, "runTargetPhase", true)?,
            allow_empty_source_set: bool_or(obj, path, "allowEmptySourceSet", false)?,
            correlate_empty_target_set: bool_or(obj, path, "correlateEmptyTargetSet", false)?,
            prefetch_links: bool_or(obj, path, "prefetchLinks", true)?,
            source_query: query(obj, path, "sourceQuery")?,
            target_query: query(obj, path, "targetQuery")?,
            task_threads: uint_or(obj, path, "taskThreads", 10, 0)?,
            feed_size: uint_or(obj, path, "feedSize", 1000, 1)?,
            hooks,
            fingerprint: self.fingerprint(raw),
            name,
        })
    }

    /// What decides the mapping's results: its JSON and the script files it reads.
    fn fingerprint(&self, raw: &Value) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(raw.to_string().as_bytes());
        for file in self.files.borrow().iter() {
            hasher.update(file);
        }
        hasher.finalize().into()
    }

    fn property(&self, path: &str, raw: &Value) -> Result<PropertyMapping, Invalid> {
        let obj = raw
            .as_object()
            .ok_or_else(|| Invalid::new(path, "a property mapping must be a JSON object"))?;
        for key in obj.keys() {
            if !PROPERTY_KEYS.contains(&key.as_str()) {
                return Err(Invalid::new(
                    format!("{path}/{}", escape(key)),
                    format!("unsupported property mapping key {key:?}"),
                ));
            }
        }
        let target = required_string(obj, path, "target")?;
        let target_path = pointer_tokens(&target)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Invalid::new(
                    format!("{path}/target"),
                    format!("{target:?} is not a property name or JSON pointer"),
                )
            })?;
        let source = optional_string(obj, path, "source")?;
        let source_path = match &source {
            None => None,
            Some(s) => Some(pointer_tokens(s).ok_or_else(|| {
                Invalid::new(
                    format!("{path}/source"),
                    format!("{s:?} is not a property name or JSON pointer"),
                )
            })?),
        };
        Ok(PropertyMapping {
            target_path,
            source_path,
            transform: self.optional_script(obj, path, "transform")?,
            condition: match obj.get("condition") {
                None => None,
                Some(v) => Some(self.condition(&format!("{path}/condition"), v)?),
            },
            default: obj.get("default").cloned(),
            target,
            source,
        })
    }

    fn policy(&self, path: &str, index: usize, raw: &Value) -> Result<Policy, Invalid> {
        let obj = raw
            .as_object()
            .ok_or_else(|| Invalid::new(path, "a policy must be a JSON object"))?;
        for key in obj.keys() {
            if !POLICY_KEYS.contains(&key.as_str()) {
                return Err(Invalid::new(
                    format!("{path}/{}", escape(key)),
                    format!("unsupported policy key {key:?}"),
                ));
            }
        }
        let situation_name = required_string(obj, path, "situation")?;
        let situation = Situation::from_name(&situation_name).ok_or_else(|| {
            Invalid::new(
                format!("{path}/situation"),
                format!(
                    "unknown situation {situation_name:?} (one of {})",
                    Situation::ALL.map(Situation::as_str).join(", ")
                ),
            )
        })?;
        let action_path = format!("{path}/action");
        let action = match obj.get("action") {
            None => return Err(Invalid::new(action_path, "required")),
            Some(Value::String(name)) => {
                let action = Action::from_name(name).ok_or_else(|| {
                    Invalid::new(
                        &action_path,
                        format!(
                            "unknown action {name:?} (one of {})",
                            Action::ALL.map(Action::as_str).join(", ")
                        ),
                    )
                })?;
                if !situation.allows(action) {
                    return Err(Invalid::new(
                        &action_path,
                        format!(
                            "action {action} is not valid for situation {situation} (valid: {})",
                            allowed_list(situation)
                        ),
                    ));
                }
                PolicyAction::Static(action)
            }
            Some(v @ Value::Object(_)) => PolicyAction::Script(self.script(&action_path, v)?),
            Some(_) => {
                return Err(Invalid::new(
                    action_path,
                    "must be an action name or a script",
                ));
            }
        };
        Ok(Policy {
            situation,
            action,
            condition: match obj.get("condition") {
                None => None,
                Some(v) => Some(self.condition(&format!("{path}/condition"), v)?),
            },
            post_action: self.optional_script(obj, path, "postAction")?,
            index,
        })
    }

    /// A filter string or a script object.
    fn condition(&self, path: &str, raw: &Value) -> Result<Condition, Invalid> {
        match raw {
            Value::String(s) => filter::parse(s)
                .map(Condition::Filter)
                .map_err(|e| Invalid::new(path, e.to_string())),
            Value::Object(_) => Ok(Condition::Script(self.script(path, raw)?)),
            _ => Err(Invalid::new(
                path,
                "must be a query filter string or a script object",
            )),
        }
    }

    fn optional_script(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        key: &str,
    ) -> Result<Option<Script>, Invalid> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => self.script(&format!("{path}/{key}"), v).map(Some),
        }
    }

    /// `{"type": "text/javascript", "source"|"file": ..., "globals": {...}}`. Other keys are
    /// variables too (IDM copies a script object's extra keys into its scope).
    fn script(&self, path: &str, raw: &Value) -> Result<Script, Invalid> {
        let obj = raw
            .as_object()
            .ok_or_else(|| Invalid::new(path, "a script must be a JSON object"))?;
        match obj.get("type").and_then(Value::as_str) {
            Some("text/javascript") => {}
            Some(other) => {
                return Err(Invalid::new(
                    format!("{path}/type"),
                    format!(
                        "unsupported script type {other:?} (idm-sync runs \"text/javascript\" only)"
                    ),
                ));
            }
            None => {
                return Err(Invalid::new(
                    format!("{path}/type"),
                    "required: \"text/javascript\"",
                ));
            }
        }
        let mut globals = match obj.get("globals") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(g)) => g.clone(),
            Some(_) => return Err(Invalid::new(format!("{path}/globals"), "must be an object")),
        };
        for (key, value) in obj {
            if !matches!(key.as_str(), "type" | "source" | "file" | "globals") {
                globals.insert(key.clone(), value.clone());
            }
        }
        match (obj.get("source"), obj.get("file")) {
            (Some(Value::String(source)), None) => self
                .engine
                .compile(path, source, &globals)
                .map_err(|e| Invalid::new(format!("{path}/source"), e.message)),
            (None, Some(Value::String(file))) => {
                let found = self.find_script(file).ok_or_else(|| {
                    Invalid::new(
                        format!("{path}/file"),
                        format!(
                            "script file {file:?} not found (looked in {})",
                            self.dirs
                                .iter()
                                .map(|d| d.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
                if let Ok(bytes) = std::fs::read(&found) {
                    self.files.borrow_mut().push(Sha256::digest(&bytes).into());
                }
                self.engine.compile_file(&found, &globals).map_err(|e| {
                    Invalid::new(
                        format!("{path}/file"),
                        format!("{}: {}", found.display(), e.message),
                    )
                })
            }
            (Some(_), Some(_)) => Err(Invalid::new(
                path,
                "a script has either \"source\" or \"file\", not both",
            )),
            (None, None) => Err(Invalid::new(path, "a script needs \"source\" or \"file\"")),
            (Some(_), None) => Err(Invalid::new(format!("{path}/source"), "must be a string")),
            (None, Some(_)) => Err(Invalid::new(format!("{path}/file"), "must be a string")),
        }
    }

    fn find_script(&self, file: &str) -> Option<PathBuf> {
        let given = Path::new(file);
        if given.is_absolute() {
            return given.is_file().then(|| given.to_owned());
        }
        if self.dirs.is_empty() {
            return given.is_file().then(|| given.to_owned());
        }
        self.dirs
            .iter()
            .map(|d| d.join(given))
            .find(|p| p.is_file())
    }
}

fn allowed_list(situation: Situation) -> String {
    Action::ALL
        .into_iter()
        .filter(|a| situation.allows(*a))
        .map(Action::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a`, `/a/b` → tokens; `""` → no tokens (the whole object). `None` if malformed.
pub(crate) fn pointer_tokens(s: &str) -> Option<Vec<String>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    filter::Pointer::parse(s).ok().map(|p| p.tokens().to_vec())
}

fn required_string(obj: &Map<String, Value>, path: &str, key: &str) -> Result<String, Invalid> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Invalid::new(format!("{path}/{key}"), "must be a string")),
        None => Err(Invalid::new(format!("{path}/{key}"), "required")),
    }
}

fn optional_string(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
) -> Result<Option<String>, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Invalid::new(format!("{path}/{key}"), "must be a string")),
    }
}

fn bool_or(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    default: bool,
) -> Result<bool, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(Invalid::new(
            format!("{path}/{key}"),
            "must be true or false",
        )),
    }
}

fn uint_or(
    obj: &Map<String, Value>,
    path: &str,
    key: &str,
    default: u64,
    min: u64,
) -> Result<u64, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_u64().filter(|n| *n >= min).ok_or_else(|| {
            Invalid::new(
                format!("{path}/{key}"),
                format!("must be an integer of at least {min}"),
            )
        }),
    }
}

fn query(obj: &Map<String, Value>, path: &str, key: &str) -> Result<Option<Value>, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(q)) => {
            if let Some(f) = q.get("_queryFilter") {
                let text = f.as_str().ok_or_else(|| {
                    Invalid::new(format!("{path}/{key}/_queryFilter"), "must be a string")
                })?;
                filter::parse(text).map_err(|e| {
                    Invalid::new(format!("{path}/{key}/_queryFilter"), e.to_string())
                })?;
            }
            Ok(Some(v.clone()))
        }
        Some(_) => Err(Invalid::new(
            format!("{path}/{key}"),
            "must be a query object such as {\"_queryFilter\": \"true\"}",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal(extra: Value) -> Value {
        let mut m = json!({"name": "a_b", "source": "system/a/x", "target": "managed/user"});
        if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                m.insert(k.clone(), v.clone());
            }
        }
        json!({ "mappings": [m] })
    }

    #[test]
    fn defaults_are_idms() {
        let c = SyncConfig::from_json(&minimal(json!({}))).unwrap();
        let m = &c.mappings[0];
        assert!(m.enable_sync && m.run_target_phase && m.prefetch_links);
        assert!(!m.allow_empty_source_set && !m.correlate_empty_target_set);
        assert_eq!((m.task_threads, m.feed_size), (10, 1000));
        assert_eq!(m.link_type(), "a_b");
        assert!(!m.links_reversed());
    }

    #[test]
    fn unsupported_keys_name_their_path() {
        let err = SyncConfig::from_json(&minimal(json!({"onSync": {}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/mappings/0/onSync: unsupported mapping key \"onSync\""
        );
        let err = SyncConfig::from_json(&minimal(
            json!({"properties": [{"target": "a", "sourc": "b"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/properties/0/sourc");
        let err = SyncConfig::from_json(&minimal(
            json!({"policies": [{"situation": "ABSENT", "action": "CREATE", "x": 1}]}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/policies/0/x");
    }

    #[test]
    fn bad_policies_are_refused() {
        let err = SyncConfig::from_json(&minimal(
            json!({"policies": [{"situation": "CONFIRMED", "action": "CREATE"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/policies/0/action");
        assert!(
            err.message.contains("not valid for situation CONFIRMED"),
            "{err}"
        );
        let err = SyncConfig::from_json(&minimal(
            json!({"policies": [{"situation": "CONFIRMD", "action": "UPDATE"}]}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/policies/0/situation");
        let err = SyncConfig::from_json(&minimal(
            json!({"policies": [{"situation": "ABSENT", "action": "MAKE"}]}),
        ))
        .unwrap_err();
        assert!(err.message.contains("unknown action \"MAKE\""), "{err}");
    }

    #[test]
    fn scripts_and_filters_are_checked_at_load() {
        let err = SyncConfig::from_json(&minimal(
            json!({"validSource": {"type": "text/javascript", "source": "source.("}}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/validSource/source");
        assert!(err.message.contains("SyntaxError"), "{err}");
        let err = SyncConfig::from_json(&minimal(
            json!({"validSource": {"type": "groovy", "source": "true"}}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/validSource/type");
        let err = SyncConfig::from_json(&minimal(json!({"sourceCondition": "/source/x eq"})))
            .unwrap_err();
        assert_eq!(err.path, "/mappings/0/sourceCondition");
        let err = SyncConfig::from_json(&minimal(
            json!({"validSource": {"type": "text/javascript", "file": "nope.js"}}),
        ))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/0/validSource/file");
    }

    #[test]
    fn duplicate_names_and_bad_links() {
        let m = json!({"name": "a", "source": "s", "target": "t"});
        let err = SyncConfig::from_json(&json!({"mappings": [m, m]})).unwrap_err();
        assert_eq!(err.path, "/mappings/1/name");
        let err = SyncConfig::from_json(&json!({"mappings": [
            {"name": "a", "source": "s", "target": "t"},
            {"name": "b", "source": "t", "target": "x", "links": "a"}
        ]}))
        .unwrap_err();
        assert_eq!(err.path, "/mappings/1/links");
        let err = SyncConfig::from_json(&json!({"mappings": [
            {"name": "b", "source": "t", "target": "s", "links": "zzz"}
        ]}))
        .unwrap_err();
        assert!(err.message.contains("no mapping named"), "{err}");
        let ok = SyncConfig::from_json(&json!({"mappings": [
            {"name": "a", "source": "s", "target": "t"},
            {"name": "b", "source": "t", "target": "s", "links": "a"}
        ]}))
        .unwrap();
        assert_eq!(ok.mappings[1].link_type(), "a");
        assert!(ok.mappings[1].links_reversed());
    }
}
