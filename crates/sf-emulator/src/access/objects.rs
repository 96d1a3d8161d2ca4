//! The access objects' schemas: which objects exist, their key prefixes, their fields, and how a
//! SOQL field name or relationship path (`PermissionSet.Name`) resolves to a [`Col`].

use crate::ids;
use crate::schema::FieldType;
use crate::soql::{Column, no_such_column, unknown_relationship};

/// The objects of this module (`User` lives in `schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Obj {
    UserLicense,
    Profile,
    UserRole,
    PermissionSet,
    PermissionSetGroup,
    PermissionSetAssignment,
    Group,
    GroupMember,
}

/// One field: its SOQL name and type, the relationship it opens (name, target), and whether the
/// API may write it.
#[derive(Debug)]
pub struct AField {
    pub name: &'static str,
    pub ty: FieldType,
    pub rel: Option<(&'static str, Obj)>,
    pub createable: bool,
    pub updateable: bool,
}

const fn fd(name: &'static str, ty: FieldType) -> AField {
    AField {
        name,
        ty,
        rel: None,
        createable: false,
        updateable: false,
    }
}

const fn refd(name: &'static str, rel: &'static str, to: Obj) -> AField {
    AField {
        rel: Some((rel, to)),
        ..fd(name, FieldType::Reference)
    }
}

const fn writable(f: AField, updateable: bool) -> AField {
    AField {
        createable: true,
        updateable,
        ..f
    }
}

use FieldType as T;

/// Field positions, per object (the tables below are in this order). Fields always null here
/// (`RollupDescription`, `NamespacePrefix`, `Email`) need none.
pub mod col {
    pub const ID: u8 = 0;
    pub mod license {
        pub const NAME: u8 = 1;
        pub const KEY: u8 = 2;
        pub const STATUS: u8 = 3;
    }
    pub mod profile {
        pub const NAME: u8 = 1;
        pub const USER_LICENSE_ID: u8 = 2;
        pub const USER_TYPE: u8 = 3;
    }
    pub mod role {
        pub const NAME: u8 = 1;
        pub const DEVELOPER_NAME: u8 = 2;
        pub const PARENT_ROLE_ID: u8 = 3;
    }
    pub mod ps {
        pub const NAME: u8 = 1;
        pub const LABEL: u8 = 2;
        pub const DESCRIPTION: u8 = 3;
        pub const IS_OWNED_BY_PROFILE: u8 = 4;
        pub const IS_CUSTOM: u8 = 5;
        pub const LICENSE_ID: u8 = 6;
        pub const PROFILE_ID: u8 = 7;
        pub const PERMISSION_SET_GROUP_ID: u8 = 8;
        pub const TYPE: u8 = 9;
    }
    pub mod psg {
        pub const DEVELOPER_NAME: u8 = 1;
        pub const MASTER_LABEL: u8 = 2;
        pub const DESCRIPTION: u8 = 3;
        pub const STATUS: u8 = 4;
    }
    pub mod psa {
        pub const ASSIGNEE_ID: u8 = 1;
        pub const PERMISSION_SET_ID: u8 = 2;
        pub const PERMISSION_SET_GROUP_ID: u8 = 3;
        pub const IS_ACTIVE: u8 = 4;
        pub const EXPIRATION_DATE: u8 = 5;
        pub const SYSTEM_MODSTAMP: u8 = 6;
    }
    pub mod group {
        pub const NAME: u8 = 1;
        pub const DEVELOPER_NAME: u8 = 2;
        pub const TYPE: u8 = 3;
        pub const DOES_INCLUDE_BOSSES: u8 = 4;
    }
    pub mod member {
        pub const GROUP_ID: u8 = 1;
        pub const USER_OR_GROUP_ID: u8 = 2;
        pub const SYSTEM_MODSTAMP: u8 = 3;
    }
}

static LICENSE: [AField; 4] = [
    fd("Id", T::Id),
    fd("Name", T::String),
    fd("LicenseDefinitionKey", T::String),
    fd("Status", T::Picklist),
];
static PROFILE: [AField; 4] = [
    fd("Id", T::Id),
    fd("Name", T::String),
    refd("UserLicenseId", "UserLicense", Obj::UserLicense),
    fd("UserType", T::Picklist),
];
static ROLE: [AField; 5] = [
    fd("Id", T::Id),
    fd("Name", T::String),
    fd("DeveloperName", T::String),
    refd("ParentRoleId", "ParentRole", Obj::UserRole),
    fd("RollupDescription", T::String),
];
// `LicenseId` is polymorphic (UserLicense or PermissionSetLicense): no relationship path here.
static PERMISSION_SET: [AField; 11] = [
    fd("Id", T::Id),
    fd("Name", T::String),
    fd("Label", T::String),
    fd("Description", T::String),
    fd("IsOwnedByProfile", T::Boolean),
    fd("IsCustom", T::Boolean),
    fd("LicenseId", T::Reference),
    refd("ProfileId", "Profile", Obj::Profile),
    refd(
        "PermissionSetGroupId",
        "PermissionSetGroup",
        Obj::PermissionSetGroup,
    ),
    fd("Type", T::Picklist),
    fd("NamespacePrefix", T::String),
];
static PERMISSION_SET_GROUP: [AField; 5] = [
    fd("Id", T::Id),
    fd("DeveloperName", T::String),
    fd("MasterLabel", T::String),
    fd("Description", T::String),
    fd("Status", T::Picklist),
];
// `Assignee` (a User) is not a relationship path here: only the access objects are joinable.
static PERMISSION_SET_ASSIGNMENT: [AField; 7] = [
    fd("Id", T::Id),
    writable(fd("AssigneeId", T::Reference), false),
    writable(
        refd("PermissionSetId", "PermissionSet", Obj::PermissionSet),
        false,
    ),
    writable(
        refd(
            "PermissionSetGroupId",
            "PermissionSetGroup",
            Obj::PermissionSetGroup,
        ),
        false,
    ),
    fd("IsActive", T::Boolean),
    writable(fd("ExpirationDate", T::DateTime), true),
    fd("SystemModstamp", T::DateTime),
];
static GROUP: [AField; 6] = [
    fd("Id", T::Id),
    fd("Name", T::String),
    fd("DeveloperName", T::String),
    fd("Type", T::Picklist),
    fd("DoesIncludeBosses", T::Boolean),
    fd("Email", T::Email),
];
// `UserOrGroupId` is polymorphic: no relationship path.
static GROUP_MEMBER: [AField; 4] = [
    fd("Id", T::Id),
    writable(refd("GroupId", "Group", Obj::Group), false),
    writable(fd("UserOrGroupId", T::Reference), false),
    fd("SystemModstamp", T::DateTime),
];

impl Obj {
    pub const ALL: [Obj; 8] = [
        Obj::UserLicense,
        Obj::Profile,
        Obj::UserRole,
        Obj::PermissionSet,
        Obj::PermissionSetGroup,
        Obj::PermissionSetAssignment,
        Obj::Group,
        Obj::GroupMember,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Obj::UserLicense => "UserLicense",
            Obj::Profile => "Profile",
            Obj::UserRole => "UserRole",
            Obj::PermissionSet => "PermissionSet",
            Obj::PermissionSetGroup => "PermissionSetGroup",
            Obj::PermissionSetAssignment => "PermissionSetAssignment",
            Obj::Group => "Group",
            Obj::GroupMember => "GroupMember",
        }
    }

    /// By sObject name, case-insensitively as the API matches them.
    pub fn named(name: &str) -> Option<Obj> {
        Obj::ALL
            .into_iter()
            .find(|o| o.name().eq_ignore_ascii_case(name))
    }

    pub fn prefix(self) -> &'static str {
        match self {
            Obj::UserLicense => ids::USER_LICENSE_PREFIX,
            Obj::Profile => ids::PROFILE_PREFIX,
            Obj::UserRole => ids::USER_ROLE_PREFIX,
            Obj::PermissionSet => ids::PERMISSION_SET_PREFIX,
            Obj::PermissionSetGroup => ids::PERMISSION_SET_GROUP_PREFIX,
            Obj::PermissionSetAssignment => ids::PERMISSION_SET_ASSIGNMENT_PREFIX,
            Obj::Group => ids::GROUP_PREFIX,
            Obj::GroupMember => ids::GROUP_MEMBER_PREFIX,
        }
    }

    /// The object a canonical (15-char, case-restored) id belongs to, by key prefix.
    pub fn of_canonical(id15: &str) -> Option<Obj> {
        Obj::ALL.into_iter().find(|o| id15.starts_with(o.prefix()))
    }

    pub fn fields(self) -> &'static [AField] {
        match self {
            Obj::UserLicense => &LICENSE,
            Obj::Profile => &PROFILE,
            Obj::UserRole => &ROLE,
            Obj::PermissionSet => &PERMISSION_SET,
            Obj::PermissionSetGroup => &PERMISSION_SET_GROUP,
            Obj::PermissionSetAssignment => &PERMISSION_SET_ASSIGNMENT,
            Obj::Group => &GROUP,
            Obj::GroupMember => &GROUP_MEMBER,
        }
    }

    pub fn field(self, i: u8) -> Option<&'static AField> {
        self.fields().get(usize::from(i))
    }

    /// A field's position, by name (case-insensitive).
    pub fn field_named(self, name: &str) -> Option<u8> {
        self.fields()
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
            .and_then(|i| u8::try_from(i).ok())
    }

    /// Whether the API may create and delete records of it here (the catalog is read-only).
    pub fn writable(self) -> bool {
        matches!(self, Obj::PermissionSetAssignment | Obj::GroupMember)
    }
}

/// A column of a query over `base`: one of its own fields, or a field of the record one of its
/// reference fields points to (`rel`, that field's position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Col {
    pub base: Obj,
    pub rel: Option<u8>,
    pub field: u8,
}

impl Col {
    pub const fn own(base: Obj, field: u8) -> Col {
        Col {
            base,
            rel: None,
            field,
        }
    }

    /// The object `field` belongs to.
    pub fn target(self) -> Obj {
        self.rel
            .and_then(|r| self.base.field(r))
            .and_then(|f| f.rel)
            .map_or(self.base, |(_, to)| to)
    }

    pub fn def(self) -> Option<&'static AField> {
        self.target().field(self.field)
    }

    /// The relationship's name (`PermissionSet` for `PermissionSetId`).
    pub fn rel_name(self) -> Option<&'static str> {
        self.rel
            .and_then(|r| self.base.field(r))
            .and_then(|f| f.rel)
            .map(|(name, _)| name)
    }

    /// Resolves a SOQL field name or one-level relationship path over `base`.
    pub fn resolve(base: Obj, name: &str) -> Result<Col, String> {
        let Some((rel, field)) = name.split_once('.') else {
            return base
                .field_named(name)
                .map(|f| Col::own(base, f))
                .ok_or_else(|| no_such_column(name, base.name()));
        };
        let found = base
            .fields()
            .iter()
            .enumerate()
            .find_map(|(i, f)| match f.rel {
                Some((r, to)) if r.eq_ignore_ascii_case(rel) => Some((u8::try_from(i).ok()?, to)),
                _ => None,
            });
        let Some((rel_field, to)) = found else {
            return Err(unknown_relationship(rel));
        };
        if field.contains('.') {
            // Deeper paths are not modelled.
            return Err(unknown_relationship(
                field.split('.').next().unwrap_or(field),
            ));
        }
        to.field_named(field)
            .map(|f| Col {
                base,
                rel: Some(rel_field),
                field: f,
            })
            .ok_or_else(|| no_such_column(field, to.name()))
    }
}

impl Column for Col {
    fn ty(self) -> FieldType {
        self.def().map_or(FieldType::String, |d| d.ty)
    }

    fn display(self) -> String {
        let name = self.def().map_or("", |d| d.name);
        match self.rel_name() {
            Some(rel) => format!("{rel}.{name}"),
            None => name.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_case_insensitively() {
        let c = Col::resolve(
            Obj::PermissionSetAssignment,
            "permissionset.isownedbyprofile",
        )
        .unwrap();
        assert_eq!(c.target(), Obj::PermissionSet);
        assert_eq!(c.display(), "PermissionSet.IsOwnedByProfile");
        assert_eq!(c.ty(), FieldType::Boolean);
        let c = Col::resolve(Obj::GroupMember, "Group.Type").unwrap();
        assert_eq!(c.target(), Obj::Group);
        assert!(
            Col::resolve(Obj::PermissionSetAssignment, "Assignee.Name")
                .unwrap_err()
                .contains("Didn't understand relationship 'Assignee'")
        );
        assert!(
            Col::resolve(Obj::PermissionSetAssignment, "PermissionSet.Nope")
                .unwrap_err()
                .contains("No such column 'Nope' on entity 'PermissionSet'")
        );
    }

    #[test]
    fn prefixes_are_distinct_and_canonical_ids_map_back() {
        for o in Obj::ALL {
            let id = ids::make_id(o.prefix(), 7);
            let c = ids::canonical_15(&id).unwrap();
            assert_eq!(Obj::of_canonical(&c), Some(o));
        }
    }
}
