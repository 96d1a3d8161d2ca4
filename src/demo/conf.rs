//! The demo's configuration: a copy of `conf/` whose Salesforce connector points at the
//! in-process emulator. Literal values, not `&{env.SF_*}`: a shell exported for a real org
//! must not send the demo to that org, nor real credentials to the emulator.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::ChangeEventsConfig;
use crate::config::provisioner::SALESFORCE_FILE;

#[derive(Debug, thiserror::Error)]
pub enum DemoConfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} has no configurationProperties object: the demo cannot point it at the emulator")]
    NoConnectorProperties(PathBuf),
}

/// The emulator's connected app, as the connector must see it.
pub struct EmulatorApp<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub refresh_token: &'a str,
    /// Its Pub/Sub API: the demo subscribes to its change events.
    pub pubsub_url: &'a str,
}

/// Copies `source` to `target` (emptied first) and points the connector at the emulator.
/// The recon schedule keeps its cron but does not make up a missed firing at start-up:
/// the demo runs the first reconciliation itself, and two at once would collide.
pub fn write(source: &Path, target: &Path, app: &EmulatorApp<'_>) -> Result<(), DemoConfError> {
    if target.exists() {
        std::fs::remove_dir_all(target).map_err(|source| DemoConfError::Write {
            path: target.to_owned(),
            source,
        })?;
    }
    copy_dir(source, target)?;
    let provisioner = target.join(SALESFORCE_FILE);
    edit_json(&provisioner, |value| {
        let props = value
            .get_mut("configurationProperties")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| DemoConfError::NoConnectorProperties(provisioner.clone()))?;
        props.insert("loginUrl".into(), app.token_url.into());
        props.insert("clientId".into(), app.client_id.into());
        props.insert("clientSecret".into(), app.client_secret.into());
        props.insert("refreshToken".into(), app.refresh_token.into());
        value["enabled"] = Value::Bool(true);
        Ok(())
    })?;
    // Change events on, from the emulator's Pub/Sub API (created when the source has none).
    let events = target.join(ChangeEventsConfig::file_name("salesforce"));
    if !events.exists() {
        std::fs::write(&events, "{}").map_err(|source| DemoConfError::Write {
            path: events.clone(),
            source,
        })?;
    }
    edit_json(&events, |value| {
        value["enabled"] = Value::Bool(true);
        value["endpoint"] = app.pubsub_url.into();
        Ok(())
    })?;
    let schedule = target.join("schedule-recon.json");
    if schedule.exists() {
        edit_json(&schedule, |value| {
            value["misfirePolicy"] = "doNothing".into();
            Ok(())
        })?;
    }
    Ok(())
}

fn edit_json(
    path: &Path,
    edit: impl FnOnce(&mut Value) -> Result<(), DemoConfError>,
) -> Result<(), DemoConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| DemoConfError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut value: Value = serde_json::from_str(&text).map_err(|source| DemoConfError::Json {
        path: path.to_owned(),
        source,
    })?;
    edit(&mut value)?;
    let text = serde_json::to_string_pretty(&value).map_err(|source| DemoConfError::Json {
        path: path.to_owned(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| DemoConfError::Write {
        path: path.to_owned(),
        source,
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), DemoConfError> {
    let read = |source| DemoConfError::Read {
        path: from.to_owned(),
        source,
    };
    std::fs::create_dir_all(to).map_err(|source| DemoConfError::Write {
        path: to.to_owned(),
        source,
    })?;
    for entry in std::fs::read_dir(from).map_err(read)? {
        let entry = entry.map_err(read)?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(read)?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|source| DemoConfError::Write {
                path: dst.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_the_shipped_conf_at_the_emulator() {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let target = std::env::temp_dir().join(format!("idm-demo-conf-{}", uuid::Uuid::new_v4()));
        let app = EmulatorApp {
            token_url: "http://127.0.0.1:1/services/oauth2/token",
            client_id: "k",
            client_secret: "s",
            refresh_token: "r",
            pubsub_url: "http://127.0.0.1:2",
        };
        write(&source, &target, &app).unwrap();
        let conf = crate::config::Conf::load_with(&target, &|_| None).unwrap();
        let client = conf.system("salesforce").unwrap().client.clone();
        assert_eq!(client.login_url.as_str(), app.token_url);
        let schedule: Value = serde_json::from_str(
            &std::fs::read_to_string(target.join("schedule-recon.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(schedule["misfirePolicy"], "doNothing");
        let events = &conf.change_events;
        assert_eq!(events.len(), 1);
        assert!(events[0].enabled);
        assert_eq!(events[0].endpoint, app.pubsub_url);
        std::fs::remove_dir_all(&target).unwrap();
    }
}
