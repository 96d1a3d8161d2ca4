//! Writes of `PermissionSetAssignment` and `GroupMember` with Salesforce's rules: references must
//! name existing records of the right object, a second identical assignment is `DUPLICATE_VALUE`,
//! a second identical membership returns the existing one, a permission set bound to a license
//! goes only to users whose profile has that license, and profile-owned assignments are the
//! system's. The catalog objects are read-only here.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::objects::col;
use super::{Assignment, Member, MemberRef, Obj, Owner};
use crate::errors::DmlError;
use crate::ids;
use crate::org::{Org, SaveKind};
use crate::schema::{idx, parse_datetime};

/// What undoes one access write (all-or-none rollbacks).
#[derive(Debug)]
pub enum AccessUndo {
    /// Nothing was written (a membership that already existed).
    Nothing,
    Created(Obj, u32),
    Updated(u32, Option<DateTime<Utc>>),
    DeletedAssignment(u32, Assignment),
    DeletedMember(u32, Member),
}

/// The writable fields a body sets, by position, with their JSON values.
type Fields = Vec<(u8, Value)>;

fn parse_fields(obj: Obj, body: &Map<String, Value>, kind: SaveKind) -> Result<Fields, DmlError> {
    let mut out = Vec::with_capacity(body.len());
    for (key, value) in body {
        if key == "attributes" {
            continue;
        }
        let Some(pos) = obj.field_named(key) else {
            return Err(DmlError::new(
                "INVALID_FIELD",
                format!("No such column '{key}' on sobject of type {}", obj.name()),
                Vec::new(),
            ));
        };
        let def = obj.field(pos).ok_or_else(|| {
            DmlError::new(
                "INVALID_FIELD",
                format!("No such column '{key}'"),
                Vec::new(),
            )
        })?;
        crate::org::check_writable(kind, def.createable, def.updateable, def.name)?;
        out.push((pos, value.clone()));
    }
    Ok(out)
}

fn get(fields: &Fields, pos: u8) -> Option<&Value> {
    fields.iter().find(|(p, _)| *p == pos).map(|(_, v)| v)
}

fn field_name(obj: Obj, pos: u8) -> &'static str {
    obj.field(pos).map_or("", |f| f.name)
}

/// A reference field's value: `None` when absent or null, else the canonical id, checked to
/// carry one of `prefixes` (`MALFORMED_ID` otherwise, as Salesforce's "id value of incorrect type").
fn reference(
    obj: Obj,
    fields: &Fields,
    pos: u8,
    label: &str,
    prefixes: &[&str],
) -> Result<Option<String>, DmlError> {
    let name = field_name(obj, pos);
    let raw = match get(fields, pos) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match ids::canonical_15(&raw) {
        Some(c) if prefixes.iter().any(|p| c.starts_with(p)) => Ok(Some(c)),
        _ => Err(DmlError::new(
            "MALFORMED_ID",
            format!("{label}: id value of incorrect type: {raw}"),
            vec![name.to_owned()],
        )),
    }
}

fn missing(name: &str) -> DmlError {
    DmlError::new(
        "REQUIRED_FIELD_MISSING",
        format!("Required fields are missing: [{name}]"),
        vec![name.to_owned()],
    )
}

fn bad_reference(name: &str) -> DmlError {
    DmlError::new(
        "INVALID_CROSS_REFERENCE_KEY",
        "invalid cross reference id",
        vec![name.to_owned()],
    )
}

fn profile_owned() -> DmlError {
    // The rule is documented ("you can query permission sets that are owned by profiles but not
    // modify them"); code and text are the emulator's choice.
    DmlError::new(
        "FIELD_INTEGRITY_EXCEPTION",
        "You can't assign or unassign this permission set because it's associated with a profile.",
        Vec::new(),
    )
}

fn expiration(fields: &Fields) -> Result<Option<DateTime<Utc>>, DmlError> {
    match get(fields, col::psa::EXPIRATION_DATE) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_datetime(s).map(Some).ok_or_else(|| {
            DmlError::new(
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                format!("Expires On: value not of required type: {s}"),
                vec!["ExpirationDate".to_owned()],
            )
        }),
        Some(other) => Err(DmlError::new(
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize instance of datetime from {other} value"),
            Vec::new(),
        )),
    }
}

fn to_18(id: &str) -> String {
    ids::canonical_15(id)
        .and_then(|c| ids::to_18(&c))
        .unwrap_or_else(|| id.to_owned())
}

impl Org {
    /// Creates an access record from a JSON body; returns its id and the new row, if one was
    /// made (a membership that already exists is returned as it is, as Salesforce documents).
    pub fn create_access(
        &mut self,
        obj: Obj,
        body: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<(String, AccessUndo), DmlError> {
        let fields = parse_fields(obj, body, SaveKind::Create)?;
        match obj {
            Obj::PermissionSetAssignment => self.create_assignment(&fields, now),
            Obj::GroupMember => self.create_member(&fields, now),
            _ => Err(read_only(obj)),
        }
    }

    fn create_assignment(
        &mut self,
        fields: &Fields,
        now: DateTime<Utc>,
    ) -> Result<(String, AccessUndo), DmlError> {
        const O: Obj = Obj::PermissionSetAssignment;
        let assignee = reference(
            O,
            fields,
            col::psa::ASSIGNEE_ID,
            "Assignee ID",
            &[ids::USER_PREFIX],
        )?
        .ok_or_else(|| missing("AssigneeId"))?;
        let ps = reference(
            O,
            fields,
            col::psa::PERMISSION_SET_ID,
            "Permission Set ID",
            &[ids::PERMISSION_SET_PREFIX],
        )?;
        let group = reference(
            O,
            fields,
            col::psa::PERMISSION_SET_GROUP_ID,
            "Permission Set Group ID",
            &[ids::PERMISSION_SET_GROUP_PREFIX],
        )?;
        let expires = expiration(fields)?;
        let user = self
            .find(&assignee)
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(|| bad_reference("AssigneeId"))?;
        let ps = match ps {
            Some(id) => Some(
                self.access
                    .find_of(Obj::PermissionSet, &id)
                    .ok_or_else(|| bad_reference("PermissionSetId"))?,
            ),
            None => None,
        };
        let group = match group {
            Some(id) => Some(
                self.access
                    .find_of(Obj::PermissionSetGroup, &id)
                    .ok_or_else(|| bad_reference("PermissionSetGroupId"))?,
            ),
            None => None,
        };
        // A group assignment points at the group's aggregate permission set; either id names it.
        let (ps, group) = match (ps, group) {
            (None, None) => return Err(missing("PermissionSetId")),
            (ps, Some(g)) => {
                let aggregate = self
                    .access
                    .ps_groups
                    .get(g as usize)
                    .map(|x| x.aggregate)
                    .ok_or_else(|| bad_reference("PermissionSetGroupId"))?;
                if ps.is_some_and(|p| p != aggregate) {
                    return Err(DmlError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        "Permission Set ID: must be the permission set of the permission set group",
                        vec!["PermissionSetId".to_owned()],
                    ));
                }
                (aggregate, Some(g))
            }
            (Some(p), None) => match self.access.permission_sets.get(p as usize).map(|x| x.owner) {
                Some(Owner::Group(g)) => (p, Some(g)),
                _ => (p, None),
            },
        };
        let Some(set) = self.access.permission_sets.get(ps as usize) else {
            return Err(bad_reference("PermissionSetId"));
        };
        if matches!(set.owner, Owner::Profile(_)) {
            return Err(profile_owned());
        }
        // Documented: a permission set with a license goes only to users whose profile has it.
        if let Some(l) = set.license {
            let needed = self.access.licenses.get(l as usize).map(|x| x.id.clone());
            if needed != self.user_license(user) {
                let username = self
                    .users
                    .get(user as usize)
                    .and_then(|r| r[idx::USERNAME].as_str())
                    .unwrap_or_default();
                return Err(DmlError::new(
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!(
                        "Can't assign permission set {} to user {username}. The user license doesn't match the license of the permission set.",
                        set.label
                    ),
                    vec!["PermissionSetId".to_owned()],
                ));
            }
        }
        let duplicate = self.access.assignments_of(user).iter().any(|&r| {
            self.access
                .assignment(r)
                .is_some_and(|a| a.permission_set == ps && a.group == group)
        });
        if duplicate {
            let ps_id = self
                .access
                .permission_sets
                .get(ps as usize)
                .map(|p| p.id.clone())
                .unwrap_or_default();
            return Err(DmlError::new(
                "DUPLICATE_VALUE",
                format!(
                    "Duplicate PermissionSetAssignment. Assignee: {}; Permission Set: {ps_id}",
                    to_18(&assignee)
                ),
                Vec::new(),
            ));
        }
        let id = self.access.next_id(O);
        let row = self.access.push_assignment(Assignment {
            id: id.clone(),
            assignee: user,
            permission_set: ps,
            group,
            expires,
            modstamp: now,
        });
        Ok((id, AccessUndo::Created(O, row)))
    }

    fn create_member(
        &mut self,
        fields: &Fields,
        now: DateTime<Utc>,
    ) -> Result<(String, AccessUndo), DmlError> {
        const O: Obj = Obj::GroupMember;
        let group = reference(
            O,
            fields,
            col::member::GROUP_ID,
            "Group ID",
            &[ids::GROUP_PREFIX],
        )?
        .ok_or_else(|| missing("GroupId"))?;
        let member = reference(
            O,
            fields,
            col::member::USER_OR_GROUP_ID,
            "User/Group ID",
            &[ids::USER_PREFIX, ids::GROUP_PREFIX],
        )?
        .ok_or_else(|| missing("UserOrGroupId"))?;
        let group = self
            .access
            .find_of(Obj::Group, &group)
            .ok_or_else(|| bad_reference("GroupId"))?;
        let member = if member.starts_with(ids::USER_PREFIX) {
            self.find(&member)
                .and_then(|u| u32::try_from(u).ok())
                .map(MemberRef::User)
        } else {
            self.access
                .find_of(Obj::Group, &member)
                .map(MemberRef::Group)
        }
        .ok_or_else(|| bad_reference("UserOrGroupId"))?;
        if member == MemberRef::Group(group) {
            return Err(DmlError::new(
                "FIELD_INTEGRITY_EXCEPTION",
                "A group can't be a member of itself",
                vec!["UserOrGroupId".to_owned()],
            ));
        }
        // Documented: creating a record that matches an existing one returns the existing one.
        let existing = self
            .access
            .memberships_of(member)
            .iter()
            .filter_map(|&r| self.access.member(r))
            .find(|m| m.group == group)
            .map(|m| m.id.clone());
        if let Some(id) = existing {
            return Ok((id, AccessUndo::Nothing));
        }
        let id = self.access.next_id(O);
        let row = self.access.push_member(Member {
            id: id.clone(),
            group,
            member,
            modstamp: now,
        });
        Ok((id, AccessUndo::Created(O, row)))
    }

    /// Updates an access record: only an assignment's `ExpirationDate` is updateable.
    pub fn update_access(
        &mut self,
        obj: Obj,
        id: &str,
        body: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<AccessUndo, DmlError> {
        if !obj.writable() {
            return Err(read_only(obj));
        }
        let fields = parse_fields(obj, body, SaveKind::Update)?;
        let row = self.access.find_of(obj, id).ok_or_else(entity_is_deleted)?;
        if obj != Obj::PermissionSetAssignment {
            return Ok(AccessUndo::Nothing);
        }
        let expires = expiration(&fields)?;
        let touches = get(&fields, col::psa::EXPIRATION_DATE).is_some();
        let Some(Some(a)) = self.access.assignments.get_mut(row as usize) else {
            return Err(entity_is_deleted());
        };
        let old = a.expires;
        if touches {
            a.expires = expires;
            a.modstamp = now;
        }
        Ok(AccessUndo::Updated(row, old))
    }

    /// Deletes an assignment or a membership by id.
    pub fn delete_access(&mut self, id: &str) -> Result<(Obj, AccessUndo), DmlError> {
        let Some(c) = ids::canonical_15(id) else {
            return Err(DmlError::new(
                "MALFORMED_ID",
                format!("malformed id {id}"),
                Vec::new(),
            ));
        };
        let Some((obj, row)) = self.access.find(&c) else {
            if self.find(&c).is_some() || Obj::of_canonical(&c).is_some_and(|o| !o.writable()) {
                return Err(not_deletable());
            }
            return Err(entity_is_deleted());
        };
        match obj {
            Obj::PermissionSetAssignment => {
                let ps = self.access.assignment(row).map(|a| a.permission_set);
                let owner = ps
                    .and_then(|p| self.access.permission_sets.get(p as usize))
                    .map(|p| p.owner);
                if matches!(owner, Some(Owner::Profile(_))) {
                    return Err(profile_owned());
                }
                let a = self
                    .access
                    .remove_assignment(row)
                    .ok_or_else(entity_is_deleted)?;
                Ok((obj, AccessUndo::DeletedAssignment(row, a)))
            }
            Obj::GroupMember => {
                let m = self
                    .access
                    .remove_member(row)
                    .ok_or_else(entity_is_deleted)?;
                Ok((obj, AccessUndo::DeletedMember(row, m)))
            }
            _ => Err(not_deletable()),
        }
    }

    /// Undoes one access write.
    pub fn undo_access(&mut self, undo: AccessUndo) {
        match undo {
            AccessUndo::Nothing => {}
            AccessUndo::Created(Obj::GroupMember, row) => {
                self.access.remove_member(row);
            }
            AccessUndo::Created(_, row) => {
                self.access.remove_assignment(row);
            }
            AccessUndo::Updated(row, old) => {
                if let Some(Some(a)) = self.access.assignments.get_mut(row as usize) {
                    a.expires = old;
                }
            }
            AccessUndo::DeletedAssignment(row, a) => self.access.restore_assignment(row, a),
            AccessUndo::DeletedMember(row, m) => self.access.restore_member(row, m),
        }
    }

    /// Checks a `UserRoleId` value; returns its 18-char form.
    pub fn check_role(&self, id: &str) -> Result<String, DmlError> {
        let Some(c) = ids::canonical_15(id).filter(|c| c.starts_with(ids::USER_ROLE_PREFIX)) else {
            return Err(DmlError::new(
                "MALFORMED_ID",
                format!("Role ID: id value of incorrect type: {id}"),
                vec!["UserRoleId".to_owned()],
            ));
        };
        self.access
            .find_of(Obj::UserRole, &c)
            .and_then(|r| self.access.roles.get(r as usize))
            .map(|r| r.id.clone())
            .ok_or_else(|| bad_reference("UserRoleId"))
    }
}

fn entity_is_deleted() -> DmlError {
    DmlError::new("ENTITY_IS_DELETED", "entity is deleted", Vec::new())
}

/// Users have no delete call (deactivate them); the catalog is read-only in the emulator.
fn not_deletable() -> DmlError {
    DmlError::new(
        "INVALID_TYPE_FOR_OPERATION",
        "entity type cannot be deleted",
        Vec::new(),
    )
}

fn read_only(obj: Obj) -> DmlError {
    DmlError::new(
        "INVALID_TYPE_FOR_OPERATION",
        format!(
            "entity type {} cannot be written in the emulator",
            obj.name()
        ),
        Vec::new(),
    )
}
