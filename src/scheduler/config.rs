//! `conf/schedule-*.json` in IDM's format:
//!
//! ```json
//! { "enabled": true, "persisted": true, "concurrentExecution": false,
//!   "type": "cron", "schedule": "0 0/15 * * * ?", "timeZone": "America/Los_Angeles",
//!   "misfirePolicy": "fireAndProceed", "invokeService": "sync",
//!   "invokeContext": { "action": "reconcile", "mapping": "systemSalesforceUser_managedUser" } }
//! ```
//! or `"type": "simple", "repeatInterval": 900000` (ms, optional `repeatCount`). An unknown key
//! or value is a load error naming the file and JSON path.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::cron::Cron;
use crate::config::{ConfFile, ConfigError, Invalid};

#[derive(Debug, Clone)]
pub struct Schedule {
    /// The file name without `schedule-` and `.json` (IDM's job id).
    pub id: String,
    pub enabled: bool,
    pub persisted: bool,
    pub concurrent_execution: bool,
    pub trigger: Trigger,
    pub time_zone: Tz,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub misfire: MisfirePolicy,
    pub invoke: Invoke,
    /// The file as written, echoed by `GET /openidm/scheduler/job`.
    pub source: Value,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Cron(Cron),
    /// Every `interval`; `repeat_count` repeats after the first firing (`None`: forever).
    Simple {
        interval: Duration,
        repeat_count: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MisfirePolicy {
    /// After downtime, fire once at once, then keep to the schedule.
    FireAndProceed,
    /// After downtime, wait for the next scheduled time.
    DoNothing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invoke {
    Reconcile { mapping: String },
    LiveSync { source: String },
}

const KEYS: &[&str] = &[
    "enabled",
    "persisted",
    "concurrentExecution",
    "type",
    "schedule",
    "repeatInterval",
    "repeatCount",
    "startTime",
    "endTime",
    "timeZone",
    "misfirePolicy",
    "invokeService",
    "invokeContext",
    "invokeLogLevel",
];

/// Every `schedule-*.json` of the directory, sorted by id.
pub fn load_all(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Schedule>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        file: dir.to_owned(),
        source,
    })?;
    let mut schedules = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("schedule-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let file = ConfFile::read(&entry.path(), env)?;
        schedules.push(
            Schedule::from_json(id, &file.value).map_err(|e| file.invalid(e.path, e.message))?,
        );
    }
    schedules.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(schedules)
}

impl Schedule {
    pub fn from_json(id: &str, value: &Value) -> Result<Schedule, Invalid> {
        let object = value
            .as_object()
            .ok_or_else(|| Invalid::new("/", "a schedule must be a JSON object"))?;
        if let Some(key) = object.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(Invalid::new(
                format!("/{key}"),
                format!("unsupported schedule key {key:?}"),
            ));
        }
        let flag = |key: &str, default: bool| -> Result<bool, Invalid> {
            match object.get(key) {
                None => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(Invalid::new(format!("/{key}"), "must be true or false")),
            }
        };
        let text = |key: &str| -> Result<Option<&str>, Invalid> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(Invalid::new(format!("/{key}"), "must be a string")),
            }
        };
        let time = |key: &str| -> Result<Option<DateTime<Utc>>, Invalid> {
            text(key)?
                .map(|t| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|d| d.with_timezone(&Utc))
                        .map_err(|e| {
                            Invalid::new(
                                format!("/{key}"),
                                format!("not an ISO-8601 date-time with offset: {e}"),
                            )
                        })
                })
                .transpose()
        };
        let trigger = match text("type")?.unwrap_or("cron") {
            "cron" => {
                let expr = text("schedule")?.ok_or_else(|| {
                    Invalid::new("/schedule", "a cron schedule needs a schedule expression")
                })?;
                Trigger::Cron(
                    Cron::parse(expr).map_err(|e| Invalid::new("/schedule", e.to_string()))?,
                )
            }
            "simple" => {
                let interval = object
                    .get("repeatInterval")
                    .and_then(Value::as_u64)
                    .filter(|ms| *ms >= 1000)
                    .ok_or_else(|| {
                        Invalid::new(
                            "/repeatInterval",
                            "a simple schedule needs repeatInterval in milliseconds, at least 1000",
                        )
                    })?;
                let repeat_count = match object.get("repeatCount") {
                    None => None,
                    Some(v) => match v.as_i64() {
                        Some(n) if n < 0 => None,
                        Some(n) => Some(n as u64),
                        None => {
                            return Err(Invalid::new(
                                "/repeatCount",
                                "must be a whole number (-1: forever)",
                            ));
                        }
                    },
                };
                Trigger::Simple {
                    interval: Duration::from_millis(interval),
                    repeat_count,
                }
            }
            other => {
                return Err(Invalid::new(
                    "/type",
                    format!("unknown schedule type {other:?} (cron or simple)"),
                ));
            }
        };
        let time_zone = match text("timeZone")? {
            None => chrono_tz::UTC,
            Some(tz) => tz.parse::<Tz>().map_err(|_| {
                Invalid::new(
                    "/timeZone",
                    format!("unknown time zone {tz:?} (an IANA name such as America/Los_Angeles)"),
                )
            })?,
        };
        let misfire = match text("misfirePolicy")?.unwrap_or("fireAndProceed") {
            "fireAndProceed" => MisfirePolicy::FireAndProceed,
            "doNothing" => MisfirePolicy::DoNothing,
            other => {
                return Err(Invalid::new(
                    "/misfirePolicy",
                    format!("unknown misfire policy {other:?} (fireAndProceed or doNothing)"),
                ));
            }
        };
        let service =
            text("invokeService")?.ok_or_else(|| Invalid::new("/invokeService", "missing"))?;
        if !matches!(
            service,
            "sync"
                | "org.forgerock.openidm.sync"
                | "provisioner"
                | "org.forgerock.openidm.provisioner"
        ) {
            return Err(Invalid::new(
                "/invokeService",
                format!(
                    "unsupported service {service:?}: idm-sync schedules sync (reconcile) and provisioner (liveSync)"
                ),
            ));
        }
        let context = object
            .get("invokeContext")
            .and_then(Value::as_object)
            .ok_or_else(|| Invalid::new("/invokeContext", "missing or not an object"))?;
        let context_text = |key: &str| -> Result<String, Invalid> {
            context
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    Invalid::new(format!("/invokeContext/{key}"), "missing or not a string")
                })
        };
        let invoke = match context_text("action")?.as_str() {
            "reconcile" => Invoke::Reconcile {
                mapping: context_text("mapping")?,
            },
            "liveSync" => Invoke::LiveSync {
                source: context_text("source")?,
            },
            other => {
                return Err(Invalid::new(
                    "/invokeContext/action",
                    format!("unsupported action {other:?} (reconcile or liveSync)"),
                ));
            }
        };
        let start_time = time("startTime")?;
        if matches!(
            trigger,
            Trigger::Simple {
                repeat_count: Some(_),
                ..
            }
        ) && start_time.is_none()
        {
            return Err(Invalid::new(
                "/repeatCount",
                "needs a startTime, so that every replica counts the same firings",
            ));
        }
        Ok(Schedule {
            id: id.to_owned(),
            enabled: flag("enabled", true)?,
            persisted: flag("persisted", false)?,
            concurrent_execution: flag("concurrentExecution", false)?,
            trigger,
            time_zone,
            start_time,
            end_time: time("endTime")?,
            misfire,
            invoke,
            source: value.clone(),
        })
    }

    /// The first scheduled time strictly after `after`, or `None` when the schedule has ended.
    ///
    /// A simple schedule's times lie on a grid anchored at `startTime`, or, without one, at
    /// 1970-01-01T00:00Z: every replica then computes the same firing times, which is what
    /// makes "exactly one replica runs each firing" possible.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start_time {
            Some(start) if start > after => start - chrono::Duration::milliseconds(1),
            _ => after,
        };
        let next = match &self.trigger {
            Trigger::Cron(cron) => cron.next_after(after, self.time_zone)?,
            Trigger::Simple {
                interval,
                repeat_count,
            } => {
                let anchor = self.start_time.unwrap_or(DateTime::UNIX_EPOCH);
                let step = i64::try_from(interval.as_millis()).ok()?;
                let since = (after - anchor).num_milliseconds();
                let k = if since < 0 { 0 } else { since / step + 1 };
                if repeat_count.is_some_and(|limit| k as u64 > limit) {
                    return None;
                }
                anchor + chrono::Duration::milliseconds(k.checked_mul(step)?)
            }
        };
        match self.end_time {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }

    /// The latest scheduled time at or before `now` (for misfires), if any.
    pub fn previous_at_or_before(
        &self,
        now: DateTime<Utc>,
        horizon: chrono::Duration,
    ) -> Option<DateTime<Utc>> {
        let mut t = self.next_after(now - horizon)?;
        if t > now {
            return None;
        }
        while let Some(n) = self.next_after(t) {
            if n > now {
                break;
            }
            t = n;
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn idm_examples_parse() {
        // OpenIDM's samples/schedules/schedule-reconcile_systemLdapAccount_managedUser.json
        let s = Schedule::from_json(
            "reconcile_systemLdapAccount_managedUser",
            &json!({"enabled": false, "persisted": true, "type": "cron", "schedule": "0 0/1 * * * ?",
                    "invokeService": "sync", "invokeContext": {"action": "reconcile", "mapping": "systemLdapAccounts_managedUser"},
                    "invokeLogLevel": "info"}),
        )
        .unwrap();
        assert!(!s.enabled && s.persisted && !s.concurrent_execution);
        assert_eq!(
            s.invoke,
            Invoke::Reconcile {
                mapping: "systemLdapAccounts_managedUser".into()
            }
        );
        // IDM 7.5 example-configurations: simple, hourly.
        let s = Schedule::from_json(
            "recon",
            &json!({"enabled": true, "type": "simple", "repeatInterval": 3600000, "persisted": true,
                    "concurrentExecution": false, "invokeService": "sync",
                    "invokeContext": {"action": "reconcile", "mapping": "m"}}),
        )
        .unwrap();
        assert_eq!(
            s.next_after(utc("2024-05-01T10:20:00Z")),
            Some(utc("2024-05-01T11:00:00Z"))
        );
        // liveSync through the provisioner service.
        let s = Schedule::from_json(
            "ls",
            &json!({"type": "simple", "repeatInterval": 15000, "invokeService": "provisioner",
                    "invokeContext": {"action": "liveSync", "source": "system/salesforce/User"}}),
        )
        .unwrap();
        assert_eq!(
            s.invoke,
            Invoke::LiveSync {
                source: "system/salesforce/User".into()
            }
        );
        assert_eq!(
            s.next_after(utc("2024-05-01T10:20:01Z")),
            Some(utc("2024-05-01T10:20:15Z"))
        );
    }

    #[test]
    fn start_end_and_repeat_count() {
        let s = Schedule::from_json(
            "x",
            &json!({"type": "simple", "repeatInterval": 60000, "repeatCount": 2,
                    "startTime": "2024-01-01T00:00:00Z", "endTime": "2024-01-02T00:00:00Z",
                    "invokeService": "sync", "invokeContext": {"action": "reconcile", "mapping": "m"}}),
        )
        .unwrap();
        assert_eq!(
            s.next_after(utc("2023-12-31T00:00:00Z")),
            Some(utc("2024-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-01-01T00:00:00Z")),
            Some(utc("2024-01-01T00:01:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-01-01T00:01:00Z")),
            Some(utc("2024-01-01T00:02:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2024-01-01T00:02:00Z")),
            None,
            "first firing plus 2 repeats"
        );
        assert_eq!(
            s.previous_at_or_before(utc("2024-01-01T00:01:30Z"), chrono::Duration::days(1)),
            Some(utc("2024-01-01T00:01:00Z"))
        );
    }

    #[test]
    fn errors_name_the_key() {
        let base = json!({"type": "cron", "schedule": "0 0/15 * * * ?", "invokeService": "sync",
                          "invokeContext": {"action": "reconcile", "mapping": "m"}});
        let mut bad = base.clone();
        bad["triggers"] = json!([]);
        assert_eq!(
            Schedule::from_json("x", &bad).unwrap_err().path,
            "/triggers"
        );
        let mut bad = base.clone();
        bad["schedule"] = json!("nonsense");
        assert_eq!(
            Schedule::from_json("x", &bad).unwrap_err().path,
            "/schedule"
        );
        let mut bad = base.clone();
        bad["timeZone"] = json!("Mars/Olympus");
        assert_eq!(
            Schedule::from_json("x", &bad).unwrap_err().path,
            "/timeZone"
        );
        let mut bad = base.clone();
        bad["invokeService"] = json!("script");
        assert_eq!(
            Schedule::from_json("x", &bad).unwrap_err().path,
            "/invokeService"
        );
        let mut bad = base;
        bad["invokeContext"]["action"] = json!("performAction");
        assert_eq!(
            Schedule::from_json("x", &bad).unwrap_err().path,
            "/invokeContext/action"
        );
    }
}
