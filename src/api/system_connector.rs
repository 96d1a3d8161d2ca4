//! A configured system's connector as the system routes use it: the provisioner file of a name
//! (404 otherwise) and its client once it may be called (503 while it is disabled or could not
//! be set up).

use super::error::ApiError;
use super::salesforce_errors::unavailable;
use crate::config::ProvisionerConfig;
use crate::salesforce::SalesforceClient;
use crate::services::AppState;

/// The provisioner file of `system`, or IDM's 404.
pub fn system_config<'a>(
    state: &'a AppState,
    system: &str,
) -> Result<&'a ProvisionerConfig, ApiError> {
    state
        .conf
        .system(system)
        .ok_or_else(|| ApiError::not_found(format!("Resource 'system/{system}' not found")))
}

pub fn disabled_message(system: &ProvisionerConfig) -> String {
    format!(
        "Connector disabled: enable it on the Admin UI's Connectors page, or set \"enabled\" to true in provisioner.openicf-{}.json (SF_ENABLED=true with the shipped file) when the UI never set it",
        system.name
    )
}

/// `client` of `system`, if the connector may be used.
pub async fn usable<'a>(
    system: &ProvisionerConfig,
    client: Option<&'a SalesforceClient>,
) -> Result<&'a SalesforceClient, ApiError> {
    let client = client.ok_or_else(|| {
        unavailable("Connector not available: the Salesforce client could not be set up".into())
    })?;
    if !client.enabled().await {
        return Err(unavailable(disabled_message(system)));
    }
    Ok(client)
}

/// The client of `system`, if the connector may be used.
pub async fn connected_client<'a>(
    state: &'a AppState,
    system: &str,
) -> Result<&'a SalesforceClient, ApiError> {
    let config = system_config(state, system)?;
    usable(config, state.connectors.get(&config.name)).await
}
