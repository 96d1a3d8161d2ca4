//! The org: users, profiles, the access objects ([`crate::access`]) and the id sequence, with
//! Salesforce's save rules for `User`.
//!
//! All of it sits behind one `RwLock` in [`super::Shared`]; every method here is synchronous and
//! short, so no lock is ever held across an `.await`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::access::Access;
use super::errors::DmlError;
use super::ids;
use super::schema::{Field, FieldType, Record, USER_FIELDS, Val, idx};
use super::soql::{IdRange, is_satisfiable};

/// A profile (`00e…`): its id, name and `UserLicenseId` (enough for `ProfileId` checks and the
/// license rule of permission set assignments).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    /// Absent in state files written before licenses were modelled; filled in at load.
    #[serde(default)]
    pub user_license_id: Option<String>,
}

/// The names of the profiles every emulated org has.
pub const PROFILE_NAMES: [&str; 5] = [
    "System Administrator",
    "Standard User",
    "Chatter Free User",
    "Read Only",
    "Minimum Access - Salesforce",
];

/// What a save is: it decides which fields may be written and whether required fields must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveKind {
    Create,
    Update,
}

/// The field values a request body asks to write, already converted to field types.
pub type Changes = Vec<(Field, Val)>;

#[derive(Debug)]
pub struct Org {
    /// The 18-char organization id (`00D…`).
    pub org_id: String,
    /// Every user; users are never deleted, so an index stays valid for the life of the org
    /// (only an all-or-none rollback removes the newest ones, under the same write lock).
    pub users: Vec<Record>,
    pub profiles: Vec<Profile>,
    /// Licenses, roles, permission sets, groups, assignments and memberships.
    pub access: Access,
    /// Canonical 15-char id → index in `users`; ordered, so a range of ids (PK chunking's
    /// `Id >= … AND Id < …`) is read without a scan.
    by_id: BTreeMap<String, usize>,
    /// Lower-cased username → index: usernames are unique case-insensitively.
    by_username: HashMap<String, usize>,
    /// Next id sequence number (shared by all key prefixes, as ids only need to be unique).
    pub next_seq: u64,
}

impl Org {
    /// An org with its profiles and the default access catalog, and no users.
    pub fn new(org_seq: u64) -> Self {
        let mut org = Self {
            org_id: ids::make_id(ids::ORG_PREFIX, org_seq),
            users: Vec::new(),
            profiles: Vec::new(),
            access: Access::default(),
            by_id: BTreeMap::new(),
            by_username: HashMap::new(),
            next_seq: 1_000_000,
        };
        for name in PROFILE_NAMES {
            let id = org.next_id(ids::PROFILE_PREFIX);
            org.profiles.push(Profile {
                id,
                name: name.to_owned(),
                user_license_id: None,
            });
        }
        org.access = super::access::catalog::build_default(&mut org.profiles);
        org
    }

    /// Rebuilds an org from persisted parts (the state file), re-indexing the users; the caller
    /// then sets `access`.
    pub fn from_parts(
        org_id: String,
        profiles: Vec<Profile>,
        users: Vec<Record>,
        next_seq: u64,
    ) -> Self {
        let mut org = Self {
            org_id,
            users: Vec::new(),
            profiles,
            access: Access::default(),
            by_id: BTreeMap::new(),
            by_username: HashMap::new(),
            next_seq,
        };
        for rec in users {
            org.push_user(rec);
        }
        org
    }

    pub fn next_id(&mut self, prefix: &str) -> String {
        let id = ids::make_id(prefix, self.next_seq);
        self.next_seq += 1;
        id
    }

    pub fn profile_id(&self, name: &str) -> Option<&str> {
        self.profiles
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id.as_str())
    }

    /// The user the OAuth tokens act as (the "integration user"): the first user of the org.
    pub fn integration_user_id(&self) -> String {
        self.users
            .first()
            .and_then(|r| r[idx::ID].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// The user the emulator's admin routes act as ("an admin editing in Salesforce"): the first
    /// active System Administrator other than the integration user, else the second user (the
    /// integration user only in an org of one).
    pub fn admin_user_id(&self) -> String {
        let admin_profile = self.profile_id("System Administrator").map(str::to_owned);
        let is_admin = |r: &&Record| {
            r[idx::IS_ACTIVE] == Val::Bool(true)
                && r[idx::PROFILE_ID].as_str() == admin_profile.as_deref()
                && r[idx::USER_TYPE].as_str() == Some("Standard")
        };
        self.users
            .iter()
            .skip(1)
            .find(is_admin)
            .or_else(|| self.users.get(1))
            .or_else(|| self.users.first())
            .and_then(|r| r[idx::ID].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// Index of a user by 15- or 18-char id (any case for 18-char ids).
    pub fn find(&self, id: &str) -> Option<usize> {
        let key = ids::canonical_15(id)?;
        self.by_id.get(&key).copied()
    }

    /// Indexes of the users whose ids fall in `range` (canonical 15-char bounds), in id order.
    pub fn users_in_id_range(&self, range: IdRange<'_>) -> impl Iterator<Item = usize> + '_ {
        let live = is_satisfiable(&range).then(|| self.by_id.range::<str, _>(range));
        live.into_iter().flatten().map(|(_, &i)| i)
    }

    pub fn find_username(&self, username: &str) -> Option<usize> {
        self.by_username.get(&username.to_lowercase()).copied()
    }

    /// Appends a complete record and indexes it (generation, seed and state loading).
    pub fn push_user(&mut self, rec: Record) -> usize {
        let i = self.users.len();
        if let Some(key) = rec[idx::ID].as_str().and_then(ids::canonical_15) {
            self.by_id.insert(key, i);
        }
        if let Some(u) = rec[idx::USERNAME].as_str() {
            self.by_username.insert(u.to_lowercase(), i);
        }
        self.users.push(rec);
        i
    }

    /// Converts a JSON body into field changes, rejecting unknown and read-only fields the way
    /// Salesforce does. `attributes` is metadata, not a field, and is skipped.
    pub fn parse_changes(body: &Map<String, Value>, kind: SaveKind) -> Result<Changes, DmlError> {
        let mut changes = Vec::with_capacity(body.len());
        for (key, value) in body {
            if key == "attributes" {
                continue;
            }
            let Some(field) = Field::named(key) else {
                return Err(DmlError::new(
                    "INVALID_FIELD",
                    format!("No such column '{key}' on sobject of type User"),
                    Vec::new(),
                ));
            };
            let def = field.def();
            check_writable(kind, def.createable, def.updateable, def.name)?;
            let val = match (value, def.ty) {
                (Value::Null, _) => Val::Null,
                (Value::Bool(b), FieldType::Boolean) => Val::Bool(*b),
                (Value::String(s), FieldType::Boolean) if s.eq_ignore_ascii_case("true") => {
                    Val::Bool(true)
                }
                (Value::String(s), FieldType::Boolean) if s.eq_ignore_ascii_case("false") => {
                    Val::Bool(false)
                }
                // Salesforce coerces JSON scalars into text fields.
                (Value::String(s), t) if t.is_text() => Val::Str(s.clone()),
                (Value::Number(n), t) if t.is_text() => Val::Str(n.to_string()),
                (Value::Bool(b), t) if t.is_text() => Val::Str(b.to_string()),
                (other, t) => {
                    // The message imitates Salesforce's Jackson-based parser.
                    let token = match other {
                        Value::String(_) => "VALUE_STRING",
                        Value::Number(_) => "VALUE_NUMBER_INT",
                        Value::Bool(true) => "VALUE_TRUE",
                        Value::Bool(false) => "VALUE_FALSE",
                        Value::Array(_) => "START_ARRAY",
                        Value::Object(_) => "START_OBJECT",
                        Value::Null => "VALUE_NULL",
                    };
                    let ty = match t {
                        FieldType::Boolean => "boolean",
                        FieldType::DateTime => "datetime",
                        _ => "String",
                    };
                    return Err(DmlError::new(
                        "JSON_PARSER_ERROR",
                        format!(
                            "Cannot deserialize instance of {ty} from {token} value {other} or request may be missing a required field"
                        ),
                        Vec::new(),
                    ));
                }
            };
            changes.push((field, val));
        }
        Ok(changes)
    }

    /// Checks a complete record against the save rules. `self_index` is the record's own index on
    /// update (its own username is not a duplicate).
    fn validate(&self, rec: &Record, self_index: Option<usize>) -> Result<(), DmlError> {
        let missing: Vec<String> = USER_FIELDS
            .iter()
            .zip(rec.iter())
            .filter(|(d, v)| {
                let required = d.createable && !d.nillable && !d.defaulted_on_create;
                required && (v.is_null() || matches!(v, Val::Str(s) if s.is_empty()))
            })
            .map(|(d, _)| d.name.to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(DmlError::new(
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
                missing,
            ));
        }
        for (d, v) in USER_FIELDS.iter().zip(rec.iter()) {
            if let Val::Str(s) = v
                && d.length > 0
                && s.chars().count() > d.length as usize
            {
                return Err(DmlError::new(
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {s} (max length={})",
                        d.label, d.length
                    ),
                    vec![d.name.to_owned()],
                ));
            }
        }
        if let Some(email) = rec[idx::EMAIL].as_str()
            && !looks_like_email(email)
        {
            return Err(DmlError::new(
                "INVALID_EMAIL_ADDRESS",
                format!("Email: invalid email address: {email}"),
                vec!["Email".to_owned()],
            ));
        }
        let username = rec[idx::USERNAME].as_str().unwrap_or_default();
        // Salesforce's username rule is looser than its email rule: an `@` with text on both sides.
        // The message is Salesforce's (as quoted by Okta's provisioning); the code is our best match.
        if !username
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        {
            return Err(DmlError::new(
                "INVALID_EMAIL_ADDRESS",
                "Username must be in the form of an email address (for example, john@acme.com)",
                vec!["Username".to_owned()],
            ));
        }
        if let Some(pid) = rec[idx::PROFILE_ID].as_str() {
            match ids::canonical_15(pid) {
                None => {
                    return Err(DmlError::new(
                        "MALFORMED_ID",
                        format!("Profile ID: id value of incorrect type: {pid}"),
                        vec!["ProfileId".to_owned()],
                    ));
                }
                Some(c) if !self.profiles.iter().any(|p| p.id.starts_with(&c)) => {
                    return Err(DmlError::new(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id",
                        vec!["ProfileId".to_owned()],
                    ));
                }
                Some(_) => {}
            }
        }
        if let Some(existing) = self.find_username(username)
            && Some(existing) != self_index
        {
            return Err(duplicate_username());
        }
        Ok(())
    }

    /// Creates a user (validated as Salesforce does), the newest of the org, and returns its id.
    pub fn create(
        &mut self,
        changes: Changes,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<String, DmlError> {
        let mut rec = Record::default();
        for (f, v) in changes {
            rec[f] = v;
        }
        // Fields Salesforce defaults on create.
        if rec[idx::IS_ACTIVE].is_null() {
            rec[idx::IS_ACTIVE] = Val::Bool(true);
        }
        if rec[idx::COMMUNITY_NICKNAME].is_null()
            && let Some(u) = rec[idx::USERNAME].as_str()
        {
            let local = u.split('@').next().unwrap_or(u);
            rec[idx::COMMUNITY_NICKNAME] = Val::Str(local.chars().take(40).collect());
        }
        rec[idx::USER_TYPE] = Val::Str("Standard".to_owned());
        self.normalize_role(&mut rec)?;
        self.validate(&rec, None)?;
        // Profile ids may arrive in 15-char or mis-cased form: store the canonical 18-char id.
        normalize_profile(&mut rec, &self.profiles);
        set_name(&mut rec);
        let id = self.next_id(ids::USER_PREFIX);
        rec[idx::ID] = Val::Str(id.clone());
        stamp(&mut rec, now, actor, true);
        let i = self.push_user(rec);
        if let Ok(i) = u32::try_from(i) {
            self.sync_profile_assignment(i, now);
        }
        Ok(id)
    }

    /// Updates user `i`; returns the previous record so a caller can roll back.
    pub fn update(
        &mut self,
        i: usize,
        changes: Changes,
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<Record, DmlError> {
        let Some(old) = self.users.get(i) else {
            return Err(entity_is_deleted());
        };
        let mut rec = old.clone();
        for (f, v) in changes {
            rec[f] = v;
        }
        self.normalize_role(&mut rec)?;
        self.validate(&rec, Some(i))?;
        normalize_profile(&mut rec, &self.profiles);
        set_name(&mut rec);
        stamp(&mut rec, now, actor, false);
        self.replace(i, rec).ok_or_else(entity_is_deleted)
    }

    /// Puts `rec` at index `i` (update or rollback), keeping the username index right; returns
    /// the record it replaced (`None`, and no change, if there is no user `i`).
    pub fn replace(&mut self, i: usize, rec: Record) -> Option<Record> {
        let slot = self.users.get_mut(i)?;
        let old_name = slot[idx::USERNAME].as_str().map(str::to_lowercase);
        let new_name = rec[idx::USERNAME].as_str().map(str::to_lowercase);
        let profile_changed = slot[idx::PROFILE_ID] != rec[idx::PROFILE_ID];
        let old = std::mem::replace(slot, rec);
        if profile_changed && let Ok(u) = u32::try_from(i) {
            // The profile's permission set follows the profile (also on rollback).
            self.sync_profile_assignment(u, chrono::Utc::now());
        }
        if old_name != new_name {
            if let Some(o) = old_name {
                self.by_username.remove(&o);
            }
            if let Some(n) = new_name {
                self.by_username.insert(n, i);
            }
        }
        Some(old)
    }

    /// Removes and returns the newest user (rolling back a create of an all-or-none batch,
    /// newest first).
    pub fn pop_user(&mut self) -> Option<Record> {
        let rec = self.users.pop()?;
        if let Ok(u) = u32::try_from(self.users.len()) {
            self.access.forget_user(u);
        }
        if let Some(key) = rec[idx::ID].as_str().and_then(ids::canonical_15) {
            self.by_id.remove(&key);
        }
        if let Some(u) = rec[idx::USERNAME].as_str() {
            self.by_username.remove(&u.to_lowercase());
        }
        Some(rec)
    }
}

impl Org {
    /// Checks `UserRoleId` (a role of the org, or null) and stores its 18-char form.
    fn normalize_role(&self, rec: &mut Record) -> Result<(), DmlError> {
        let Some(role) = rec[idx::USER_ROLE_ID].as_str() else {
            return Ok(());
        };
        let checked = if role.is_empty() {
            Val::Null
        } else {
            Val::Str(self.check_role(role)?)
        };
        rec[idx::USER_ROLE_ID] = checked;
        Ok(())
    }
}

fn entity_is_deleted() -> DmlError {
    DmlError::new("ENTITY_IS_DELETED", "entity is deleted", Vec::new())
}

/// Salesforce's refusal of a field that `kind` may not set.
pub(crate) fn check_writable(
    kind: SaveKind,
    createable: bool,
    updateable: bool,
    name: &str,
) -> Result<(), DmlError> {
    let writable = match kind {
        SaveKind::Create => createable,
        SaveKind::Update => updateable,
    };
    match writable {
        true => Ok(()),
        false => Err(DmlError::new(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {name}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
            ),
            vec![name.to_owned()],
        )),
    }
}

pub fn duplicate_username() -> DmlError {
    DmlError::new(
        "DUPLICATE_USERNAME",
        "Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a different username (it doesn't need to match the user's email address). ",
        vec!["Username".to_owned()],
    )
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(char::is_whitespace)
}

fn normalize_profile(rec: &mut Record, profiles: &[Profile]) {
    if let Some(c) = rec[idx::PROFILE_ID].as_str().and_then(ids::canonical_15)
        && let Some(p) = profiles.iter().find(|p| p.id.starts_with(&c))
    {
        rec[idx::PROFILE_ID] = Val::Str(p.id.clone());
    }
}

/// `Name` is computed from first and last name.
pub fn set_name(rec: &mut Record) {
    let name = match (rec[idx::FIRST_NAME].as_str(), rec[idx::LAST_NAME].as_str()) {
        (Some(f), Some(l)) if !f.is_empty() => format!("{f} {l}"),
        (_, Some(l)) => l.to_owned(),
        (Some(f), None) => f.to_owned(),
        (None, None) => String::new(),
    };
    rec[idx::NAME] = Val::Str(name);
}

/// Audit fields: every write moves `LastModifiedDate` and `SystemModstamp`.
pub fn stamp(rec: &mut Record, now: DateTime<Utc>, actor: &str, created: bool) {
    if created {
        rec[idx::CREATED_DATE] = Val::DateTime(now);
        rec[idx::CREATED_BY_ID] = Val::Str(actor.to_owned());
    }
    rec[idx::LAST_MODIFIED_DATE] = Val::DateTime(now);
    rec[idx::LAST_MODIFIED_BY_ID] = Val::Str(actor.to_owned());
    rec[idx::SYSTEM_MODSTAMP] = Val::DateTime(now);
}
