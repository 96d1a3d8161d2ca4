//! `conf/changeevents-<connector>.json`: whether idm-sync subscribes to the Salesforce change
//! events (Change Data Capture over the Pub/Sub API) of that connector, and how. IDM has no such
//! file; absent or `"enabled": false`, nothing subscribes and nothing else changes.
//!
//! ```json
//! { "enabled": true, "topic": "/data/UserChangeEvent", "batchSize": 400,
//!   "endpoint": "https://api.pubsub.salesforce.com:7443" }
//! ```

use std::path::Path;

use serde_json::Value;

use super::{ConfFile, ConfigError, Invalid};

const PREFIX: &str = "changeevents-";
const SUFFIX: &str = ".json";

/// Salesforce's change event channel for users.
pub const DEFAULT_TOPIC: &str = "/data/UserChangeEvent";
/// Changed users gathered before they are applied together: one recon run's worth
/// (`recon::by_ids::MAX_IDS_PER_RUN`).
pub const DEFAULT_BATCH_SIZE: usize = 400;
/// The largest batch: five recon runs.
pub const MAX_BATCH_SIZE: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEventsConfig {
    /// The connector (`provisioner.openicf-<connector>.json`).
    pub connector: String,
    pub enabled: bool,
    pub topic: String,
    pub batch_size: usize,
    /// The Pub/Sub API's URL (`https://…`; `http://` for a local emulator).
    pub endpoint: String,
}

impl ChangeEventsConfig {
    pub fn file_name(connector: &str) -> String {
        format!("{PREFIX}{connector}{SUFFIX}")
    }

    pub fn from_json(connector: &str, v: &Value) -> Result<ChangeEventsConfig, Invalid> {
        let obj = v
            .as_object()
            .ok_or_else(|| Invalid::new("", "expected an object"))?;
        for key in obj.keys() {
            if !["enabled", "topic", "batchSize", "endpoint"].contains(&key.as_str()) {
                return Err(Invalid::new(
                    format!("/{key}"),
                    "unknown setting (enabled, topic, batchSize, endpoint)",
                ));
            }
        }
        let enabled = match obj.get("enabled") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err(Invalid::new("/enabled", "expected true or false")),
        };
        let text = |key: &str, default: &str| match obj.get(key) {
            None => Ok(default.to_owned()),
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(_) => Err(Invalid::new(
                format!("/{key}"),
                "expected a non-empty string",
            )),
        };
        let topic = text("topic", DEFAULT_TOPIC)?;
        if !topic.starts_with('/') {
            return Err(Invalid::new(
                "/topic",
                "a channel name starts with / (/data/UserChangeEvent)",
            ));
        }
        let endpoint = text("endpoint", sf_client::pubsub::DEFAULT_ENDPOINT)?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(Invalid::new("/endpoint", "expected an https:// URL"));
        }
        let batch_size = match obj.get("batchSize") {
            None => DEFAULT_BATCH_SIZE,
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                .ok_or_else(|| {
                    Invalid::new(
                        "/batchSize",
                        format!("expected a number from 1 to {MAX_BATCH_SIZE}"),
                    )
                })?,
        };
        Ok(ChangeEventsConfig {
            connector: connector.to_owned(),
            enabled,
            topic,
            batch_size,
            endpoint,
        })
    }

    /// Every `changeevents-*.json` of `dir`, each naming a connector of `connectors`.
    pub fn load_all(
        dir: &Path,
        connectors: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<ChangeEventsConfig>, ConfigError> {
        let names = super::systems::names_between(dir, PREFIX, SUFFIX)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let file = ConfFile::read(&dir.join(Self::file_name(&name)), env)?;
            if !connectors.contains(&name) {
                return Err(file.invalid(
                    String::new(),
                    format!("no connector {name:?}: there is no provisioner.openicf-{name}.json"),
                ));
            }
            out.push(
                Self::from_json(&name, &file.value).map_err(|e| file.invalid(e.path, e.message))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_bounds() {
        let c = ChangeEventsConfig::from_json("salesforce", &json!({"enabled": true})).unwrap();
        assert_eq!(
            c,
            ChangeEventsConfig {
                connector: "salesforce".into(),
                enabled: true,
                topic: DEFAULT_TOPIC.into(),
                batch_size: DEFAULT_BATCH_SIZE,
                endpoint: sf_client::pubsub::DEFAULT_ENDPOINT.into(),
            }
        );
        assert!(
            !ChangeEventsConfig::from_json("s", &json!({}))
                .unwrap()
                .enabled
        );
        for (bad, path) in [
            (json!({"batchSize": 0}), "/batchSize"),
            (json!({"batchSize": 2001}), "/batchSize"),
            (json!({"topic": "data/UserChangeEvent"}), "/topic"),
            (json!({"endpoint": "ftp://x"}), "/endpoint"),
            (json!({"enabled": "yes"}), "/enabled"),
            (json!({"replay": "EARLIEST"}), "/replay"),
        ] {
            assert_eq!(
                ChangeEventsConfig::from_json("s", &bad).unwrap_err().path,
                path,
                "{bad}"
            );
        }
    }
}
