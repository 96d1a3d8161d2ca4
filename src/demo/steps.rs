//! The walk-through's steps, each against the REST API as an operator would do it, and each
//! watching the other side (the emulator as Salesforce, or managed users) for the result.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::client::{ClientError, Rest};
use super::report;
use sf_emulator::EmulatorHandle;

pub const MAPPING: &str = "systemSalesforceUser_managedUser";
/// How long a change may take to reach the emulator before the demo gives up.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(5);
/// The properties the outbound mapping fills from defaults or transforms on CREATE.
const CREATED_FIELDS: &[&str] = &[
    "Id",
    "Username",
    "FirstName",
    "LastName",
    "Email",
    "Alias",
    "CommunityNickname",
    "LocaleSidKey",
    "TimeZoneSidKey",
    "EmailEncodingKey",
    "LanguageLocaleKey",
    "ProfileId",
    "IsActive",
];

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Rest(#[from] ClientError),
    #[error("reconciliation {id} ended {state}: {description}")]
    ReconFailed {
        id: String,
        state: String,
        description: String,
    },
    #[error("no active managed user to edit (did the reconciliation create any?)")]
    NoUserToEdit,
    #[error("the Salesforce user {0:?} is not in the emulator: is the user linked?")]
    NotInSalesforce(String),
    #[error(
        "{what} did not reach Salesforce within {:?}; see GET /openidm/sync/failures",
        SYNC_TIMEOUT
    )]
    SyncTimeout { what: String },
    #[error("the emulator has no profile {0:?}")]
    NoProfile(&'static str),
    #[error("the emulator refused the edit of {user}: {code}: {message}")]
    Emulator {
        user: String,
        code: String,
        message: String,
    },
    #[error(
        "{what} did not reach managed/user within {:?}: is the connector's change events subscription active? (its Admin UI page says)",
        SYNC_TIMEOUT
    )]
    EventTimeout { what: String },
}

/// Step: reconcile Salesforce into managed users over REST, then print IDM's summary.
pub async fn reconcile(rest: &Rest) -> Result<Value, StepError> {
    let path = format!("/recon?_action=recon&mapping={MAPPING}&waitForCompletion=true");
    // The scheduler may have started a firing of its own: wait for it rather than fail.
    let mut attempts = 0;
    let started = loop {
        match rest.call(Method::POST, &path, None).await {
            Err(ClientError::Status { status, .. }) if status == 409 && attempts < 120 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    let id = started["_id"].as_str().unwrap_or_default().to_owned();
    let summary = rest
        .call(Method::GET, &format!("/recon/{id}"), None)
        .await?;
    if summary["state"] != "SUCCESS" {
        return Err(StepError::ReconFailed {
            id,
            state: summary["state"].as_str().unwrap_or("?").to_owned(),
            description: summary["stageDescription"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        });
    }
    report::recon_summary(&summary);
    Ok(summary)
}

/// Step: edit one linked managed user's `sn` over REST and watch `LastName` change in Salesforce.
pub async fn edit_user(rest: &Rest, emulator: &EmulatorHandle) -> Result<(), StepError> {
    let page = rest
        .call(
            Method::GET,
            "/managed/user?_queryFilter=accountStatus%20eq%20%22active%22&_sortKeys=userName&_pageSize=1&_fields=userName,sn",
            None,
        )
        .await?;
    let user = page["result"].get(0).ok_or(StepError::NoUserToEdit)?;
    let id = user["_id"].as_str().unwrap_or_default();
    let user_name = user["userName"].as_str().unwrap_or_default();
    let sn = user["sn"].as_str().unwrap_or_default();
    let before = emulator
        .user_by_username(user_name)
        .ok_or_else(|| StepError::NotInSalesforce(user_name.to_owned()))?;
    let new_sn = format!("{sn}-Demo");
    report::line(&format!(
        "managed/user/{id} ({user_name}): sn {sn:?} -> {new_sn:?}"
    ));
    report::line(&format!(
        "Salesforce User {} before: LastName {}",
        before["Id"].as_str().unwrap_or("?"),
        before["LastName"]
    ));
    let patch = json!([{"operation": "replace", "field": "/sn", "value": new_sn}]);
    let sent = Instant::now();
    rest.call(Method::PATCH, &format!("/managed/user/{id}"), Some(&patch))
        .await?;
    let committed = sent.elapsed();
    let after = wait_for(emulator, user_name, |u| u["LastName"] == new_sn.as_str())
        .await
        .ok_or_else(|| StepError::SyncTimeout {
            what: format!("the edit of {user_name}"),
        })?;
    report::line(&format!(
        "Salesforce User {} after:  LastName {}",
        after["Id"].as_str().unwrap_or("?"),
        after["LastName"]
    ));
    report::line(&format!(
        "REST PATCH answered in {}; the change reached Salesforce {} after the PATCH was sent",
        report::ms(committed),
        report::ms(sent.elapsed())
    ));
    Ok(())
}

/// Step: create a managed user over REST and watch it appear in Salesforce with the
/// mapping's defaults (LocaleSidKey, TimeZoneSidKey, …) and its Alias transform.
pub async fn create_user(rest: &Rest, emulator: &EmulatorHandle) -> Result<(), StepError> {
    let profile = "Standard User";
    let profile_id = emulator
        .profile_id(profile)
        .ok_or(StepError::NoProfile(profile))?;
    let user_name = "ada.lovelace@demo.idm-sync.invalid";
    let body = json!({
        "userName": user_name,
        "givenName": "Ada",
        "sn": "Lovelace",
        "mail": "ada.lovelace@example.com",
        "profileId": profile_id,
    });
    report::line(&format!(
        "POST managed/user: {}",
        serde_json::to_string(&body).unwrap_or_default()
    ));
    let sent = Instant::now();
    let created = rest
        .call(Method::POST, "/managed/user?_action=create", Some(&body))
        .await?;
    let committed = sent.elapsed();
    let user = wait_for(emulator, user_name, |_| true)
        .await
        .ok_or_else(|| StepError::SyncTimeout {
            what: format!("the new user {user_name}"),
        })?;
    let appeared = sent.elapsed();
    report::line(&format!(
        "managed/user/{} created (REST answered in {}); in Salesforce {} after the POST was sent:",
        created["_id"].as_str().unwrap_or("?"),
        report::ms(committed),
        report::ms(appeared)
    ));
    for field in CREATED_FIELDS {
        report::line(&format!("  {field:<18} {}", user[*field]));
    }
    Ok(())
}

/// Polls the emulator's copy of `user_name` until `done` holds, or the timeout.
async fn wait_for(
    emulator: &EmulatorHandle,
    user_name: &str,
    done: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(user) = emulator.user_by_username(user_name).filter(|u| done(u)) {
            return Some(user);
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

/// Step: an administrator edits a user in Salesforce (the emulator's admin route: another user
/// than the connector's); change events bring the edit into the managed user, without a poll.
pub async fn salesforce_edit(rest: &Rest, emulator: &EmulatorHandle) -> Result<(), StepError> {
    let user_name = "ada.lovelace@demo.idm-sync.invalid";
    let user = emulator
        .user_by_username(user_name)
        .ok_or_else(|| StepError::NotInSalesforce(user_name.to_owned()))?;
    let sf_id = user["Id"].as_str().unwrap_or_default();
    let first_name = "Augusta Ada";
    report::line(&format!(
        "Salesforce User {sf_id} ({user_name}): FirstName {} -> {first_name:?}, edited by an administrator",
        user["FirstName"]
    ));
    let sent = Instant::now();
    emulator
        .admin_update_user(sf_id, &json!({"FirstName": first_name}))
        .map_err(|(code, message)| StepError::Emulator {
            user: user_name.to_owned(),
            code,
            message,
        })?;
    let path = format!(
        "/managed/user?_queryFilter=userName%20eq%20%22{}%22&_fields=givenName",
        user_name.replace('@', "%40")
    );
    let deadline = Instant::now() + SYNC_TIMEOUT;
    while Instant::now() < deadline {
        let page = rest.call(Method::GET, &path, None).await?;
        if let Some(found) = page["result"]
            .get(0)
            .filter(|u| u["givenName"] == first_name)
        {
            report::line(&format!(
                "managed/user/{}: givenName {:?}, {} after the edit in Salesforce (a change event, no poll)",
                found["_id"].as_str().unwrap_or("?"),
                first_name,
                report::ms(sent.elapsed())
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(StepError::EventTimeout {
        what: format!("the Salesforce-side edit of {user_name}"),
    })
}
