//! SOQL over the access objects: reading a column of a record, running a parsed query (from an
//! index when the WHERE clause names assignees, members or ids), and writing records as the REST
//! API shows them, relationship paths as nested objects.

use std::ops::RangeBounds;

use super::objects::col;
use super::{Col, MemberRef, Obj, Owner};
use crate::ids;
use crate::org::Org;
use crate::schema::{idx, push_datetime, push_json_str};
use crate::soql::{Query, V};

/// The id of the record of `obj` at `row`, if it exists.
pub fn row_id(org: &Org, obj: Obj, row: u32) -> Option<&str> {
    let a = &org.access;
    let r = row as usize;
    Some(match obj {
        Obj::UserLicense => a.licenses.get(r)?.id.as_str(),
        Obj::Profile => org.profiles.get(r)?.id.as_str(),
        Obj::UserRole => a.roles.get(r)?.id.as_str(),
        Obj::PermissionSet => a.permission_sets.get(r)?.id.as_str(),
        Obj::PermissionSetGroup => a.ps_groups.get(r)?.id.as_str(),
        Obj::PermissionSetAssignment => a.assignment(row)?.id.as_str(),
        Obj::Group => a.groups.get(r)?.id.as_str(),
        Obj::GroupMember => a.member(row)?.id.as_str(),
    })
}

fn user_id(org: &Org, u: u32) -> Option<&str> {
    org.users.get(u as usize)?[idx::ID].as_str()
}

fn opt(s: Option<&str>) -> V<'_> {
    s.map_or(V::Null, V::Str)
}

/// Field `field` of the record of `obj` at `row` (`Null` for a missing record).
pub fn own_value(org: &Org, obj: Obj, row: u32, field: u8) -> V<'_> {
    if field == col::ID {
        return opt(row_id(org, obj, row));
    }
    let a = &org.access;
    let r = row as usize;
    match obj {
        Obj::UserLicense => match (a.licenses.get(r), field) {
            (Some(l), col::license::NAME) => V::Str(&l.name),
            (Some(l), col::license::KEY) => V::Str(&l.key),
            (Some(_), col::license::STATUS) => V::Str("Active"),
            _ => V::Null,
        },
        Obj::Profile => match (org.profiles.get(r), field) {
            (Some(p), col::profile::NAME) => V::Str(&p.name),
            (Some(p), col::profile::USER_LICENSE_ID) => opt(p.user_license_id.as_deref()),
            (Some(p), col::profile::USER_TYPE) => V::Str(if p.name == "Chatter Free User" {
                "CsnOnly"
            } else {
                "Standard"
            }),
            _ => V::Null,
        },
        Obj::UserRole => match (a.roles.get(r), field) {
            (Some(x), col::role::NAME) => V::Str(&x.name),
            (Some(x), col::role::DEVELOPER_NAME) => V::Str(&x.developer_name),
            (Some(x), col::role::PARENT_ROLE_ID) => {
                opt(x.parent.and_then(|p| row_id(org, Obj::UserRole, p)))
            }
            _ => V::Null,
        },
        Obj::PermissionSet => {
            let Some(p) = a.permission_sets.get(r) else {
                return V::Null;
            };
            match field {
                col::ps::NAME => V::Str(&p.name),
                col::ps::LABEL => V::Str(&p.label),
                col::ps::DESCRIPTION => opt(p.description.as_deref()),
                col::ps::IS_OWNED_BY_PROFILE => V::Bool(matches!(p.owner, Owner::Profile(_))),
                col::ps::IS_CUSTOM => V::Bool(p.owner == Owner::None),
                col::ps::LICENSE_ID => {
                    opt(p.license.and_then(|l| row_id(org, Obj::UserLicense, l)))
                }
                col::ps::PROFILE_ID => match p.owner {
                    Owner::Profile(x) => opt(row_id(org, Obj::Profile, x)),
                    _ => V::Null,
                },
                col::ps::PERMISSION_SET_GROUP_ID => match p.owner {
                    Owner::Group(x) => opt(row_id(org, Obj::PermissionSetGroup, x)),
                    _ => V::Null,
                },
                col::ps::TYPE => V::Str(match p.owner {
                    Owner::None => "Regular",
                    Owner::Profile(_) => "Profile",
                    Owner::Group(_) => "Group",
                }),
                _ => V::Null,
            }
        }
        Obj::PermissionSetGroup => match (a.ps_groups.get(r), field) {
            (Some(g), col::psg::DEVELOPER_NAME) => V::Str(&g.developer_name),
            (Some(g), col::psg::MASTER_LABEL) => V::Str(&g.label),
            (Some(g), col::psg::DESCRIPTION) => opt(g.description.as_deref()),
            (Some(_), col::psg::STATUS) => V::Str("Updated"),
            _ => V::Null,
        },
        Obj::PermissionSetAssignment => {
            let Some(x) = a.assignment(row) else {
                return V::Null;
            };
            match field {
                col::psa::ASSIGNEE_ID => opt(user_id(org, x.assignee)),
                col::psa::PERMISSION_SET_ID => {
                    opt(row_id(org, Obj::PermissionSet, x.permission_set))
                }
                col::psa::PERMISSION_SET_GROUP_ID => opt(x
                    .group
                    .and_then(|g| row_id(org, Obj::PermissionSetGroup, g))),
                col::psa::IS_ACTIVE => V::Bool(true),
                col::psa::EXPIRATION_DATE => x.expires.map_or(V::Null, V::DateTime),
                col::psa::SYSTEM_MODSTAMP => V::DateTime(x.modstamp),
                _ => V::Null,
            }
        }
        Obj::Group => match (a.groups.get(r), field) {
            (Some(g), col::group::NAME) => V::Str(&g.name),
            (Some(g), col::group::DEVELOPER_NAME) => V::Str(&g.developer_name),
            (Some(g), col::group::TYPE) => V::Str(&g.kind),
            (Some(_), col::group::DOES_INCLUDE_BOSSES) => V::Bool(false),
            _ => V::Null,
        },
        Obj::GroupMember => {
            let Some(m) = a.member(row) else {
                return V::Null;
            };
            match field {
                col::member::GROUP_ID => opt(row_id(org, Obj::Group, m.group)),
                col::member::USER_OR_GROUP_ID => opt(match m.member {
                    MemberRef::User(u) => user_id(org, u),
                    MemberRef::Group(g) => row_id(org, Obj::Group, g),
                }),
                col::member::SYSTEM_MODSTAMP => V::DateTime(m.modstamp),
                _ => V::Null,
            }
        }
    }
}

/// The record a reference field of `obj`'s record at `row` points to.
pub fn follow(org: &Org, obj: Obj, row: u32, ref_field: u8) -> Option<(Obj, u32)> {
    let a = &org.access;
    let r = row as usize;
    match (obj, ref_field) {
        (Obj::Profile, col::profile::USER_LICENSE_ID) => {
            let l = org.profiles.get(r)?.user_license_id.as_deref()?;
            Some((Obj::UserLicense, a.find_of(Obj::UserLicense, l)?))
        }
        (Obj::UserRole, col::role::PARENT_ROLE_ID) => {
            Some((Obj::UserRole, a.roles.get(r)?.parent?))
        }
        (Obj::PermissionSet, col::ps::PROFILE_ID) => match a.permission_sets.get(r)?.owner {
            Owner::Profile(p) => Some((Obj::Profile, p)),
            _ => None,
        },
        (Obj::PermissionSet, col::ps::PERMISSION_SET_GROUP_ID) => {
            match a.permission_sets.get(r)?.owner {
                Owner::Group(g) => Some((Obj::PermissionSetGroup, g)),
                _ => None,
            }
        }
        (Obj::PermissionSetAssignment, col::psa::PERMISSION_SET_ID) => {
            Some((Obj::PermissionSet, a.assignment(row)?.permission_set))
        }
        (Obj::PermissionSetAssignment, col::psa::PERMISSION_SET_GROUP_ID) => {
            Some((Obj::PermissionSetGroup, a.assignment(row)?.group?))
        }
        (Obj::GroupMember, col::member::GROUP_ID) => Some((Obj::Group, a.member(row)?.group)),
        _ => None,
    }
}

/// Column `c` of the `c.base` record at `row`.
pub fn value(org: &Org, c: Col, row: u32) -> V<'_> {
    match c.rel {
        None => own_value(org, c.base, row, c.field),
        Some(rf) => {
            follow(org, c.base, row, rf).map_or(V::Null, |(to, r)| own_value(org, to, r, c.field))
        }
    }
}

/// How many record slots `obj` has (deleted assignments and members leave empty ones).
fn slots(org: &Org, obj: Obj) -> usize {
    let a = &org.access;
    match obj {
        Obj::UserLicense => a.licenses.len(),
        Obj::Profile => org.profiles.len(),
        Obj::UserRole => a.roles.len(),
        Obj::PermissionSet => a.permission_sets.len(),
        Obj::PermissionSetGroup => a.ps_groups.len(),
        Obj::PermissionSetAssignment => a.assignments.len(),
        Obj::Group => a.groups.len(),
        Obj::GroupMember => a.members.len(),
    }
}

/// The rows a query can match: from an index when its WHERE names assignees, members or ids, or
/// a range of assignee or member ids (`AssigneeId >= '005…' AND AssigneeId < '005…'`), else
/// every row; in creation order.
fn candidates(org: &Org, obj: Obj, q: &Query<Col>) -> Vec<u32> {
    let a = &org.access;
    let restricted = |field: u8| q.id_restriction(Col::own(obj, field));
    let ranged = |field: u8| q.id_range(Col::own(obj, field));
    let mut rows: Vec<u32> = if let (Obj::PermissionSetAssignment, Some(ids)) =
        (obj, restricted(col::psa::ASSIGNEE_ID))
    {
        ids.iter()
            .filter_map(|id| org.find(id))
            .filter_map(|u| u32::try_from(u).ok())
            .flat_map(|u| a.assignments_of(u).iter().copied())
            .collect()
    } else if let (Obj::GroupMember, Some(ids)) = (obj, restricted(col::member::USER_OR_GROUP_ID)) {
        ids.iter()
            .filter_map(
                |id| match org.find(id).and_then(|u| u32::try_from(u).ok()) {
                    Some(u) => Some(MemberRef::User(u)),
                    None => a.find_of(Obj::Group, id).map(MemberRef::Group),
                },
            )
            .flat_map(|m| a.memberships_of(m).iter().copied())
            .collect()
    } else if let (Obj::PermissionSetAssignment, Some(range)) = (obj, ranged(col::psa::ASSIGNEE_ID))
    {
        org.users_in_id_range(range)
            .filter_map(|u| u32::try_from(u).ok())
            .flat_map(|u| a.assignments_of(u).iter().copied())
            .collect()
    } else if let (Obj::GroupMember, Some(range)) = (obj, ranged(col::member::USER_OR_GROUP_ID)) {
        // Members are users (`005…`) or groups (`00G…`, few: their ids are checked one by one).
        let users = org
            .users_in_id_range(range)
            .filter_map(|u| u32::try_from(u).ok())
            .map(MemberRef::User);
        let groups = (0..a.groups.len())
            .filter_map(|g| u32::try_from(g).ok())
            .filter(|&g| {
                row_id(org, Obj::Group, g)
                    .and_then(ids::canonical_15)
                    .is_some_and(|c| RangeBounds::<str>::contains(&range, c.as_str()))
            })
            .map(MemberRef::Group);
        users
            .chain(groups)
            .flat_map(|m| a.memberships_of(m).iter().copied())
            .collect()
    } else if let Some(ids) = restricted(col::ID) {
        ids.iter()
            .filter_map(|id| match obj {
                Obj::Profile => org
                    .profiles
                    .iter()
                    .position(|p| p.id.starts_with(id))
                    .and_then(|i| u32::try_from(i).ok()),
                _ => a.find_of(obj, id),
            })
            .collect()
    } else {
        return (0..slots(org, obj))
            .filter_map(|r| u32::try_from(r).ok())
            .filter(|&r| row_id(org, obj, r).is_some())
            .collect();
    };
    rows.sort_unstable();
    rows.dedup();
    rows
}

/// The positions of the matching records of `obj`, ordered, after OFFSET and LIMIT.
pub fn run(org: &Org, obj: Obj, q: &Query<Col>) -> Vec<u32> {
    let mut hits: Vec<u32> = candidates(org, obj, q)
        .into_iter()
        .filter(|&r| q.matches(&|c| value(org, c, r)))
        .collect();
    if !q.order.is_empty() {
        hits.sort_by(|&x, &y| q.compare(&|c| value(org, c, x), &|c| value(org, c, y)));
    }
    q.window(hits)
}

fn push_v(out: &mut String, v: V<'_>) {
    match v {
        V::Null => out.push_str("null"),
        V::Str(s) => push_json_str(out, s),
        V::Bool(true) => out.push_str("true"),
        V::Bool(false) => out.push_str("false"),
        V::DateTime(d) => {
            out.push('"');
            push_datetime(out, d);
            out.push('"');
        }
    }
}

fn push_attributes(out: &mut String, version: &str, obj: Obj, id: &str) {
    out.push_str("{\"attributes\":{\"type\":\"");
    out.push_str(obj.name());
    out.push_str("\",\"url\":\"/services/data/");
    out.push_str(version);
    out.push_str("/sobjects/");
    out.push_str(obj.name());
    out.push('/');
    out.push_str(id);
    out.push_str("\"}");
}

/// Appends a record as the REST API shows it: `attributes`, then the columns in SELECT order,
/// the columns of one relationship together as a nested record (`null` when it points nowhere)
/// at the place of the first of them.
pub fn push_row(out: &mut String, version: &str, org: &Org, obj: Obj, row: u32, cols: &[Col]) {
    push_attributes(out, version, obj, row_id(org, obj, row).unwrap_or_default());
    let mut done: Vec<u8> = Vec::new();
    for c in cols {
        out.push(',');
        let Some(rf) = c.rel else {
            push_json_str(out, c.def().map_or("", |d| d.name));
            out.push(':');
            push_v(out, value(org, *c, row));
            continue;
        };
        if done.contains(&rf) {
            // Written with the first column of its relationship; drop the comma just pushed.
            out.pop();
            continue;
        }
        done.push(rf);
        push_json_str(out, c.rel_name().unwrap_or_default());
        out.push(':');
        let Some((to, target)) = follow(org, obj, row, rf) else {
            out.push_str("null");
            continue;
        };
        push_attributes(
            out,
            version,
            to,
            row_id(org, to, target).unwrap_or_default(),
        );
        for same in cols.iter().filter(|x| x.rel == Some(rf)) {
            out.push(',');
            push_json_str(out, same.def().map_or("", |d| d.name));
            out.push(':');
            push_v(out, own_value(org, to, target, same.field));
        }
        out.push('}');
    }
    out.push('}');
}

/// Every own field of `obj`, for a retrieve without `fields`.
pub fn all_columns(obj: Obj) -> Vec<Col> {
    (0..obj.fields().len())
        .filter_map(|i| u8::try_from(i).ok())
        .map(|i| Col::own(obj, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::AccessConfig;
    use crate::schema::Field;

    fn org() -> Org {
        let access = AccessConfig {
            assignments_per_user: 2,
            memberships_per_user: 2,
            ..AccessConfig::default()
        };
        let now = chrono::Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        crate::seed::generate_with(60, 3, now, &access)
    }

    fn parse(obj: Obj, src: &str) -> Query<Col> {
        let resolve = move |name: &str| Col::resolve(obj, name);
        Query::parse_with(src, obj.name(), &resolve).unwrap()
    }

    /// What a scan of every record finds: the index must answer the same.
    fn scanned(org: &Org, obj: Obj, q: &Query<Col>) -> Vec<u32> {
        (0..slots(org, obj))
            .filter_map(|r| u32::try_from(r).ok())
            .filter(|&r| row_id(org, obj, r).is_some())
            .filter(|&r| q.matches(&|c| value(org, c, r)))
            .collect()
    }

    /// User ids in `ORDER BY Id` order.
    fn ordered_ids(org: &Org) -> Vec<String> {
        Query::<Field>::parse("SELECT Id FROM User ORDER BY Id")
            .unwrap()
            .run(org)
            .into_iter()
            .map(|i| org.users[i as usize][idx::ID].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn member_ranges_are_the_members_between_ordered_user_ids() {
        let org = org();
        let ids = ordered_ids(&org);
        let (lo, hi) = (&ids[10], &ids[30]);
        // A 15-char lower bound and an 18-char upper bound in the wrong case name the same ids.
        let src = format!(
            "SELECT Id, UserOrGroupId, Group.DeveloperName FROM GroupMember WHERE Group.Type = 'Regular' AND UserOrGroupId >= '{}' AND UserOrGroupId <= '{}'",
            &lo[..15],
            hi.to_lowercase()
        );
        let q = parse(Obj::GroupMember, &src);
        assert!(
            q.id_range(Col::own(Obj::GroupMember, col::member::USER_OR_GROUP_ID))
                .is_some()
        );
        let got = run(&org, Obj::GroupMember, &q);
        assert_eq!(got, scanned(&org, Obj::GroupMember, &q));
        let inside: Vec<&String> = ids[10..=30].iter().collect();
        let mut want: Vec<u32> = Vec::new();
        for id in &inside {
            let u = u32::try_from(org.find(id).unwrap()).unwrap();
            want.extend(org.access.memberships_of(MemberRef::User(u)));
        }
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(got.len(), 21 * 2, "two memberships per user in range");

        // Exclusive bounds drop exactly the bounds' own members.
        let src = format!(
            "SELECT Id FROM GroupMember WHERE UserOrGroupId > '{lo}' AND UserOrGroupId < '{hi}'"
        );
        let q = parse(Obj::GroupMember, &src);
        assert_eq!(run(&org, Obj::GroupMember, &q).len(), 19 * 2);
        // Inverted and empty ranges find nothing, without a panic.
        for src in [
            format!(
                "SELECT Id FROM GroupMember WHERE UserOrGroupId > '{hi}' AND UserOrGroupId < '{lo}'"
            ),
            format!(
                "SELECT Id FROM GroupMember WHERE UserOrGroupId > '{lo}' AND UserOrGroupId < '{lo}'"
            ),
            format!(
                "SELECT Id FROM GroupMember WHERE UserOrGroupId >= '{lo}' AND UserOrGroupId < '{lo}'"
            ),
        ] {
            assert!(run(&org, Obj::GroupMember, &parse(Obj::GroupMember, &src)).is_empty());
        }
    }

    #[test]
    fn assignment_ranges_match_a_scan() {
        let org = org();
        let ids = ordered_ids(&org);
        for (a, b) in [(0, 59), (5, 6), (20, 40), (59, 59)] {
            let src = format!(
                "SELECT Id, PermissionSet.Name FROM PermissionSetAssignment WHERE AssigneeId >= '{}' AND AssigneeId <= '{}' AND PermissionSet.IsOwnedByProfile = false",
                ids[a], ids[b]
            );
            let q = parse(Obj::PermissionSetAssignment, &src);
            let got = run(&org, Obj::PermissionSetAssignment, &q);
            assert_eq!(
                got,
                scanned(&org, Obj::PermissionSetAssignment, &q),
                "{a}..={b}"
            );
            let want: usize = ids[a..=b]
                .iter()
                .map(|id| {
                    let u = u32::try_from(org.find(id).unwrap()).unwrap();
                    org.access
                        .assignments_of(u)
                        .iter()
                        .filter(|&&r| {
                            let ps = org.access.assignment(r).unwrap().permission_set;
                            let owner = org.access.permission_sets[ps as usize].owner;
                            !matches!(owner, Owner::Profile(_))
                        })
                        .count()
                })
                .sum();
            assert_eq!(got.len(), want, "{a}..={b}");
            assert!(want > 0 || a == b, "{a}..={b}");
        }
    }
}
