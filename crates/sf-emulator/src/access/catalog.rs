//! The catalog every emulated org starts with, the extra catalog and assignments a configuration
//! asks for, and the profile-owned assignment each user holds.
//!
//! DeveloperNames are stable (tests and the service's mappings name them); ids follow from the
//! order of creation, so the same configuration gives the same ids.

use chrono::{DateTime, Utc};

use super::{Access, Assignment, Group, License, Member, MemberRef, Owner, PermSet, PsGroup, Role};
use crate::org::{Org, Profile};
use crate::rng::SplitMix;
use crate::schema::idx;

/// What a configuration adds to the default catalog (all zero by default: the catalog alone).
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Regular permission sets beyond the five shipped (`Generated_Permission_Set_<n>`).
    pub extra_permission_sets: usize,
    /// Regular public groups beyond the three shipped (`Generated_Group_<n>`).
    pub extra_groups: usize,
    /// Assignments given to each generated user (permission sets and groups its license allows).
    pub assignments_per_user: usize,
    /// Public-group memberships given to each generated user.
    pub memberships_per_user: usize,
}

/// (name, LicenseDefinitionKey). The keys are the emulator's choice.
const LICENSES: [(&str, &str); 3] = [
    ("Salesforce", "SFDC"),
    ("Salesforce Platform", "AUL"),
    ("Chatter Free", "PID_Chatter"),
];
pub const SALESFORCE_LICENSE: &str = "Salesforce";
pub const CHATTER_FREE_LICENSE: &str = "Chatter Free";

/// (DeveloperName, Name, parent's DeveloperName).
const ROLES: [(&str, &str, Option<&str>); 3] = [
    ("CEO", "CEO", None),
    ("VP_Sales", "VP, Sales", Some("CEO")),
    ("Sales_Rep", "Sales Representative", Some("VP_Sales")),
];

/// (Name, Label, license name): `Chatter_Moderator` needs the Chatter Free license, which the
/// Standard User profile lacks; `Api_Integration` needs the Salesforce license.
const PERMISSION_SETS: [(&str, &str, Option<&str>); 5] = [
    ("Sales_Operations", "Sales Operations", None),
    ("Support_Console", "Support Console", None),
    ("Report_Builder", "Report Builder", None),
    (
        "Api_Integration",
        "API Integration",
        Some(SALESFORCE_LICENSE),
    ),
    (
        "Chatter_Moderator",
        "Chatter Moderator",
        Some(CHATTER_FREE_LICENSE),
    ),
];

/// (DeveloperName, MasterLabel).
const PS_GROUPS: [(&str, &str); 2] = [
    ("Sales_Bundle", "Sales Bundle"),
    ("Support_Bundle", "Support Bundle"),
];

/// (DeveloperName, Name, Type).
const GROUPS: [(&str, &str, &str); 4] = [
    ("Sales_Team", "Sales Team", "Regular"),
    ("Support_Team", "Support Team", "Regular"),
    ("Engineering_Team", "Engineering Team", "Regular"),
    ("Support_Queue", "Support Queue", "Queue"),
];

/// The license a shipped profile has (Chatter Free users have the Chatter Free license).
pub fn default_license_of(profile_name: &str) -> &'static str {
    if profile_name == "Chatter Free User" {
        CHATTER_FREE_LICENSE
    } else {
        SALESFORCE_LICENSE
    }
}

/// The `Name` of a permission set owned by a profile or a group: `X` and the owner's 15-char id,
/// as Salesforce names profile-owned ones (its docs warn the name may change).
fn owned_name(owner_id: &str) -> String {
    format!("X{}", owner_id.get(..15).unwrap_or(owner_id))
}

/// Builds the default catalog and gives each profile its license and owned permission set.
pub fn build_default(profiles: &mut [Profile]) -> Access {
    let mut a = Access {
        next_seq: 1,
        ..Access::default()
    };
    for (name, key) in LICENSES {
        let id = a.next_id(super::Obj::UserLicense);
        a.push_license(License {
            id,
            name: name.to_owned(),
            key: key.to_owned(),
        });
    }
    for p in profiles.iter_mut() {
        if p.user_license_id.is_none() {
            p.user_license_id = a.license_id_named(default_license_of(&p.name));
        }
    }
    for (dev, name, parent) in ROLES {
        let id = a.next_id(super::Obj::UserRole);
        let parent = parent.and_then(|d| a.role_named(d));
        a.push_role(Role {
            id,
            name: name.to_owned(),
            developer_name: dev.to_owned(),
            parent,
        });
    }
    for (name, label, license) in PERMISSION_SETS {
        let id = a.next_id(super::Obj::PermissionSet);
        let license = license.and_then(|l| a.license_named(l));
        a.push_permission_set(PermSet {
            id,
            name: name.to_owned(),
            label: label.to_owned(),
            description: None,
            owner: Owner::None,
            license,
        });
    }
    for (i, p) in profiles.iter().enumerate() {
        let id = a.next_id(super::Obj::PermissionSet);
        let license = p
            .user_license_id
            .as_deref()
            .and_then(|l| a.find_of(super::Obj::UserLicense, l));
        a.push_permission_set(PermSet {
            id,
            name: owned_name(&p.id),
            label: p.id.get(..15).unwrap_or(&p.id).to_owned(),
            description: None,
            owner: Owner::Profile(u32::try_from(i).unwrap_or(u32::MAX)),
            license,
        });
    }
    for (dev, label) in PS_GROUPS {
        add_ps_group(&mut a, dev, label);
    }
    for (dev, name, kind) in GROUPS {
        add_group(&mut a, dev, name, kind);
    }
    a
}

fn add_ps_group(a: &mut Access, dev: &str, label: &str) {
    let id = a.next_id(super::Obj::PermissionSetGroup);
    let ps_id = a.next_id(super::Obj::PermissionSet);
    let group_row = u32::try_from(a.ps_groups.len()).unwrap_or(u32::MAX);
    let aggregate = a.push_permission_set(PermSet {
        id: ps_id,
        name: owned_name(&id),
        label: label.to_owned(),
        description: None,
        owner: Owner::Group(group_row),
        license: None,
    });
    a.push_ps_group(PsGroup {
        id,
        developer_name: dev.to_owned(),
        label: label.to_owned(),
        description: None,
        aggregate,
    });
}

fn add_group(a: &mut Access, dev: &str, name: &str, kind: &str) {
    let id = a.next_id(super::Obj::Group);
    a.push_group(Group {
        id,
        name: name.to_owned(),
        developer_name: dev.to_owned(),
        kind: kind.to_owned(),
    });
}

impl Access {
    pub fn license_named(&self, name: &str) -> Option<u32> {
        self.licenses
            .iter()
            .position(|l| l.name == name)
            .and_then(|i| u32::try_from(i).ok())
    }

    fn license_id_named(&self, name: &str) -> Option<String> {
        self.licenses
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.id.clone())
    }

    pub fn role_named(&self, developer_name: &str) -> Option<u32> {
        self.roles
            .iter()
            .position(|r| r.developer_name == developer_name)
            .and_then(|i| u32::try_from(i).ok())
    }
}

/// What an assignment generator may give a user: a permission set, or a group of them.
#[derive(Clone, Copy)]
enum Grant {
    Set(u32),
    Group(u32),
}

/// Adds the configured extra catalog, then the configured assignments and memberships of every
/// user (deterministic from `seed`; the Automated Process user gets none).
pub fn extend(org: &mut Org, config: &AccessConfig, seed: u64, now: DateTime<Utc>) {
    for n in 1..=config.extra_permission_sets {
        let id = org.access.next_id(super::Obj::PermissionSet);
        org.access.push_permission_set(PermSet {
            id,
            name: format!("Generated_Permission_Set_{n}"),
            label: format!("Generated Permission Set {n}"),
            description: None,
            owner: Owner::None,
            license: None,
        });
    }
    for n in 1..=config.extra_groups {
        add_group(
            &mut org.access,
            &format!("Generated_Group_{n}"),
            &format!("Generated Group {n}"),
            "Regular",
        );
    }
    if config.assignments_per_user == 0 && config.memberships_per_user == 0 {
        return;
    }
    // A stream of its own, so users stay the same whatever is assigned to them.
    let mut rng = SplitMix::new(seed ^ 0x5EED_ACCE_55ED_0001);
    let regular_groups: Vec<u32> = (0..org.access.groups.len())
        .filter(|&g| {
            org.access
                .groups
                .get(g)
                .is_some_and(|x| x.kind == "Regular")
        })
        .filter_map(|g| u32::try_from(g).ok())
        .collect();
    for user in 0..org.users.len() {
        let Ok(u) = u32::try_from(user) else { break };
        let automated = org
            .users
            .get(user)
            .is_some_and(|r| r[idx::USER_TYPE].as_str() == Some("AutomatedProcess"));
        if automated {
            continue;
        }
        let license = org.user_license(u);
        let mut grants: Vec<Grant> = org
            .access
            .permission_sets
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.owner == Owner::None
                    && p.license.is_none_or(|l| {
                        org.access.licenses.get(l as usize).map(|x| &x.id) == license.as_ref()
                    })
            })
            .filter_map(|(i, _)| u32::try_from(i).ok().map(Grant::Set))
            .chain(
                (0..org.access.ps_groups.len())
                    .filter_map(|g| u32::try_from(g).ok().map(Grant::Group)),
            )
            .collect();
        for g in pick(&mut rng, &mut grants, config.assignments_per_user) {
            let (permission_set, group) = match g {
                Grant::Set(p) => (p, None),
                Grant::Group(g) => match org.access.ps_groups.get(g as usize) {
                    Some(x) => (x.aggregate, Some(g)),
                    None => continue,
                },
            };
            let id = org.access.next_id(super::Obj::PermissionSetAssignment);
            org.access.push_assignment(Assignment {
                id,
                assignee: u,
                permission_set,
                group,
                expires: None,
                modstamp: now,
            });
        }
        let mut groups = regular_groups.clone();
        for g in pick(&mut rng, &mut groups, config.memberships_per_user) {
            let id = org.access.next_id(super::Obj::GroupMember);
            org.access.push_member(Member {
                id,
                group: g,
                member: MemberRef::User(u),
                modstamp: now,
            });
        }
    }
}

/// Up to `k` distinct items of `items`, chosen at random (a partial Fisher–Yates shuffle).
fn pick<T: Copy>(rng: &mut SplitMix, items: &mut [T], k: usize) -> Vec<T> {
    let k = k.min(items.len());
    for i in 0..k {
        let span = (items.len() - i) as u64;
        let j = i + rng.below(span) as usize;
        items.swap(i, j);
    }
    items.get(..k).map(<[T]>::to_vec).unwrap_or_default()
}

impl Org {
    /// The position in `profiles` of user `u`'s profile.
    pub fn user_profile(&self, u: u32) -> Option<u32> {
        let pid = self.users.get(u as usize)?[idx::PROFILE_ID].as_str()?;
        let c = crate::ids::canonical_15(pid)?;
        self.profiles
            .iter()
            .position(|p| p.id.starts_with(&c))
            .and_then(|i| u32::try_from(i).ok())
    }

    /// The `UserLicense` id of user `u`'s profile.
    pub fn user_license(&self, u: u32) -> Option<String> {
        let p = self.user_profile(u)?;
        self.profiles.get(p as usize)?.user_license_id.clone()
    }

    /// Makes user `u` hold exactly the permission set its profile owns, as every Salesforce user
    /// does (the reason assignment queries filter `PermissionSet.IsOwnedByProfile = false`).
    pub fn sync_profile_assignment(&mut self, u: u32, now: DateTime<Utc>) {
        let wanted = self
            .user_profile(u)
            .and_then(|p| self.access.profile_permission_set(p));
        let held: Vec<(u32, u32)> = self
            .access
            .assignments_of(u)
            .iter()
            .filter_map(|&row| {
                let a = self.access.assignment(row)?;
                let ps = self.access.permission_sets.get(a.permission_set as usize)?;
                matches!(ps.owner, Owner::Profile(_)).then_some((row, a.permission_set))
            })
            .collect();
        if held.len() == 1 && held.first().map(|h| Some(h.1)) == Some(wanted) {
            return;
        }
        if held.is_empty() && wanted.is_none() {
            return;
        }
        for (row, _) in held {
            self.access.remove_assignment(row);
        }
        if let Some(ps) = wanted {
            let id = self.access.next_id(super::Obj::PermissionSetAssignment);
            self.access.push_assignment(Assignment {
                id,
                assignee: u,
                permission_set: ps,
                group: None,
                expires: None,
                modstamp: now,
            });
        }
    }

    /// [`Org::sync_profile_assignment`] for every user (after generation or loading).
    pub fn sync_all_profile_assignments(&mut self, now: DateTime<Utc>) {
        for u in 0..self.users.len() {
            if let Ok(u) = u32::try_from(u) {
                self.sync_profile_assignment(u, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_is_distinct_and_bounded() {
        let mut rng = SplitMix::new(1);
        let mut items = [1, 2, 3, 4, 5];
        let mut got = pick(&mut rng, &mut items, 3);
        got.sort_unstable();
        got.dedup();
        assert_eq!(got.len(), 3);
        assert_eq!(pick(&mut rng, &mut items, 9).len(), 5);
    }
}
