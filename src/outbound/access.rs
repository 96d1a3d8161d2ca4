//! Implicit sync of access beyond the profile: the mapping's `PermissionSets`,
//! `PermissionSetGroups`, `PublicGroups` (arrays of names) and `UserRole` (a name) are not
//! fields of the Salesforce user. They are taken out of the user's record: the role becomes
//! `UserRoleId` in the same write, and the sets become the grants added and removed afterwards
//! (set differences against what the link's snapshot mapped to), written as inserts and deletes
//! of `PermissionSetAssignment` / `GroupMember` with sObject Collections, a batch at a time.
//! Names resolve through the connector's catalog, read once and again when a name is unknown.
//! A grant that fails (unknown name, license mismatch) fails alone: the user's other changes go
//! through, and the change becomes a sync failure naming the grant and the reason.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::salesforce::access::{
    AccessCatalog, Grant, PERMISSION_SET_GROUPS, PERMISSION_SETS, PUBLIC_GROUPS, USER_ROLE,
    UserAccess, grant_names as names,
};
use crate::salesforce::{Record, SalesforceClient, SalesforceError};

/// The user field the role's id is written to.
const ROLE_FIELD: &str = "UserRoleId";

/// A kind of grant held in a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    PermissionSet,
    PermissionSetGroup,
    PublicGroup,
}

impl Kind {
    const ALL: [(Kind, &'static str); 3] = [
        (Kind::PermissionSet, PERMISSION_SETS),
        (Kind::PermissionSetGroup, PERMISSION_SET_GROUPS),
        (Kind::PublicGroup, PUBLIC_GROUPS),
    ];

    /// What `access` holds of this kind.
    fn held(self, access: &UserAccess) -> &[Grant] {
        match self {
            Kind::PermissionSet => &access.permission_sets,
            Kind::PermissionSetGroup => &access.permission_set_groups,
            Kind::PublicGroup => &access.public_groups,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::PermissionSet => "permission set",
            Kind::PermissionSetGroup => "permission set group",
            Kind::PublicGroup => "public group",
        }
    }
}

/// What one change grants and revokes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Grants {
    pub add: Vec<(Kind, String)>,
    pub remove: Vec<(Kind, String)>,
    /// `Some(None)`: the role is cleared; `Some(Some(name))`: set to that role.
    pub role: Option<Option<String>>,
    /// Every grant the user holds is removed (a deactivation, when configured so).
    pub revoke_all: bool,
    /// Sets wanted exactly, compared with what Salesforce holds rather than with the link's
    /// snapshot (a repair of drift, a forced push).
    pub exact: Vec<(Kind, BTreeSet<String>)>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
            && self.remove.is_empty()
            && self.role.is_none()
            && !self.revoke_all
            && self.exact.is_empty()
    }

    fn changes_sets(&self) -> bool {
        !self.add.is_empty() || !self.remove.is_empty() || self.revoke_all || !self.exact.is_empty()
    }

    /// Whether applying these needs what Salesforce holds now.
    fn reads_held(&self) -> bool {
        !self.remove.is_empty() || self.revoke_all || !self.exact.is_empty()
    }

    /// These grants as adds and removals of names: the exact sets compared with `held`.
    fn against(&self, held: Option<&UserAccess>) -> Grants {
        let mut out = self.clone();
        for (kind, want) in std::mem::take(&mut out.exact) {
            let have: BTreeSet<String> = held
                .map(|a| kind.held(a))
                .unwrap_or_default()
                .iter()
                .map(|g| g.name.clone())
                .collect();
            out.add
                .extend(want.difference(&have).map(|n| (kind, n.clone())));
            out.remove
                .extend(have.difference(&want).map(|n| (kind, n.clone())));
        }
        out
    }

    /// Takes the access attributes out of `record` (a create's whole record or an update's
    /// delta); `before` is what the link's snapshot mapped to (`None` on create, or without a
    /// snapshot: nothing is revoked then).
    pub fn take(record: &mut Record, before: Option<&Map<String, Value>>) -> Grants {
        Grants::take_with(record, before, |_| false)
    }

    /// As [`Grants::take`], the sets of the attributes `exact` names wanted exactly.
    pub fn take_with(
        record: &mut Record,
        before: Option<&Map<String, Value>>,
        exact: impl Fn(&str) -> bool,
    ) -> Grants {
        let mut grants = Grants::default();
        for (kind, attribute) in Kind::ALL {
            let Some(now) = record.remove(attribute) else {
                continue;
            };
            // Null is no wish about this kind; an array (even empty) is the whole set.
            if exact(attribute) && !now.is_null() {
                grants.exact.push((kind, names(&now)));
                continue;
            }
            let now = names(&now);
            let had = before
                .and_then(|b| b.get(attribute))
                .map(names)
                .unwrap_or_default();
            grants
                .add
                .extend(now.difference(&had).map(|n| (kind, n.clone())));
            grants
                .remove
                .extend(had.difference(&now).map(|n| (kind, n.clone())));
        }
        if let Some(role) = record.remove(USER_ROLE) {
            let named = |v: &Value| v.as_str().filter(|r| !r.is_empty()).map(str::to_owned);
            let had = before.and_then(|b| b.get(USER_ROLE)).and_then(named);
            // No role wanted clears only the role idm-sync set: a user found in Salesforce
            // keeps the role it has.
            grants.role = match (named(&role), had) {
                (Some(name), _) => Some(Some(name)),
                (None, Some(_)) => Some(None),
                (None, None) => None,
            };
        }
        grants
    }
}

/// The connector's catalog, shared by the engine's clones, read when first needed.
#[derive(Clone, Default)]
pub struct Catalog(Arc<Mutex<Option<Arc<AccessCatalog>>>>);

impl Catalog {
    /// The catalog, read now if never read or if `refresh`.
    async fn get(
        &self,
        client: &SalesforceClient,
        refresh: bool,
    ) -> Result<Arc<AccessCatalog>, SalesforceError> {
        let mut held = self.0.lock().await;
        if let Some(catalog) = held.as_ref().filter(|_| !refresh) {
            return Ok(catalog.clone());
        }
        let read = Arc::new(client.access_catalog().await?);
        *held = Some(read.clone());
        Ok(read)
    }

    /// The catalog holding every name `wanted` asks for, re-read once if one is missing.
    async fn covering(
        &self,
        client: &SalesforceClient,
        wanted: &[&Grants],
    ) -> Result<Arc<AccessCatalog>, SalesforceError> {
        let catalog = self.get(client, false).await?;
        let missing = wanted.iter().any(|g| {
            g.add.iter().any(|(k, n)| id_of(&catalog, *k, n).is_none())
                || g.role
                    .as_ref()
                    .is_some_and(|r| r.as_ref().is_some_and(|n| !catalog.roles.contains_key(n)))
        });
        match missing {
            true => self.get(client, true).await,
            false => Ok(catalog),
        }
    }

    /// Puts each record's role into it as `UserRoleId`; returns, per record index, why its
    /// role could not be set (the record then leaves the role as it is).
    pub async fn resolve_roles(
        &self,
        client: &SalesforceClient,
        records: &mut [(usize, &mut Record, &Grants)],
    ) -> Result<HashMap<usize, Vec<String>>, SalesforceError> {
        let mut failed: HashMap<usize, Vec<String>> = HashMap::new();
        for (_, record, grants) in records.iter_mut() {
            if grants.role == Some(None) {
                record.insert(ROLE_FIELD.into(), Value::Null);
            }
        }
        // Names only need the catalog.
        if !records
            .iter()
            .any(|(_, _, g)| matches!(g.role, Some(Some(_))))
        {
            return Ok(failed);
        }
        let grants: Vec<&Grants> = records.iter().map(|(_, _, g)| *g).collect();
        let catalog = self.covering(client, &grants).await?;
        for (i, record, grants) in records.iter_mut() {
            match &grants.role {
                None | Some(None) => {}
                Some(Some(name)) => match catalog.roles.get(name) {
                    Some(id) => {
                        record.insert(ROLE_FIELD.into(), Value::String(id.clone()));
                    }
                    None => failed
                        .entry(*i)
                        .or_default()
                        .push(format!("role {name}: no such role in Salesforce")),
                },
            }
        }
        Ok(failed)
    }

    /// Adds and removes the grants of `users` (index, Salesforce user id, grants); returns, per
    /// index, the grants that failed and why. A failure of the calls themselves is every grant's.
    pub async fn apply(
        &self,
        client: &SalesforceClient,
        users: &[(usize, String, &Grants)],
    ) -> Result<HashMap<usize, Vec<String>>, SalesforceError> {
        let mut failed: HashMap<usize, Vec<String>> = HashMap::new();
        if !users.iter().any(|(_, _, g)| g.changes_sets()) {
            return Ok(failed);
        }
        // What Salesforce holds, for the users whose grants are revoked or compared.
        let reading: Vec<String> = users
            .iter()
            .filter(|(_, _, g)| g.reads_held())
            .map(|(_, user, _)| user.clone())
            .collect();
        let held = match reading.is_empty() {
            true => HashMap::new(),
            false => client.access_of(&reading).await?,
        };
        let users: Vec<(usize, &String, Grants)> = users
            .iter()
            .map(|(i, user, g)| (*i, user, g.against(held.get(user))))
            .collect();
        let wanted: Vec<&Grants> = users
            .iter()
            .map(|(_, _, g)| g)
            .filter(|g| g.changes_sets())
            .collect();
        let catalog = self.covering(client, &wanted).await?;

        // Adds: one collections call per object type and 200 grants.
        let mut assignments: Vec<(usize, Kind, String, Record)> = Vec::new();
        let mut members: Vec<(usize, Kind, String, Record)> = Vec::new();
        for (i, user, grants) in &users {
            for (kind, name) in &grants.add {
                let Some(id) = id_of(&catalog, *kind, name) else {
                    failed.entry(*i).or_default().push(format!(
                        "{} {name}: no such {0} in Salesforce",
                        kind.label()
                    ));
                    continue;
                };
                let mut record = Record::new();
                let target = match kind {
                    Kind::PermissionSet => {
                        record.insert("AssigneeId".into(), Value::from(user.as_str()));
                        record.insert("PermissionSetId".into(), Value::from(id));
                        &mut assignments
                    }
                    Kind::PermissionSetGroup => {
                        record.insert("AssigneeId".into(), Value::from(user.as_str()));
                        record.insert("PermissionSetGroupId".into(), Value::from(id));
                        &mut assignments
                    }
                    Kind::PublicGroup => {
                        record.insert("GroupId".into(), Value::from(id));
                        record.insert("UserOrGroupId".into(), Value::from(user.as_str()));
                        &mut members
                    }
                };
                target.push((*i, *kind, name.clone(), record));
            }
        }
        for (object, batch) in [
            ("PermissionSetAssignment", &assignments),
            ("GroupMember", &members),
        ] {
            if batch.is_empty() {
                continue;
            }
            let records: Vec<Record> = batch.iter().map(|(_, _, _, r)| r.clone()).collect();
            let results = client.create_many_of(object, &records).await;
            for ((i, kind, name, _), result) in batch.iter().zip(results) {
                if let Err(e) = result
                    && !is_duplicate(&e)
                {
                    failed
                        .entry(*i)
                        .or_default()
                        .push(format!("{} {name}: {e}", kind.label()));
                }
            }
        }

        // Removes: the granting records of those users, found by name, deleted together.
        if !held.is_empty() {
            let mut deletes: Vec<(usize, Kind, String, String)> = Vec::new();
            for (i, user, grants) in &users {
                let Some(access) = held.get(*user) else {
                    continue;
                };
                if grants.revoke_all {
                    for (kind, _) in Kind::ALL {
                        for g in kind.held(access) {
                            deletes.push((*i, kind, g.name.clone(), g.record_id.clone()));
                        }
                    }
                    continue;
                }
                for (kind, name) in &grants.remove {
                    // Not held any more: nothing to revoke.
                    if let Some(grant) = kind.held(access).iter().find(|g| &g.name == name) {
                        deletes.push((*i, *kind, name.clone(), grant.record_id.clone()));
                    }
                }
            }
            let ids: Vec<String> = deletes.iter().map(|(_, _, _, id)| id.clone()).collect();
            let results = client.delete_many(&ids).await;
            for ((i, kind, name, _), result) in deletes.iter().zip(results) {
                if let Err(e) = result {
                    failed
                        .entry(*i)
                        .or_default()
                        .push(format!("removing {} {name}: {e}", kind.label()));
                }
            }
        }
        Ok(failed)
    }
}

fn id_of(catalog: &AccessCatalog, kind: Kind, name: &str) -> Option<String> {
    match kind {
        Kind::PermissionSet => catalog.permission_sets.get(name).map(|p| p.id.clone()),
        Kind::PermissionSetGroup => catalog.permission_set_groups.get(name).cloned(),
        Kind::PublicGroup => catalog.public_groups.get(name).cloned(),
    }
}

/// A grant the user holds already: what was wanted is there.
fn is_duplicate(e: &SalesforceError) -> bool {
    matches!(e, SalesforceError::RecordRejected { errors }
        if errors.iter().any(|e| e.error_code == "DUPLICATE_VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Value) -> Record {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn access_attributes_leave_the_record_as_set_differences() {
        let mut delta = record(json!({
            "LastName": "Lee",
            "PermissionSets": ["A", "B"],
            "PublicGroups": [],
            "UserRole": "CEO"
        }));
        let before = record(json!({"PermissionSets": ["B", "C"], "PublicGroups": ["G"]}));
        let grants = Grants::take(&mut delta, Some(&before));
        assert_eq!(delta, record(json!({"LastName": "Lee"})));
        assert_eq!(grants.add, [(Kind::PermissionSet, "A".to_owned())]);
        assert_eq!(
            grants.remove,
            [
                (Kind::PermissionSet, "C".to_owned()),
                (Kind::PublicGroup, "G".to_owned())
            ]
        );
        assert_eq!(grants.role, Some(Some("CEO".to_owned())));
        // A create: everything is added, nothing revoked; no role leaves the role alone...
        let mut create = record(json!({"PermissionSetGroups": ["X"], "UserRole": null}));
        let grants = Grants::take(&mut create, None);
        assert!(create.is_empty());
        assert_eq!(grants.add, [(Kind::PermissionSetGroup, "X".to_owned())]);
        assert_eq!(grants.role, None);
        // ...unless it was idm-sync's: then it is cleared.
        let had = record(json!({"UserRole": "CEO"}));
        let grants = Grants::take(&mut record(json!({"UserRole": ""})), Some(&had));
        assert_eq!(grants.role, Some(None));
        assert!(Grants::take(&mut record(json!({"Email": "a@b"})), None).is_empty());
    }

    #[test]
    fn exact_sets_compare_with_what_salesforce_holds() {
        let mut delta = record(json!({"PermissionSets": ["A", "B"], "PublicGroups": ["G"]}));
        let before = record(json!({"PermissionSets": ["A", "B"], "PublicGroups": ["G"]}));
        let grants = Grants::take_with(&mut delta, Some(&before), |a| a == "PermissionSets");
        // Against the snapshot the groups are unchanged; the permission sets are exact.
        assert!(grants.add.is_empty() && grants.remove.is_empty());
        let held = UserAccess {
            permission_sets: vec![
                Grant {
                    name: "B".into(),
                    record_id: "0Pa1".into(),
                },
                Grant {
                    name: "C".into(),
                    record_id: "0Pa2".into(),
                },
            ],
            ..UserAccess::default()
        };
        let applied = grants.against(Some(&held));
        assert_eq!(applied.add, [(Kind::PermissionSet, "A".to_owned())]);
        assert_eq!(applied.remove, [(Kind::PermissionSet, "C".to_owned())]);
        // Nothing held: everything wanted is added.
        assert_eq!(grants.against(None).add.len(), 2);
        // Null is no wish: not exact, nothing to do.
        let mut none = record(json!({"PermissionSets": null}));
        assert!(Grants::take_with(&mut none, None, |_| true).is_empty());
    }
}
