//! The access records in the state file: plain records whose references are ids, so a file
//! stays readable and loads whatever order the stores end up in.

use serde::{Deserialize, Serialize};

use super::{
    Access, Assignment, Group, License, Member, MemberRef, Obj, Owner, PermSet, PsGroup, Role,
};
use crate::org::{Org, Profile};
use crate::schema::{format_datetime, parse_datetime};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessState {
    next_seq: u64,
    licenses: Vec<LicenseRec>,
    roles: Vec<RoleRec>,
    permission_sets: Vec<PermSetRec>,
    permission_set_groups: Vec<PsGroupRec>,
    groups: Vec<GroupRec>,
    assignments: Vec<AssignmentRec>,
    members: Vec<MemberRec>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseRec {
    id: String,
    name: String,
    key: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleRec {
    id: String,
    name: String,
    developer_name: String,
    parent_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermSetRec {
    id: String,
    name: String,
    label: String,
    description: Option<String>,
    profile_id: Option<String>,
    group_id: Option<String>,
    license_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PsGroupRec {
    id: String,
    developer_name: String,
    label: String,
    description: Option<String>,
    aggregate_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupRec {
    id: String,
    name: String,
    developer_name: String,
    kind: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentRec {
    id: String,
    assignee_id: String,
    permission_set_id: String,
    group_id: Option<String>,
    expires: Option<String>,
    modstamp: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemberRec {
    id: String,
    group_id: String,
    member_id: String,
    modstamp: String,
}

/// Why the access part of a state file cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AccessLoadError {
    #[error("{what} {id} refers to a missing record {reference}")]
    Dangling {
        what: &'static str,
        id: String,
        reference: String,
    },
    #[error("{what} {id}: bad date-time {value}")]
    BadDateTime {
        what: &'static str,
        id: String,
        value: String,
    },
}

fn position<T>(items: &[T], id: &str, id_of: impl Fn(&T) -> &str) -> Option<u32> {
    items
        .iter()
        .position(|x| id_of(x) == id)
        .and_then(|i| u32::try_from(i).ok())
}

/// The state-file form of `org`'s access records.
pub fn to_state(org: &Org) -> AccessState {
    let a = &org.access;
    let id_of = |obj: Obj, row: u32| super::query::row_id(org, obj, row).map(str::to_owned);
    AccessState {
        next_seq: a.next_seq,
        licenses: a
            .licenses
            .iter()
            .map(|l| LicenseRec {
                id: l.id.clone(),
                name: l.name.clone(),
                key: l.key.clone(),
            })
            .collect(),
        roles: a
            .roles
            .iter()
            .map(|r| RoleRec {
                id: r.id.clone(),
                name: r.name.clone(),
                developer_name: r.developer_name.clone(),
                parent_id: r.parent.and_then(|p| id_of(Obj::UserRole, p)),
            })
            .collect(),
        permission_sets: a
            .permission_sets
            .iter()
            .map(|p| PermSetRec {
                id: p.id.clone(),
                name: p.name.clone(),
                label: p.label.clone(),
                description: p.description.clone(),
                profile_id: match p.owner {
                    Owner::Profile(x) => id_of(Obj::Profile, x),
                    _ => None,
                },
                group_id: match p.owner {
                    Owner::Group(x) => id_of(Obj::PermissionSetGroup, x),
                    _ => None,
                },
                license_id: p.license.and_then(|l| id_of(Obj::UserLicense, l)),
            })
            .collect(),
        permission_set_groups: a
            .ps_groups
            .iter()
            .map(|g| PsGroupRec {
                id: g.id.clone(),
                developer_name: g.developer_name.clone(),
                label: g.label.clone(),
                description: g.description.clone(),
                aggregate_id: id_of(Obj::PermissionSet, g.aggregate).unwrap_or_default(),
            })
            .collect(),
        groups: a
            .groups
            .iter()
            .map(|g| GroupRec {
                id: g.id.clone(),
                name: g.name.clone(),
                developer_name: g.developer_name.clone(),
                kind: g.kind.clone(),
            })
            .collect(),
        assignments: a
            .assignments
            .iter()
            .flatten()
            .map(|x| AssignmentRec {
                id: x.id.clone(),
                assignee_id: org
                    .users
                    .get(x.assignee as usize)
                    .and_then(|r| r[crate::schema::idx::ID].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                permission_set_id: id_of(Obj::PermissionSet, x.permission_set).unwrap_or_default(),
                group_id: x.group.and_then(|g| id_of(Obj::PermissionSetGroup, g)),
                expires: x.expires.map(format_datetime),
                modstamp: format_datetime(x.modstamp),
            })
            .collect(),
        members: a
            .members
            .iter()
            .flatten()
            .map(|m| MemberRec {
                id: m.id.clone(),
                group_id: id_of(Obj::Group, m.group).unwrap_or_default(),
                member_id: match m.member {
                    MemberRef::User(u) => org
                        .users
                        .get(u as usize)
                        .and_then(|r| r[crate::schema::idx::ID].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    MemberRef::Group(g) => id_of(Obj::Group, g).unwrap_or_default(),
                },
                modstamp: format_datetime(m.modstamp),
            })
            .collect(),
    }
}

fn dangling(what: &'static str, id: &str, reference: &str) -> AccessLoadError {
    AccessLoadError::Dangling {
        what,
        id: id.to_owned(),
        reference: reference.to_owned(),
    }
}

fn datetime(
    what: &'static str,
    id: &str,
    value: &str,
) -> Result<chrono::DateTime<chrono::Utc>, AccessLoadError> {
    parse_datetime(value).ok_or_else(|| AccessLoadError::BadDateTime {
        what,
        id: id.to_owned(),
        value: value.to_owned(),
    })
}

/// Rebuilds the access records of a state file over `org`'s users and `profiles`.
pub fn from_state(
    state: AccessState,
    org: &Org,
    profiles: &[Profile],
) -> Result<Access, AccessLoadError> {
    let mut a = Access {
        next_seq: state.next_seq,
        ..Access::default()
    };
    for l in state.licenses {
        a.push_license(License {
            id: l.id,
            name: l.name,
            key: l.key,
        });
    }
    for r in &state.roles {
        let parent = match &r.parent_id {
            Some(p) => Some(
                position(&state.roles, p, |x| &x.id).ok_or_else(|| dangling("role", &r.id, p))?,
            ),
            None => None,
        };
        a.push_role(Role {
            id: r.id.clone(),
            name: r.name.clone(),
            developer_name: r.developer_name.clone(),
            parent,
        });
    }
    for p in state.permission_sets {
        let owner = match (&p.profile_id, &p.group_id) {
            (Some(x), _) => Owner::Profile(
                position(profiles, x, |q| &q.id)
                    .ok_or_else(|| dangling("permission set", &p.id, x))?,
            ),
            (None, Some(g)) => Owner::Group(
                position(&state.permission_set_groups, g, |q| &q.id)
                    .ok_or_else(|| dangling("permission set", &p.id, g))?,
            ),
            (None, None) => Owner::None,
        };
        let license = match &p.license_id {
            Some(l) => Some(
                a.find_of(Obj::UserLicense, l)
                    .ok_or_else(|| dangling("permission set", &p.id, l))?,
            ),
            None => None,
        };
        a.push_permission_set(PermSet {
            id: p.id,
            name: p.name,
            label: p.label,
            description: p.description,
            owner,
            license,
        });
    }
    for g in state.permission_set_groups {
        let aggregate = a
            .find_of(Obj::PermissionSet, &g.aggregate_id)
            .ok_or_else(|| dangling("permission set group", &g.id, &g.aggregate_id))?;
        a.push_ps_group(PsGroup {
            id: g.id,
            developer_name: g.developer_name,
            label: g.label,
            description: g.description,
            aggregate,
        });
    }
    for g in state.groups {
        a.push_group(Group {
            id: g.id,
            name: g.name,
            developer_name: g.developer_name,
            kind: g.kind,
        });
    }
    let user = |id: &str| org.find(id).and_then(|u| u32::try_from(u).ok());
    for x in state.assignments {
        let assignee =
            user(&x.assignee_id).ok_or_else(|| dangling("assignment", &x.id, &x.assignee_id))?;
        let permission_set = a
            .find_of(Obj::PermissionSet, &x.permission_set_id)
            .ok_or_else(|| dangling("assignment", &x.id, &x.permission_set_id))?;
        let group = match &x.group_id {
            Some(g) => Some(
                a.find_of(Obj::PermissionSetGroup, g)
                    .ok_or_else(|| dangling("assignment", &x.id, g))?,
            ),
            None => None,
        };
        let expires = match &x.expires {
            Some(e) => Some(datetime("assignment", &x.id, e)?),
            None => None,
        };
        let modstamp = datetime("assignment", &x.id, &x.modstamp)?;
        a.push_assignment(Assignment {
            id: x.id,
            assignee,
            permission_set,
            group,
            expires,
            modstamp,
        });
    }
    for m in state.members {
        let group = a
            .find_of(Obj::Group, &m.group_id)
            .ok_or_else(|| dangling("group member", &m.id, &m.group_id))?;
        let member = match user(&m.member_id) {
            Some(u) => MemberRef::User(u),
            None => MemberRef::Group(
                a.find_of(Obj::Group, &m.member_id)
                    .ok_or_else(|| dangling("group member", &m.id, &m.member_id))?,
            ),
        };
        let modstamp = datetime("group member", &m.id, &m.modstamp)?;
        a.push_member(Member {
            id: m.id,
            group,
            member,
            modstamp,
        });
    }
    Ok(a)
}
