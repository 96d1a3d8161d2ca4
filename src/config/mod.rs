//! `conf/` loading: IDM file formats, `&{env.X}` substitution, validation with clear errors.
//! Every error names the file, the JSON path and what is wrong.

pub mod authentication;
pub mod managed;
pub mod provisioner;
pub mod systems;

use std::path::{Path, PathBuf};

pub use authentication::AuthConfig;
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
    /// `provisioner.openicf-salesforce.json`, when the directory has one.
    pub salesforce: Option<ProvisionerConfig>,
    /// `audit.json`: which audit topics and entries are written (the shipped default without it).
    pub audit: AuditConfig,
}

impl Conf {
    /// Loads `managed.json`, `authentication.json` and (if present) the Salesforce provisioner and `audit.json` from `dir`, substituting from the process environment.
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
        let salesforce_path = dir.join(provisioner::SALESFORCE_FILE);
        let salesforce = if salesforce_path.exists() {
            let file = ConfFile::read(&salesforce_path, env)?;
            Some(
                ProvisionerConfig::from_json(provisioner::SALESFORCE_NAME, &file.value)
                    .map_err(|e| file.invalid(e.path, e.message))?,
            )
        } else {
            None
        };
        // One connector until several are supported: a second file must not be ignored quietly.
        if let Some(other) = systems::other_provisioners(dir, provisioner::SALESFORCE_NAME)?.first()
        {
            return Err(ConfigError::Invalid {
                file: dir.join(format!("provisioner.openicf-{other}.json")),
                json_path: "/".into(),
                message: format!(
                    "idm-sync runs one connector, {} ({}); a second one is not supported yet, so {other:?} would do nothing",
                    provisioner::SALESFORCE_NAME,
                    provisioner::SALESFORCE_FILE
                ),
            });
        }
        let audit_path = dir.join("audit.json");
        let audit = if audit_path.exists() {
            let file = ConfFile::read(&audit_path, env)?;
            AuditConfig::from_json(&file.value).map_err(|e| file.invalid(e.path, e.message))?
        } else {
            AuditConfig::default()
        };
        Ok(Conf {
            dir: dir.to_owned(),
            managed,
            auth,
            salesforce,
            audit,
        })
    }
}
