//! `conf/` loading: IDM file formats, `&{env.X}` substitution, validation with clear errors.
//! Every error names the file, the JSON path and what is wrong.

pub mod authentication;
pub mod change_events;
pub mod managed;
pub mod provisioner;
pub mod systems;

use std::path::{Path, PathBuf};

pub use authentication::AuthConfig;
pub use change_events::ChangeEventsConfig;
pub use idm_core::audit_config::AuditConfig;
pub use idm_core::conf_file::{ConfFile, ConfigError, Invalid};
pub use idm_core::env_subst;
pub use managed::ManagedConfig;
pub use provisioner::ProvisionerConfig;

/// The whole configuration directory, parsed and validated.
#[derive(Debug, Clone)]
pub struct Conf {
    pub dir: PathBuf,
    pub managed: ManagedConfig,
    pub auth: AuthConfig,
    /// Every `provisioner.openicf-<name>.json`: one Salesforce connector each, by system name.
    pub systems: Vec<ProvisionerConfig>,
    /// `audit.json`: which audit topics and entries are written (the shipped default without it).
    pub audit: AuditConfig,
    /// Every `changeevents-<connector>.json`: the connectors whose change events are subscribed to.
    pub change_events: Vec<ChangeEventsConfig>,
}

impl Conf {
    /// Loads `managed.json`, `authentication.json` and (if present) the provisioners and
    /// `audit.json` from `dir`, substituting from the process environment.
    pub fn load(dir: &Path) -> Result<Conf, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::load_with(dir, &env)
    }

    /// As [`Conf::load`], with an explicit environment lookup.
    pub fn load_with(
        dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Conf, ConfigError> {
        let managed_file = ConfFile::read(&dir.join("managed.json"), env)?;
        let managed = ManagedConfig::from_json(&managed_file.value)
            .map_err(|e| managed_file.invalid(e.path, e.message))?;
        let auth_path = dir.join("authentication.json");
        let auth = if auth_path.exists() {
            let auth_file = ConfFile::read(&auth_path, env)?;
            AuthConfig::from_json(&auth_file.value)
                .map_err(|e| auth_file.invalid(e.path, e.message))?
        } else {
            AuthConfig::from_env(env)
        };
        let mut systems = Vec::new();
        for name in systems::provisioner_names(dir)? {
            let file = ConfFile::read(&dir.join(systems::provisioner_file(&name)), env)?;
            systems.push(
                ProvisionerConfig::from_json(&name, &file.value)
                    .map_err(|e| file.invalid(e.path, e.message))?,
            );
        }
        let audit_path = dir.join("audit.json");
        let audit = if audit_path.exists() {
            let file = ConfFile::read(&audit_path, env)?;
            AuditConfig::from_json(&file.value).map_err(|e| file.invalid(e.path, e.message))?
        } else {
            AuditConfig::default()
        };
        let names: Vec<String> = systems.iter().map(|s| s.name.clone()).collect();
        let change_events = ChangeEventsConfig::load_all(dir, &names, env)?;
        Ok(Conf {
            dir: dir.to_owned(),
            managed,
            auth,
            systems,
            audit,
            change_events,
        })
    }

    /// The connector of system `name`.
    pub fn system(&self, name: &str) -> Option<&ProvisionerConfig> {
        self.systems.iter().find(|s| s.name == name)
    }
}
