//! A user's grants read with the user, set-wise, for inbound reconciliation and liveSync: the
//! permission set and permission set group assignments come inline, a parent-to-child
//! subquery of the `User` query (`PermissionSetAssignments`, User's child relationship over
//! `AssigneeId`), so they cost no call of their own; public group memberships cost one query
//! per page of users (`GroupMember.UserOrGroupId` is polymorphic: `User` has no child
//! relationship for it); role names come from one read of the roles per run.
//!
//! [`complete_access`](SalesforceClient::complete_access) turns them into the attributes a
//! mapping reads (`PermissionSets`, `PermissionSetGroups`, `PublicGroups`: sorted arrays of
//! names; `UserRole`: a developer name or null), so a user's digest covers its grants.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use serde_json::Value;

use crate::access::{
    Assigned, MEMBERSHIPS, PERMISSION_SET_GROUPS, PERMISSION_SETS, PUBLIC_GROUPS, USER_ROLE,
    assignment_of, is_id, membership_of, text,
};
use crate::client::{Record, SalesforceClient};
use crate::errors::SalesforceError;
use crate::query::IDS_PER_QUERY;
use crate::soql::in_list;

/// User's child relationship over `PermissionSetAssignment.AssigneeId`.
const ASSIGNMENTS_RELATIONSHIP: &str = "PermissionSetAssignments";
/// The assignments of what no profile owns, as a select-list item of a `User` query.
const ASSIGNMENTS_SUBQUERY: &str = "(SELECT Id, PermissionSetGroupId, PermissionSet.Name, \
     PermissionSetGroup.DeveloperName FROM PermissionSetAssignments \
     WHERE PermissionSet.IsOwnedByProfile = false)";
/// The user field holding the role.
pub const ROLE_ID: &str = "UserRoleId";

/// Which grants a read of users carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccessRead {
    /// Permission sets and permission set groups.
    pub assignments: bool,
    pub memberships: bool,
    pub role: bool,
}

impl AccessRead {
    /// What reading the attributes `names` needs.
    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> AccessRead {
        let mut read = AccessRead::default();
        for name in names {
            match name {
                PERMISSION_SETS | PERMISSION_SET_GROUPS => read.assignments = true,
                PUBLIC_GROUPS => read.memberships = true,
                USER_ROLE => read.role = true,
                _ => {}
            }
        }
        read
    }

    pub fn any(self) -> bool {
        self.assignments || self.memberships || self.role
    }

    /// The select-list items a `User` query adds for these grants.
    pub fn select_items(self) -> Vec<&'static str> {
        let mut items = Vec::new();
        if self.role {
            items.push(ROLE_ID);
        }
        if self.assignments {
            items.push(ASSIGNMENTS_SUBQUERY);
        }
        items
    }
}

/// What a run learns while it reads grants: role developer names by id (read when first
/// needed and again, once per id, when a user holds a role read before it existed), and whether
/// the org refused an id-range query (then pages list their ids instead).
#[derive(Debug, Default)]
pub struct ReadState {
    by_id: HashMap<String, String>,
    refreshed_for: HashSet<String>,
    ranges_refused: bool,
}

impl ReadState {
    /// Puts each record's role's developer name in as `UserRole`.
    async fn name(
        &mut self,
        client: &SalesforceClient,
        records: &mut [Record],
    ) -> Result<(), SalesforceError> {
        let unknown: Vec<String> = records
            .iter()
            .filter_map(|r| text(r, ROLE_ID))
            .filter(|id| !self.by_id.contains_key(*id) && !self.refreshed_for.contains(*id))
            .map(str::to_owned)
            .collect();
        // Users holding no role need no read: a run over a few changed users often has none.
        if !unknown.is_empty() {
            self.by_id = client
                .named("SELECT Id, DeveloperName FROM UserRole")
                .await?
                .into_iter()
                .map(|(name, id)| (id, name))
                .collect();
            self.refreshed_for.extend(unknown);
        }
        for r in records.iter_mut() {
            let name = text(r, ROLE_ID)
                .and_then(|id| self.by_id.get(id))
                .map_or(Value::Null, |n| Value::String(n.clone()));
            r.insert(USER_ROLE.into(), name);
        }
        Ok(())
    }
}

impl SalesforceClient {
    /// Completes users just read (by a query selecting [`AccessRead::select_items`]) with
    /// the grants `read` asks for. `ordered`: the records are one page of a query ordered by
    /// `Id`, so the page's memberships are one query over its range of ids (an `IN` list of
    /// many ids would pass the URI's length limit).
    pub async fn complete_access(
        &self,
        records: &mut [Record],
        read: AccessRead,
        state: &mut ReadState,
        ordered: bool,
    ) -> Result<(), SalesforceError> {
        if read.assignments {
            for record in records.iter_mut() {
                self.assignments_into(record).await?;
            }
        }
        if read.memberships {
            self.memberships_into(records, ordered, state).await?;
        }
        if read.role {
            state.name(self, records).await?;
        }
        Ok(())
    }

    /// [`records_by_id`](SalesforceClient::records_by_id) completed with the grants `read`
    /// asks for (`fields` holding its [`AccessRead::select_items`]).
    pub async fn records_by_id_with_access(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
        read: AccessRead,
        state: &mut ReadState,
    ) -> Result<HashMap<String, Record>, SalesforceError> {
        let found = self.records_by_id(object, fields, ids).await?;
        if !read.any() {
            return Ok(found);
        }
        let mut records: Vec<Record> = found.into_values().collect();
        self.complete_access(&mut records, read, state, false)
            .await?;
        Ok(records
            .into_iter()
            .filter_map(|r| Some((text(&r, "Id")?.to_owned(), r)))
            .collect())
    }

    /// Replaces the child relationship's result with the names it grants, reading the rest
    /// of the relationship's rows when Salesforce sent only their first part.
    async fn assignments_into(&self, record: &mut Record) -> Result<(), SalesforceError> {
        let key = record
            .keys()
            .find(|k| k.eq_ignore_ascii_case(ASSIGNMENTS_RELATIONSHIP))
            .cloned();
        let child = key.and_then(|k| record.shift_remove(&k));
        let mut rows: Vec<Record> = Vec::new();
        if let Some(Value::Object(mut child)) = child {
            if let Some(Value::Array(items)) = child.remove("records") {
                rows.extend(items.into_iter().filter_map(|v| match v {
                    Value::Object(row) => Some(row),
                    _ => None,
                }));
            }
            if child.get("done").and_then(Value::as_bool) == Some(false) {
                let Some(url) = child.get("nextRecordsUrl").and_then(Value::as_str) else {
                    return Err(SalesforceError::InvalidResponse(
                        "a child relationship not done but without nextRecordsUrl".into(),
                    ));
                };
                let mut pages = std::pin::pin!(self.query_more(url.to_owned()));
                while let Some(page) = pages.try_next().await? {
                    rows.extend(page.records);
                }
            }
        }
        let (mut sets, mut groups) = (Vec::new(), Vec::new());
        for row in &rows {
            match assignment_of(row) {
                Some(Assigned::Set(name)) => sets.push(name),
                Some(Assigned::Group(name)) => groups.push(name),
                None => {}
            }
        }
        record.insert(PERMISSION_SETS.into(), names(sets));
        record.insert(PERMISSION_SET_GROUPS.into(), names(groups));
        Ok(())
    }

    async fn memberships_into(
        &self,
        records: &mut [Record],
        ordered: bool,
        state: &mut ReadState,
    ) -> Result<(), SalesforceError> {
        let ids: Vec<&str> = records
            .iter()
            .filter_map(|r| text(r, "Id"))
            .filter(|id| is_id(id))
            .collect();
        let mut rows = Vec::new();
        let ranged = match (ids.first(), ids.last()) {
            (Some(first), Some(last))
                if ordered && ids.len() > IDS_PER_QUERY && !state.ranges_refused =>
            {
                let soql = format!(
                    "{MEMBERSHIPS}UserOrGroupId >= '{first}' AND UserOrGroupId <= '{last}'"
                );
                match self.all(&soql).await {
                    Ok(found) => {
                        rows = found;
                        true
                    }
                    // An org (or a proxy of one) that refuses comparisons on this polymorphic
                    // reference: list the ids instead, for the rest of the run too.
                    Err(SalesforceError::Api { status: 400, .. }) => {
                        state.ranges_refused = true;
                        false
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => false,
        };
        if !ranged {
            for chunk in ids.chunks(IDS_PER_QUERY) {
                let soql = format!(
                    "{MEMBERSHIPS}{}",
                    in_list("UserOrGroupId", chunk.iter().copied())
                );
                rows.extend(self.all(&soql).await?);
            }
        }
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for (user, name) in rows.iter().filter_map(membership_of) {
            by_user
                .entry(user.to_owned())
                .or_default()
                .push(name.to_owned());
        }
        for record in records.iter_mut() {
            let held = text(record, "Id")
                .and_then(|id| by_user.remove(id))
                .unwrap_or_default();
            record.insert(
                PUBLIC_GROUPS.into(),
                names(held.iter().map(String::as_str).collect()),
            );
        }
        Ok(())
    }
}

/// Names as a sorted array without repeats: the same grants always digest the same.
fn names(mut list: Vec<&str>) -> Value {
    list.sort_unstable();
    list.dedup();
    Value::Array(list.into_iter().map(Value::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attributes_a_mapping_reads_say_what_is_read() {
        let read = AccessRead::of(["LastName", "PermissionSetGroups", "UserRole"]);
        assert_eq!(
            read,
            AccessRead {
                assignments: true,
                memberships: false,
                role: true
            }
        );
        assert_eq!(read.select_items(), [ROLE_ID, ASSIGNMENTS_SUBQUERY]);
        assert!(!AccessRead::of(["Email"]).any());
        assert!(AccessRead::of(["PublicGroups"]).select_items().is_empty());
    }

    #[test]
    fn names_are_sorted_once_each() {
        assert_eq!(
            names(vec!["b", "a", "b"]),
            Value::Array(vec!["a".into(), "b".into()])
        );
    }
}
