//! The `User` fields the emulator models, their describe metadata, field values and their JSON form.

use std::ops::{Index, IndexMut};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde_json::{Map, Value};

/// Field types, as `describe` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Id,
    String,
    Email,
    Phone,
    Picklist,
    Boolean,
    DateTime,
    Reference,
}

impl FieldType {
    pub fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Picklist => "picklist",
            FieldType::Boolean => "boolean",
            FieldType::DateTime => "datetime",
            FieldType::Reference => "reference",
        }
    }

    /// Whether values of this type are text in JSON and SOQL (quoted literals).
    pub fn is_text(self) -> bool {
        !matches!(self, FieldType::Boolean | FieldType::DateTime)
    }

    /// Whether values are record ids (compared in their canonical 15-char form).
    pub fn is_id(self) -> bool {
        matches!(self, FieldType::Id | FieldType::Reference)
    }
}

/// One modelled field of `User`.
#[derive(Debug)]
pub struct FieldDef {
    pub name: &'static str,
    pub label: &'static str,
    pub ty: FieldType,
    pub length: u32,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    /// Salesforce fills it on create when absent (so it is not "required" although not nillable).
    pub defaulted_on_create: bool,
    pub unique: bool,
    /// For references: the sObject types referenced.
    pub reference_to: &'static [&'static str],
}

const fn f(
    name: &'static str,
    label: &'static str,
    ty: FieldType,
    length: u32,
    flags: (bool, bool, bool, bool),
) -> FieldDef {
    FieldDef {
        name,
        label,
        ty,
        length,
        nillable: flags.0,
        createable: flags.1,
        updateable: flags.2,
        defaulted_on_create: flags.3,
        unique: false,
        reference_to: &[],
    }
}

use FieldType as T;
// (nillable, createable, updateable, defaulted_on_create)
const SYSTEM: (bool, bool, bool, bool) = (false, false, false, true);
const REQUIRED: (bool, bool, bool, bool) = (false, true, true, false);
const OPTIONAL: (bool, bool, bool, bool) = (true, true, true, false);

/// How many fields of `User` are modelled.
pub const FIELD_COUNT: usize = 28;

/// The fields of `User`, in describe order. Positions in this table are the record layout.
pub static USER_FIELDS: [FieldDef; FIELD_COUNT] = [
    f("Id", "User ID", T::Id, 18, SYSTEM),
    FieldDef {
        unique: true,
        ..f("Username", "Username", T::String, 80, REQUIRED)
    },
    f("LastName", "Last Name", T::String, 80, REQUIRED),
    f("FirstName", "First Name", T::String, 40, OPTIONAL),
    f("Name", "Full Name", T::String, 121, SYSTEM),
    f("Email", "Email", T::Email, 128, REQUIRED),
    f("Alias", "Alias", T::String, 8, REQUIRED),
    f(
        "CommunityNickname",
        "Nickname",
        T::String,
        40,
        (false, true, true, true),
    ),
    f(
        "IsActive",
        "Active",
        T::Boolean,
        0,
        (false, true, true, true),
    ),
    FieldDef {
        reference_to: &["Profile"],
        ..f("ProfileId", "Profile ID", T::Reference, 18, REQUIRED)
    },
    f("TimeZoneSidKey", "Time Zone", T::Picklist, 40, REQUIRED),
    f("LocaleSidKey", "Locale", T::Picklist, 40, REQUIRED),
    f(
        "EmailEncodingKey",
        "Email Encoding",
        T::Picklist,
        40,
        REQUIRED,
    ),
    f("LanguageLocaleKey", "Language", T::Picklist, 40, REQUIRED),
    f("Title", "Title", T::String, 80, OPTIONAL),
    f("Department", "Department", T::String, 80, OPTIONAL),
    f("CompanyName", "Company Name", T::String, 80, OPTIONAL),
    f("Phone", "Phone", T::Phone, 40, OPTIONAL),
    f("MobilePhone", "Mobile", T::Phone, 40, OPTIONAL),
    f("EmployeeNumber", "Employee Number", T::String, 20, OPTIONAL),
    f(
        "FederationIdentifier",
        "SAML Federation ID",
        T::String,
        512,
        OPTIONAL,
    ),
    f(
        "UserType",
        "User Type",
        T::Picklist,
        40,
        (true, false, false, true),
    ),
    f("CreatedDate", "Created Date", T::DateTime, 0, SYSTEM),
    FieldDef {
        reference_to: &["User"],
        ..f("CreatedById", "Created By ID", T::Reference, 18, SYSTEM)
    },
    f(
        "LastModifiedDate",
        "Last Modified Date",
        T::DateTime,
        0,
        SYSTEM,
    ),
    FieldDef {
        reference_to: &["User"],
        ..f(
            "LastModifiedById",
            "Last Modified By ID",
            T::Reference,
            18,
            SYSTEM,
        )
    },
    f("SystemModstamp", "System Modstamp", T::DateTime, 0, SYSTEM),
    // Last, so the positions above (and `idx`) stay as they were before roles were modelled.
    FieldDef {
        reference_to: &["UserRole"],
        ..f("UserRoleId", "Role ID", T::Reference, 18, OPTIONAL)
    },
];

/// A field of `User`: a position in [`USER_FIELDS`], and so in every [`Record`]. Only ever made
/// from such a position, so reading a definition or a value through it cannot go out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field(usize);

impl Field {
    /// In a `const` (as in [`idx`]), an out-of-range position fails the build.
    const fn at(i: usize) -> Field {
        assert!(i < FIELD_COUNT);
        Field(i)
    }

    /// Every field, in describe order.
    pub fn all() -> impl Iterator<Item = Field> {
        (0..FIELD_COUNT).map(Field)
    }

    /// A field by name, case-insensitively as SOQL and the REST API match field names.
    pub fn named(name: &str) -> Option<Field> {
        USER_FIELDS
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
            .map(Field)
    }

    /// Its describe metadata.
    #[allow(clippy::indexing_slicing)] // a Field is a position in USER_FIELDS
    pub fn def(self) -> &'static FieldDef {
        &USER_FIELDS[self.0]
    }
}

/// Record layout: each field's position in [`USER_FIELDS`].
pub mod idx {
    use super::Field;

    pub const ID: Field = Field::at(0);
    pub const USERNAME: Field = Field::at(1);
    pub const LAST_NAME: Field = Field::at(2);
    pub const FIRST_NAME: Field = Field::at(3);
    pub const NAME: Field = Field::at(4);
    pub const EMAIL: Field = Field::at(5);
    pub const ALIAS: Field = Field::at(6);
    pub const COMMUNITY_NICKNAME: Field = Field::at(7);
    pub const IS_ACTIVE: Field = Field::at(8);
    pub const PROFILE_ID: Field = Field::at(9);
    pub const TIME_ZONE: Field = Field::at(10);
    pub const LOCALE: Field = Field::at(11);
    pub const EMAIL_ENCODING: Field = Field::at(12);
    pub const LANGUAGE: Field = Field::at(13);
    pub const TITLE: Field = Field::at(14);
    pub const DEPARTMENT: Field = Field::at(15);
    pub const COMPANY_NAME: Field = Field::at(16);
    pub const EMPLOYEE_NUMBER: Field = Field::at(19);
    pub const USER_TYPE: Field = Field::at(21);
    pub const CREATED_DATE: Field = Field::at(22);
    pub const CREATED_BY_ID: Field = Field::at(23);
    pub const LAST_MODIFIED_DATE: Field = Field::at(24);
    pub const LAST_MODIFIED_BY_ID: Field = Field::at(25);
    pub const SYSTEM_MODSTAMP: Field = Field::at(26);
    pub const USER_ROLE_ID: Field = Field::at(27);
}

/// A field value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Str(String),
    Bool(bool),
    DateTime(DateTime<Utc>),
}

impl Val {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// The JSON value (used by the state file and `describe`-free paths; queries serialize directly).
    pub fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Str(s) => Value::String(s.clone()),
            Val::Bool(b) => Value::Bool(*b),
            Val::DateTime(d) => Value::String(format_datetime(*d)),
        }
    }
}

/// One `User` record: a value per field of [`USER_FIELDS`], in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record(Box<[Val; FIELD_COUNT]>);

impl Default for Record {
    /// Every field null.
    fn default() -> Self {
        Record(Box::new([const { Val::Null }; FIELD_COUNT]))
    }
}

impl Record {
    /// The values, in field order.
    pub fn iter(&self) -> std::slice::Iter<'_, Val> {
        self.0.iter()
    }
}

impl Index<Field> for Record {
    type Output = Val;

    #[allow(clippy::indexing_slicing)] // a Field is below FIELD_COUNT, the array's length
    fn index(&self, field: Field) -> &Val {
        &self.0[field.0]
    }
}

impl IndexMut<Field> for Record {
    #[allow(clippy::indexing_slicing)] // a Field is below FIELD_COUNT, the array's length
    fn index_mut(&mut self, field: Field) -> &mut Val {
        &mut self.0[field.0]
    }
}

/// Salesforce's JSON date-time form, `2024-01-02T03:04:05.000+0000`.
pub fn format_datetime(d: DateTime<Utc>) -> String {
    let mut s = String::with_capacity(28);
    push_datetime(&mut s, d);
    s
}

/// Appends [`format_datetime`]'s text; written by hand because queries format hundreds of thousands.
pub fn push_datetime(out: &mut String, d: DateTime<Utc>) {
    /// The last `W` decimal digits of `n`, zero-padded.
    fn push_num<const W: usize>(out: &mut String, n: u32) {
        let mut buf = [b'0'; W];
        let mut v = n;
        for d in buf.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend(buf.map(char::from));
    }
    push_num::<4>(out, u32::try_from(d.year()).unwrap_or(0));
    out.push('-');
    push_num::<2>(out, d.month());
    out.push('-');
    push_num::<2>(out, d.day());
    out.push('T');
    push_num::<2>(out, d.hour());
    out.push(':');
    push_num::<2>(out, d.minute());
    out.push(':');
    push_num::<2>(out, d.second());
    out.push('.');
    push_num::<3>(out, d.timestamp_subsec_millis().min(999));
    out.push_str("+0000");
}

/// Parses the date-time forms Salesforce accepts in JSON bodies and query parameters:
/// RFC 3339 (`2024-01-01T00:00:00Z`, `…+01:00`, with or without fractions) and Salesforce's own
/// `+0000` offset form.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    None
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
    } else {
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
    }
    out.push('"');
}

/// Appends a value as JSON.
pub fn push_val(out: &mut String, v: &Val) {
    match v {
        Val::Null => out.push_str("null"),
        Val::Str(s) => push_json_str(out, s),
        Val::Bool(true) => out.push_str("true"),
        Val::Bool(false) => out.push_str("false"),
        Val::DateTime(d) => {
            out.push('"');
            push_datetime(out, *d);
            out.push('"');
        }
    }
}

/// Appends one record the way the REST API shows it: `attributes` first, then the chosen fields in order.
pub fn push_record(out: &mut String, version: &str, rec: &Record, fields: &[Field]) {
    push_record_start(out, version, rec);
    push_fields(out, rec, fields);
    out.push('}');
}

/// Opens a record: `{"attributes":{…}`; fields follow, each after a comma.
pub fn push_record_start(out: &mut String, version: &str, rec: &Record) {
    out.push_str("{\"attributes\":{\"type\":\"User\",\"url\":\"/services/data/");
    out.push_str(version);
    out.push_str("/sobjects/User/");
    if let Some(id) = rec[idx::ID].as_str() {
        out.push_str(id);
    }
    out.push_str("\"}");
}

/// Appends `,"Name":value` for each of `fields`.
pub fn push_fields(out: &mut String, rec: &Record, fields: &[Field]) {
    for &f in fields {
        out.push(',');
        push_json_str(out, f.def().name);
        out.push(':');
        push_val(out, &rec[f]);
    }
}

/// A record as a JSON object of all fields (state file, seed files).
pub fn record_to_json(rec: &Record) -> Value {
    let mut m = Map::new();
    for (def, v) in USER_FIELDS.iter().zip(rec.iter()) {
        m.insert(def.name.to_owned(), v.to_json());
    }
    Value::Object(m)
}

/// The `describe` answer for `User`.
pub fn describe(version: &str) -> Value {
    let fields: Vec<Value> = USER_FIELDS
        .iter()
        .map(|d| {
            let soap_type = match d.ty {
                FieldType::Id | FieldType::Reference => "tns:ID",
                FieldType::Boolean => "xsd:boolean",
                FieldType::DateTime => "xsd:dateTime",
                _ => "xsd:string",
            };
            serde_json::json!({
                "name": d.name,
                "label": d.label,
                "type": d.ty.describe_name(),
                "soapType": soap_type,
                "length": d.length,
                "nillable": d.nillable,
                "createable": d.createable,
                "updateable": d.updateable,
                "defaultedOnCreate": d.defaulted_on_create,
                "unique": d.unique,
                "externalId": false,
                "filterable": true,
                "sortable": true,
                "custom": false,
                "idLookup": matches!(d.name, "Id" | "Username" | "CommunityNickname" | "FederationIdentifier"),
                "referenceTo": d.reference_to,
                "picklistValues": [],
            })
        })
        .collect();
    let base = format!("/services/data/{version}/sobjects/User");
    serde_json::json!({
        "name": "User",
        "label": "User",
        "labelPlural": "Users",
        "keyPrefix": "005",
        "custom": false,
        "createable": true,
        "updateable": true,
        "deletable": false,
        "undeletable": false,
        "queryable": true,
        "retrieveable": true,
        "replicateable": true,
        "searchable": true,
        "layoutable": true,
        "fields": fields,
        "childRelationships": [],
        "recordTypeInfos": [],
        "urls": {
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn layout_indexes_match_the_table() {
        for (i, name) in [
            (idx::ID, "Id"),
            (idx::USERNAME, "Username"),
            (idx::NAME, "Name"),
            (idx::IS_ACTIVE, "IsActive"),
            (idx::PROFILE_ID, "ProfileId"),
            (idx::LANGUAGE, "LanguageLocaleKey"),
            (idx::USER_TYPE, "UserType"),
            (idx::CREATED_DATE, "CreatedDate"),
            (idx::LAST_MODIFIED_BY_ID, "LastModifiedById"),
            (idx::SYSTEM_MODSTAMP, "SystemModstamp"),
            (idx::USER_ROLE_ID, "UserRoleId"),
        ] {
            assert_eq!(i.def().name, name);
        }
        assert_eq!(Field::named("systemmodstamp"), Some(idx::SYSTEM_MODSTAMP));
    }

    #[test]
    fn datetimes_use_salesforce_form() {
        let d = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_datetime(d), "2024-01-02T03:04:05.000+0000");
        assert_eq!(parse_datetime("2024-01-02T03:04:05.000+0000"), Some(d));
        assert_eq!(parse_datetime("2024-01-02T04:04:05+01:00"), Some(d));
        assert_eq!(parse_datetime("2024-01-02T03:04:05Z"), Some(d));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd");
        assert_eq!(s, r#""a\"b\\c\nd""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd");
    }
}
