//! Access beyond the profile: permission sets, permission set groups, public groups and the
//! role, by name (API names and developer names, so one configuration works in production and
//! in a sandbox). The catalog resolves names to ids; a user's grants are read set-wise (one
//! query per [`IDS_PER_QUERY`] users, never one per user); grants are written as inserts and
//! deletes of `PermissionSetAssignment` / `GroupMember` records through sObject Collections
//! (an assignment is never updated).
//!
//! Salesforce facts relied on: a permission set group assignment is a `PermissionSetAssignment`
//! whose `PermissionSetGroupId` is set; permission sets owned by a profile
//! (`IsOwnedByProfile = true`) stand for the profile and are never managed here; public groups
//! are `Group` records of `Type = 'Regular'`; `GroupMember.UserOrGroupId` holds the user.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::TryStreamExt;
use serde_json::Value;

use crate::client::{Record, SalesforceClient};
use crate::errors::SalesforceError;
use crate::query::IDS_PER_QUERY;
use crate::soql::in_list;

/// The target attributes of a Salesforce user that are grants, not fields of `User`: arrays of
/// names, and the role's name.
pub const PERMISSION_SETS: &str = "PermissionSets";
pub const PERMISSION_SET_GROUPS: &str = "PermissionSetGroups";
pub const PUBLIC_GROUPS: &str = "PublicGroups";
pub const USER_ROLE: &str = "UserRole";

/// Whether a user attribute is a grant (not a `User` field a query or a write may name).
pub fn is_access_attribute(name: &str) -> bool {
    [
        PERMISSION_SETS,
        PERMISSION_SET_GROUPS,
        PUBLIC_GROUPS,
        USER_ROLE,
    ]
    .contains(&name)
}

/// The names a grant attribute holds: an array of strings (or one string); anything else,
/// and empty names, are none.
pub fn grant_names(value: &Value) -> BTreeSet<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Value::String(s) if !s.is_empty() => BTreeSet::from([s.clone()]),
        _ => BTreeSet::new(),
    }
}

/// What the catalog knows of a permission set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionSetEntry {
    pub id: String,
    /// The license it needs (`None`: any user may have it).
    pub license_id: Option<String>,
}

/// Every grantable name and its id, read once and refreshed when a name is unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessCatalog {
    /// By API name (`PermissionSet.Name`), profile-owned ones left out.
    pub permission_sets: BTreeMap<String, PermissionSetEntry>,
    /// By developer name.
    pub permission_set_groups: BTreeMap<String, String>,
    /// Regular public groups, by developer name.
    pub public_groups: BTreeMap<String, String>,
    /// By developer name.
    pub roles: BTreeMap<String, String>,
    /// Each profile's user license (`Profile.UserLicenseId`), by profile id.
    pub profile_licenses: BTreeMap<String, Option<String>>,
}

impl AccessCatalog {
    /// The role's developer name for a `UserRoleId`.
    pub fn role_name(&self, id: &str) -> Option<&str> {
        self.roles
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.as_str())
    }
}

/// One grant a user holds: the name it is known by and the record that grants it (what a
/// removal deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub name: String,
    pub record_id: String,
}

/// A user's grants beyond the profile, each kind by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAccess {
    pub permission_sets: Vec<Grant>,
    pub permission_set_groups: Vec<Grant>,
    pub public_groups: Vec<Grant>,
}

/// The assignments of the permission sets and groups a profile does not own.
const ASSIGNMENTS: &str = "SELECT Id, AssigneeId, PermissionSetGroupId, PermissionSet.Name, \
     PermissionSetGroup.DeveloperName FROM PermissionSetAssignment \
     WHERE PermissionSet.IsOwnedByProfile = false AND ";
/// The memberships of regular public groups.
pub(crate) const MEMBERSHIPS: &str = "SELECT Id, UserOrGroupId, Group.DeveloperName FROM GroupMember \
     WHERE Group.Type = 'Regular' AND ";

impl SalesforceClient {
    /// Reads the catalog: five queries, streamed.
    pub async fn access_catalog(&self) -> Result<AccessCatalog, SalesforceError> {
        let mut catalog = AccessCatalog::default();
        for r in self
            .all(
                "SELECT Id, Name, LicenseId FROM PermissionSet \
                 WHERE IsOwnedByProfile = false AND PermissionSetGroupId = null",
            )
            .await?
        {
            if let (Some(id), Some(name)) = (text(&r, "Id"), text(&r, "Name")) {
                let license_id = text(&r, "LicenseId").map(str::to_owned);
                let entry = PermissionSetEntry {
                    id: id.to_owned(),
                    license_id,
                };
                catalog.permission_sets.insert(name.to_owned(), entry);
            }
        }
        catalog.permission_set_groups = self
            .named("SELECT Id, DeveloperName FROM PermissionSetGroup")
            .await?;
        catalog.public_groups = self
            .named("SELECT Id, DeveloperName FROM Group WHERE Type = 'Regular'")
            .await?;
        catalog.roles = self.named("SELECT Id, DeveloperName FROM UserRole").await?;
        for r in self.all("SELECT Id, UserLicenseId FROM Profile").await? {
            if let Some(id) = text(&r, "Id") {
                let license = text(&r, "UserLicenseId").map(str::to_owned);
                catalog.profile_licenses.insert(id.to_owned(), license);
            }
        }
        Ok(catalog)
    }

    /// The grants of `user_ids` (users without any are absent), two queries per
    /// [`IDS_PER_QUERY`] users.
    pub async fn access_of(
        &self,
        user_ids: &[String],
    ) -> Result<HashMap<String, UserAccess>, SalesforceError> {
        let mut out: HashMap<String, UserAccess> = HashMap::new();
        for chunk in user_ids.chunks(IDS_PER_QUERY) {
            let ids = chunk
                .iter()
                .filter(|id| is_id(id))
                .map(String::as_str)
                .collect::<Vec<_>>();
            if ids.is_empty() {
                continue;
            }
            let assignments = format!("{ASSIGNMENTS}{}", in_list("AssigneeId", ids.clone()));
            for r in self.all(&assignments).await? {
                let (Some(user), Some(record_id)) = (text(&r, "AssigneeId"), text(&r, "Id")) else {
                    continue;
                };
                let access = out.entry(user.to_owned()).or_default();
                let grant = |name: &str| Grant {
                    name: name.to_owned(),
                    record_id: record_id.to_owned(),
                };
                match assignment_of(&r) {
                    Some(Assigned::Group(name)) => access.permission_set_groups.push(grant(name)),
                    Some(Assigned::Set(name)) => access.permission_sets.push(grant(name)),
                    None => {}
                }
            }
            let memberships = format!("{MEMBERSHIPS}{}", in_list("UserOrGroupId", ids));
            for r in self.all(&memberships).await? {
                let (Some((user, name)), Some(record_id)) = (membership_of(&r), text(&r, "Id"))
                else {
                    continue;
                };
                out.entry(user.to_owned())
                    .or_default()
                    .public_groups
                    .push(Grant {
                        name: name.to_owned(),
                        record_id: record_id.to_owned(),
                    });
            }
        }
        for access in out.values_mut() {
            for grants in [
                &mut access.permission_sets,
                &mut access.permission_set_groups,
                &mut access.public_groups,
            ] {
                grants.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        Ok(out)
    }

    /// Every record of `soql`, all pages.
    pub(crate) async fn all(&self, soql: &str) -> Result<Vec<Record>, SalesforceError> {
        let mut out = Vec::new();
        let mut pages = std::pin::pin!(self.query(soql));
        while let Some(page) = pages.try_next().await? {
            out.extend(page.records);
        }
        Ok(out)
    }

    /// `DeveloperName` → `Id` of every record of `soql`.
    pub(crate) async fn named(
        &self,
        soql: &str,
    ) -> Result<BTreeMap<String, String>, SalesforceError> {
        Ok(self
            .all(soql)
            .await?
            .iter()
            .filter_map(|r| {
                Some((
                    text(r, "DeveloperName")?.to_owned(),
                    text(r, "Id")?.to_owned(),
                ))
            })
            .collect())
    }
}

/// What an assignment record (as [`ASSIGNMENTS`] selects it) grants, by name.
pub(crate) enum Assigned<'a> {
    Set(&'a str),
    Group(&'a str),
}

pub(crate) fn assignment_of(record: &Record) -> Option<Assigned<'_>> {
    if text(record, "PermissionSetGroupId").is_some() {
        related(record, "PermissionSetGroup", "DeveloperName").map(Assigned::Group)
    } else {
        related(record, "PermissionSet", "Name").map(Assigned::Set)
    }
}

/// The member and the group's developer name of a membership record (as [`MEMBERSHIPS`]
/// selects it).
pub(crate) fn membership_of(record: &Record) -> Option<(&str, &str)> {
    Some((
        text(record, "UserOrGroupId")?,
        related(record, "Group", "DeveloperName")?,
    ))
}

pub(crate) fn text<'a>(record: &'a Record, field: &str) -> Option<&'a str> {
    record.get(field).and_then(Value::as_str)
}

/// A relationship field (`PermissionSet.Name`): Salesforce nests the parent as an object.
pub(crate) fn related<'a>(record: &'a Record, parent: &str, field: &str) -> Option<&'a str> {
    record.get(parent)?.get(field)?.as_str()
}

pub(crate) fn is_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relationship_fields_are_read_from_the_nested_parent() {
        // Salesforce's shape for `SELECT PermissionSet.Name FROM PermissionSetAssignment`.
        let r: Record = serde_json::from_value(json!({
            "attributes": {"type": "PermissionSetAssignment"},
            "Id": "0Pa000000000001AAA",
            "PermissionSet": {"attributes": {"type": "PermissionSet"}, "Name": "Sales_Ops"},
            "PermissionSetGroup": null
        }))
        .unwrap();
        assert_eq!(related(&r, "PermissionSet", "Name"), Some("Sales_Ops"));
        assert_eq!(related(&r, "PermissionSetGroup", "DeveloperName"), None);
        assert_eq!(text(&r, "Id"), Some("0Pa000000000001AAA"));
    }

    #[test]
    fn a_role_name_is_found_by_its_id() {
        let mut catalog = AccessCatalog::default();
        catalog
            .roles
            .insert("CEO".into(), "00E000000000001AAA".into());
        assert_eq!(catalog.role_name("00E000000000001AAA"), Some("CEO"));
        assert_eq!(catalog.role_name("00E000000000002AAA"), None);
    }
}
