//! What `sync.json`'s mappings name, checked against the rest of `conf/` at start: a mapping
//! whose source or target is a managed type `managed.json` lacks, or a system no provisioner
//! file defines, would otherwise load and then do nothing without a word.

use std::path::Path;

use super::{Conf, ConfigError};
use crate::mapping::{Mapping, SyncConfig};

/// The provisioner files' common prefix and suffix (`provisioner.openicf-<name>.json`).
const PROVISIONER_PREFIX: &str = "provisioner.openicf-";
const PROVISIONER_SUFFIX: &str = ".json";

/// A resource a mapping reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// `managed/<type>`.
    Managed(&'a str),
    /// `system/<name>/<object type>`.
    System { name: &'a str, object_type: &'a str },
}

impl<'a> Resource<'a> {
    pub fn parse(text: &'a str) -> Option<Resource<'a>> {
        let mut parts = text.split('/');
        let resource = match (parts.next(), parts.next(), parts.next()) {
            (Some("managed"), Some(kind), None) if !kind.is_empty() => Resource::Managed(kind),
            (Some("system"), Some(name), Some(object_type))
                if !name.is_empty() && !object_type.is_empty() =>
            {
                Resource::System { name, object_type }
            }
            _ => return None,
        };
        parts.next().is_none().then_some(resource)
    }
}

/// Every mapping's source and target exist in `conf`; `Err` names `sync.json` and the JSON path.
pub fn check_mappings(conf: &Conf, sync: &SyncConfig) -> Result<(), ConfigError> {
    let invalid = |i: usize, field: &str, message: String| ConfigError::Invalid {
        file: conf.dir.join("sync.json"),
        json_path: format!("/mappings/{i}/{field}"),
        message,
    };
    for (i, mapping) in sync.mappings.iter().enumerate() {
        for (field, text) in [("source", &mapping.source), ("target", &mapping.target)] {
            if let Err(e) = check_resource(conf, text) {
                return Err(invalid(i, field, e.to_string()));
            }
        }
    }
    for system in &conf.systems {
        let prefix = format!("system/{}/", system.name);
        let mapped = |m: &Mapping| m.source.starts_with(&prefix) || m.target.starts_with(&prefix);
        if !sync.mappings.iter().any(mapped) {
            tracing::warn!(
                system = %system.name,
                "no mapping in sync.json reads or writes system/{}: its users are not synchronized",
                system.name
            );
        }
    }
    Ok(())
}

/// Why a mapping's source or target is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ResourceError {
    #[error("{0:?} is neither managed/<type> nor system/<name>/<object type>")]
    Shape(String),
    #[error("{text} names the managed object type {kind:?}, which managed.json does not define")]
    ManagedType { text: String, kind: String },
    #[error(
        "{text} names the system {name:?}, which no conf/{PROVISIONER_PREFIX}{name}{PROVISIONER_SUFFIX} defines"
    )]
    System { text: String, name: String },
    #[error(
        "{text} names the object type {object_type:?}, which the objectTypes of conf/{PROVISIONER_PREFIX}{name}{PROVISIONER_SUFFIX} do not define"
    )]
    ObjectType {
        text: String,
        name: String,
        object_type: String,
    },
}

fn check_resource(conf: &Conf, text: &str) -> Result<(), ResourceError> {
    let owned = |s: &str| s.to_owned();
    match Resource::parse(text) {
        None => Err(ResourceError::Shape(owned(text))),
        Some(Resource::Managed(kind)) => match conf.managed.object(kind) {
            Some(_) => Ok(()),
            None => Err(ResourceError::ManagedType {
                text: owned(text),
                kind: owned(kind),
            }),
        },
        Some(Resource::System { name, object_type }) => {
            let Some(system) = conf.system(name) else {
                return Err(ResourceError::System {
                    text: owned(text),
                    name: owned(name),
                });
            };
            if system.object_types.contains_key(object_type) {
                Ok(())
            } else {
                Err(ResourceError::ObjectType {
                    text: owned(text),
                    name: owned(name),
                    object_type: owned(object_type),
                })
            }
        }
    }
}

/// The file defining system `name`, relative to the configuration directory.
pub fn provisioner_file(name: &str) -> String {
    format!("{PROVISIONER_PREFIX}{name}{PROVISIONER_SUFFIX}")
}

/// The system names of the provisioner files in `dir`, in name order.
pub fn provisioner_names(dir: &Path) -> Result<Vec<String>, ConfigError> {
    names_between(dir, PROVISIONER_PREFIX, PROVISIONER_SUFFIX)
}

/// The `<name>` of every `<prefix><name><suffix>` file of `dir`, sorted.
pub fn names_between(dir: &Path, prefix: &str, suffix: &str) -> Result<Vec<String>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ConfigError::Io {
        file: dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|file| {
            let name = file.strip_prefix(prefix)?.strip_suffix(suffix)?;
            (!name.is_empty()).then(|| name.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_managed_types_or_system_object_types() {
        assert_eq!(
            Resource::parse("managed/user"),
            Some(Resource::Managed("user"))
        );
        assert_eq!(
            Resource::parse("system/salesforceEU/User"),
            Some(Resource::System {
                name: "salesforceEU",
                object_type: "User"
            })
        );
        for bad in [
            "managed",
            "managed/",
            "managed/user/x",
            "system/sf",
            "system//User",
            "repo/x",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }
}
