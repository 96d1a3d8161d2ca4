//! `--state FILE`: the org (users, profiles, access records, id sequence) and issued tokens as JSON, loaded at start
//! and rewritten after changes — debounced, written to a temporary file and renamed over the old
//! one, so a crash leaves either the old or the new state, never half of one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::access::catalog;
use super::access::persist::{self, AccessState};
use super::errors::EmulatorError;
use super::oauth::TokenStore;
use super::org::{Org, Profile};
use super::schema::{Field, FieldType, Record, Val, parse_datetime, record_to_json};
use super::{Shared, lock, read};

const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StateFile {
    format_version: u32,
    org_id: String,
    next_seq: u64,
    profiles: Vec<Profile>,
    users: Vec<Value>,
    /// Absent in files written before the access objects were modelled: the default catalog
    /// is built then.
    #[serde(default)]
    access: Option<AccessState>,
    tokens: TokenStore,
}

/// Why a user of the state file cannot be loaded; [`load`] prefixes the user's number.
#[derive(Debug, thiserror::Error)]
enum UserRecordError {
    #[error("user #{0} is not an object")]
    NotAnObject(usize),
    #[error("{field}: bad date-time {value}")]
    BadDateTime { field: &'static str, value: String },
    /// `value` is shown as JSON.
    #[error("{field}: unexpected value {value}")]
    UnexpectedValue { field: &'static str, value: Value },
}

fn record_from_json(obj: &Map<String, Value>) -> Result<Record, UserRecordError> {
    let mut rec = Record::default();
    for f in Field::all() {
        let d = f.def();
        rec[f] =
            match (obj.get(d.name), d.ty) {
                (None | Some(Value::Null), _) => Val::Null,
                (Some(Value::Bool(b)), FieldType::Boolean) => Val::Bool(*b),
                (Some(Value::String(s)), FieldType::DateTime) => parse_datetime(s)
                    .map(Val::DateTime)
                    .ok_or_else(|| UserRecordError::BadDateTime {
                        field: d.name,
                        value: s.clone(),
                    })?,
                (Some(Value::String(s)), t) if t.is_text() => Val::Str(s.clone()),
                (Some(other), _) => {
                    return Err(UserRecordError::UnexpectedValue {
                        field: d.name,
                        value: other.clone(),
                    });
                }
            };
    }
    Ok(rec)
}

/// Loads an org and its tokens from a state file.
pub fn load(path: &Path) -> Result<(Org, TokenStore), EmulatorError> {
    let bad = |reason: String| EmulatorError::BadFile {
        path: path.to_owned(),
        what: "state",
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let state: StateFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if state.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} (expected {FORMAT_VERSION})",
            state.format_version
        )));
    }
    let users = state
        .users
        .iter()
        .enumerate()
        .map(|(n, u)| {
            u.as_object()
                .ok_or(UserRecordError::NotAnObject(n))
                .and_then(record_from_json)
                .map_err(|e| bad(format!("user #{n}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut org = Org::from_parts(state.org_id, state.profiles, users, state.next_seq);
    org.access = match state.access {
        Some(access) => persist::from_state(access, &org, &org.profiles)
            .map_err(|e| bad(format!("access: {e}")))?,
        None => catalog::build_default(&mut org.profiles),
    };
    org.sync_all_profile_assignments(chrono::Utc::now());
    Ok((org, state.tokens))
}

/// Serializes the current state (under the locks, briefly).
fn snapshot(shared: &Shared) -> Result<Vec<u8>, serde_json::Error> {
    let (org_id, next_seq, profiles, users, access) = {
        let org = read(&shared.org);
        (
            org.org_id.clone(),
            org.next_seq,
            org.profiles.clone(),
            org.users.iter().map(record_to_json).collect(),
            persist::to_state(&org),
        )
    };
    let tokens = lock(&shared.tokens).persistable();
    let state = StateFile {
        format_version: FORMAT_VERSION,
        org_id,
        next_seq,
        profiles,
        users,
        access: Some(access),
        tokens,
    };
    serde_json::to_vec(&state)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp: PathBuf = path.to_owned();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".to_owned());
    tmp.set_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Writes the state file now if anything changed since the last write.
pub async fn write_now(shared: &Arc<Shared>) -> Result<(), EmulatorError> {
    let Some(path) = shared.config.state_file.clone() else {
        return Ok(());
    };
    if !shared.dirty.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    let s = shared.clone();
    let result = tokio::task::spawn_blocking(move || {
        let bytes = snapshot(&s).map_err(std::io::Error::other)?;
        write_atomically(&path, &bytes)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    result.map_err(|source| {
        // Not written: try again at the next change or at shutdown.
        shared.dirty.store(true, Ordering::Release);
        EmulatorError::WriteState {
            path: shared.config.state_file.clone().unwrap_or_default(),
            source,
        }
    })
}

/// The background writer: waits for a change, lets more changes gather, writes.
pub fn spawn_writer(shared: Arc<Shared>) -> Option<tokio::task::JoinHandle<()>> {
    shared.config.state_file.as_ref()?;
    Some(tokio::spawn(async move {
        loop {
            if !shared.dirty.load(Ordering::Acquire) {
                shared.dirty_notify.notified().await;
            }
            tokio::time::sleep(shared.config.state_debounce).await;
            if let Err(e) = write_now(&shared).await {
                tracing::warn!(error = %e, cause = ?std::error::Error::source(&e), "state file not written");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error_of(user: Value) -> String {
        let Value::Object(user) = user else {
            panic!("not an object: {user}")
        };
        record_from_json(&user).unwrap_err().to_string()
    }

    #[test]
    fn bad_users_name_the_field_and_the_value() {
        assert_eq!(
            error_of(json!({"CreatedDate": "yesterday"})),
            "CreatedDate: bad date-time yesterday"
        );
        assert_eq!(
            error_of(json!({"IsActive": "yes"})),
            r#"IsActive: unexpected value "yes""#
        );
        assert_eq!(
            UserRecordError::NotAnObject(3).to_string(),
            "user #3 is not an object"
        );
    }
}
