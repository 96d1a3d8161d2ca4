//! Entitlements: user licenses, roles, permission sets (with their groups and assignments), public
//! groups and their members, next to the `User` store of [`crate::org`]. Each object has a small
//! typed store here; SOQL over them goes through [`query`], writes through [`dml`].
//!
//! References between records are positions (a user's index in `Org::users`, a permission set's
//! in `permission_sets`), so a relationship path costs an index, not a lookup. Assignments and
//! members can be deleted: their stores are slabs whose emptied slots stay empty, so a position
//! held by an open query cursor never names another record.

pub mod catalog;
pub mod children;
pub mod dml;
pub mod objects;
pub mod persist;
pub mod query;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::ids;
pub use objects::{Col, Obj};

/// A `UserLicense` (`100…`).
#[derive(Debug, Clone)]
pub struct License {
    pub id: String,
    pub name: String,
    pub key: String,
}

/// A `UserRole` (`00E…`).
#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    pub developer_name: String,
    pub parent: Option<u32>,
}

/// Who owns a permission set: nobody (a regular one), a profile, or a permission set group
/// (its aggregate permission set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    None,
    Profile(u32),
    Group(u32),
}

/// A `PermissionSet` (`0PS…`).
#[derive(Debug, Clone)]
pub struct PermSet {
    pub id: String,
    pub name: String,
    pub label: String,
    pub description: Option<String>,
    pub owner: Owner,
    /// A position in `licenses`: only users whose profile has that license may hold it.
    pub license: Option<u32>,
}

/// A `PermissionSetGroup` (`0PG…`); `aggregate` is the permission set its assignments point to.
#[derive(Debug, Clone)]
pub struct PsGroup {
    pub id: String,
    pub developer_name: String,
    pub label: String,
    pub description: Option<String>,
    pub aggregate: u32,
}

/// A `Group` (`00G…`): `kind` is its `Type` (`Regular`, `Queue`).
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub developer_name: String,
    pub kind: String,
}

/// A `PermissionSetAssignment` (`0Pa…`).
#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    pub assignee: u32,
    pub permission_set: u32,
    pub group: Option<u32>,
    pub expires: Option<DateTime<Utc>>,
    pub modstamp: DateTime<Utc>,
}

/// What a `GroupMember` adds to a group: a user or another group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberRef {
    User(u32),
    Group(u32),
}

/// A `GroupMember` (`011…`).
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub group: u32,
    pub member: MemberRef,
    pub modstamp: DateTime<Utc>,
}

/// Every access record but profiles (which stay in `Org::profiles`, as `User` validation uses them).
#[derive(Debug, Default)]
pub struct Access {
    pub licenses: Vec<License>,
    pub roles: Vec<Role>,
    pub permission_sets: Vec<PermSet>,
    pub ps_groups: Vec<PsGroup>,
    pub groups: Vec<Group>,
    pub assignments: Vec<Option<Assignment>>,
    pub members: Vec<Option<Member>>,
    /// Canonical 15-char id → record, for every record above (fixed-size keys: no allocation
    /// per record, which matters at hundreds of thousands of assignments).
    by_id: HashMap<[u8; 15], (Obj, u32)>,
    /// User index → its assignments (the service reads assignments by user).
    by_assignee: HashMap<u32, Vec<u32>>,
    /// Member → its memberships.
    by_member: HashMap<MemberRef, Vec<u32>>,
    /// Next id number of these objects. Their own sequence, apart from `Org::next_seq`, so adding
    /// them changed no user id; key prefixes keep the ids distinct.
    pub next_seq: u64,
    /// Assignments and members that exist (the slabs also hold emptied slots).
    live_assignments: usize,
    live_members: usize,
}

fn key(id: &str) -> Option<[u8; 15]> {
    ids::canonical_15(id)?.as_bytes().try_into().ok()
}

fn pos(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Access {
    pub fn next_id(&mut self, obj: Obj) -> String {
        let id = ids::make_id(obj.prefix(), self.next_seq);
        self.next_seq += 1;
        id
    }

    fn index_id(&mut self, id: &str, obj: Obj, row: u32) {
        if let Some(k) = key(id) {
            self.by_id.insert(k, (obj, row));
        }
    }

    /// A record by 15- or 18-char id (any case for 18-char ids).
    pub fn find(&self, id: &str) -> Option<(Obj, u32)> {
        self.by_id.get(&key(id)?).copied()
    }

    /// A record of `obj` by id.
    pub fn find_of(&self, obj: Obj, id: &str) -> Option<u32> {
        self.find(id).filter(|(o, _)| *o == obj).map(|(_, r)| r)
    }

    pub fn push_license(&mut self, l: License) -> u32 {
        let row = pos(self.licenses.len());
        self.index_id(&l.id, Obj::UserLicense, row);
        self.licenses.push(l);
        row
    }

    pub fn push_role(&mut self, r: Role) -> u32 {
        let row = pos(self.roles.len());
        self.index_id(&r.id, Obj::UserRole, row);
        self.roles.push(r);
        row
    }

    pub fn push_permission_set(&mut self, p: PermSet) -> u32 {
        let row = pos(self.permission_sets.len());
        self.index_id(&p.id, Obj::PermissionSet, row);
        self.permission_sets.push(p);
        row
    }

    pub fn push_ps_group(&mut self, g: PsGroup) -> u32 {
        let row = pos(self.ps_groups.len());
        self.index_id(&g.id, Obj::PermissionSetGroup, row);
        self.ps_groups.push(g);
        row
    }

    pub fn push_group(&mut self, g: Group) -> u32 {
        let row = pos(self.groups.len());
        self.index_id(&g.id, Obj::Group, row);
        self.groups.push(g);
        row
    }

    pub fn push_assignment(&mut self, a: Assignment) -> u32 {
        let row = pos(self.assignments.len());
        self.index_id(&a.id, Obj::PermissionSetAssignment, row);
        self.by_assignee.entry(a.assignee).or_default().push(row);
        self.assignments.push(Some(a));
        self.live_assignments += 1;
        row
    }

    pub fn push_member(&mut self, m: Member) -> u32 {
        let row = pos(self.members.len());
        self.index_id(&m.id, Obj::GroupMember, row);
        self.by_member.entry(m.member).or_default().push(row);
        self.members.push(Some(m));
        self.live_members += 1;
        row
    }

    pub fn assignment(&self, row: u32) -> Option<&Assignment> {
        self.assignments.get(row as usize)?.as_ref()
    }

    pub fn member(&self, row: u32) -> Option<&Member> {
        self.members.get(row as usize)?.as_ref()
    }

    /// Empties an assignment's slot; returns what it held.
    pub fn remove_assignment(&mut self, row: u32) -> Option<Assignment> {
        let a = self.assignments.get_mut(row as usize)?.take()?;
        if let Some(k) = key(&a.id) {
            self.by_id.remove(&k);
        }
        if let Some(rows) = self.by_assignee.get_mut(&a.assignee) {
            rows.retain(|r| *r != row);
        }
        self.live_assignments -= 1;
        Some(a)
    }

    pub fn remove_member(&mut self, row: u32) -> Option<Member> {
        let m = self.members.get_mut(row as usize)?.take()?;
        if let Some(k) = key(&m.id) {
            self.by_id.remove(&k);
        }
        if let Some(rows) = self.by_member.get_mut(&m.member) {
            rows.retain(|r| *r != row);
        }
        self.live_members -= 1;
        Some(m)
    }

    /// Puts a removed assignment back in its slot (an all-or-none rollback of a delete).
    pub fn restore_assignment(&mut self, row: u32, a: Assignment) {
        let Some(slot) = self.assignments.get_mut(row as usize) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        if let Some(k) = key(&a.id) {
            self.by_id.insert(k, (Obj::PermissionSetAssignment, row));
        }
        let rows = self.by_assignee.entry(a.assignee).or_default();
        rows.push(row);
        rows.sort_unstable();
        *slot = Some(a);
        self.live_assignments += 1;
    }

    pub fn restore_member(&mut self, row: u32, m: Member) {
        let Some(slot) = self.members.get_mut(row as usize) else {
            return;
        };
        if slot.is_some() {
            return;
        }
        if let Some(k) = key(&m.id) {
            self.by_id.insert(k, (Obj::GroupMember, row));
        }
        let rows = self.by_member.entry(m.member).or_default();
        rows.push(row);
        rows.sort_unstable();
        *slot = Some(m);
        self.live_members += 1;
    }

    /// A user's assignments, oldest first.
    pub fn assignments_of(&self, user: u32) -> &[u32] {
        self.by_assignee.get(&user).map_or(&[], Vec::as_slice)
    }

    /// A user's or group's memberships, oldest first.
    pub fn memberships_of(&self, member: MemberRef) -> &[u32] {
        self.by_member.get(&member).map_or(&[], Vec::as_slice)
    }

    /// The permission set a profile owns.
    pub fn profile_permission_set(&self, profile: u32) -> Option<u32> {
        self.permission_sets
            .iter()
            .position(|p| p.owner == Owner::Profile(profile))
            .map(pos)
    }

    /// Records of each object, for the admin summary.
    pub fn counts(&self, profiles: usize) -> Vec<(Obj, usize)> {
        Obj::ALL
            .into_iter()
            .map(|o| {
                let n = match o {
                    Obj::UserLicense => self.licenses.len(),
                    Obj::Profile => profiles,
                    Obj::UserRole => self.roles.len(),
                    Obj::PermissionSet => self.permission_sets.len(),
                    Obj::PermissionSetGroup => self.ps_groups.len(),
                    Obj::PermissionSetAssignment => self.live_assignments,
                    Obj::Group => self.groups.len(),
                    Obj::GroupMember => self.live_members,
                };
                (o, n)
            })
            .collect()
    }

    /// Drops every assignment and membership of a user (rolling back the user's create).
    pub fn forget_user(&mut self, user: u32) {
        for row in self.assignments_of(user).to_vec() {
            self.remove_assignment(row);
        }
        for row in self.memberships_of(MemberRef::User(user)).to_vec() {
            self.remove_member(row);
        }
        self.by_assignee.remove(&user);
        self.by_member.remove(&MemberRef::User(user));
    }
}
