//! The `UserChangeEvent` Avro schema, generated from the emulator's `User` fields
//! ([`crate::schema::USER_FIELDS`]), and where each field sits in it.
//!
//! Shape (Change Data Capture guide, "Change Event Message Structure"; Pub/Sub API guide, "Event
//! Deserialization Considerations"): a record `com.sforce.eventbus.UserChangeEvent` whose first
//! field is `ChangeEventHeader`, then the record's fields, each a union with null, default null.
//! The compound `Name` is a nested record of its parts (`FirstName`, `LastName`: the parts the
//! emulator models) in the place of `Name`; the parts are not top-level fields. `Id` is not a
//! field: change events carry ids in `recordIds`. Booleans are `boolean`; date-times `long`
//! epoch milliseconds (the Pub/Sub API delivers dates "in Epoch time"); the rest `string`.

use apache_avro::Schema;
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::schema::{Field, FieldType, idx};

/// The Avro namespace of change events.
pub const NAMESPACE: &str = "com.sforce.eventbus";

/// The channel of `User` change events.
pub const TOPIC: &str = "/data/UserChangeEvent";

/// The values of `ChangeEventHeader.changeType`, in the enum's order.
pub const CHANGE_TYPES: [&str; 9] = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
];

/// The parts of the compound `Name`, in the nested record's order (Salesforce's order puts the
/// first name before the last).
pub const NAME_PARTS: [Field; 2] = [idx::FIRST_NAME, idx::LAST_NAME];

/// One top-level field after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Field(Field),
    /// The compound `Name`: a nested record of [`NAME_PARTS`].
    Name,
}

/// Where a `User` field's value goes in an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Top-level field at this schema position (the header is position 0).
    Top(usize),
    /// Child `child` of the nested record at position `parent`.
    Nested { parent: usize, child: usize },
}

#[derive(Debug, thiserror::Error)]
#[error("the generated UserChangeEvent schema does not parse")]
pub struct SchemaError(#[from] apache_avro::Error);

/// The schema, its JSON, its id, and the field layout.
#[derive(Debug)]
pub struct EventSchema {
    pub json: String,
    /// Stable for a given schema: a digest of its JSON.
    pub id: String,
    pub avro: Schema,
    /// The top-level fields after the header, in schema order.
    pub slots: Vec<Slot>,
}

impl EventSchema {
    pub fn build() -> Result<Self, SchemaError> {
        let slots = slots();
        let json = schema_json(&slots).to_string();
        let avro = Schema::parse_str(&json)?;
        // Salesforce's schema ids are 22 characters of URL-safe base64 (16 bytes).
        let digest = Sha256::digest(json.as_bytes());
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(digest.get(..16).unwrap_or_default());
        Ok(Self {
            json,
            id,
            avro,
            slots,
        })
    }

    /// Where `field` goes in an event; `None` for fields an event does not carry (`Id`, and
    /// the full name, which Salesforce computes from its parts).
    pub fn place(&self, field: Field) -> Option<Place> {
        let name_pos = self.slots.iter().position(|s| *s == Slot::Name)? + 1;
        if let Some(child) = NAME_PARTS.iter().position(|p| *p == field) {
            return Some(Place::Nested {
                parent: name_pos,
                child,
            });
        }
        self.slots
            .iter()
            .position(|s| *s == Slot::Field(field))
            .map(|i| Place::Top(i + 1))
    }
}

fn slots() -> Vec<Slot> {
    Field::all()
        .filter(|f| *f != idx::ID && !NAME_PARTS.contains(f))
        .map(|f| match f {
            idx::NAME => Slot::Name,
            f => Slot::Field(f),
        })
        .collect()
}

/// The Avro type of a field's values.
pub fn avro_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Boolean => "boolean",
        FieldType::DateTime => "long",
        FieldType::Id
        | FieldType::String
        | FieldType::Email
        | FieldType::Phone
        | FieldType::Picklist
        | FieldType::Reference => "string",
    }
}

fn optional(name: &str, ty: Value) -> Value {
    json!({ "name": name, "type": ["null", ty], "default": null })
}

fn header_json() -> Value {
    let strings = json!({ "type": "array", "items": "string" });
    json!({
        "name": "ChangeEventHeader",
        "type": {
            "type": "record",
            "name": "ChangeEventHeader",
            "namespace": NAMESPACE,
            "fields": [
                { "name": "entityName", "type": "string" },
                { "name": "recordIds", "type": strings },
                { "name": "changeType", "type": {
                    "type": "enum", "name": "ChangeType", "namespace": NAMESPACE,
                    "symbols": CHANGE_TYPES,
                } },
                { "name": "changeOrigin", "type": "string" },
                { "name": "transactionKey", "type": "string" },
                { "name": "sequenceNumber", "type": "int" },
                { "name": "commitTimestamp", "type": "long" },
                { "name": "commitNumber", "type": "long" },
                { "name": "commitUser", "type": "string" },
                { "name": "nulledFields", "type": strings },
                { "name": "diffFields", "type": strings },
                { "name": "changedFields", "type": strings },
            ],
        },
    })
}

fn schema_json(slots: &[Slot]) -> Value {
    let mut fields = vec![header_json()];
    for slot in slots {
        fields.push(match slot {
            Slot::Field(f) => optional(f.def().name, json!(avro_type(f.def().ty))),
            Slot::Name => {
                let parts: Vec<Value> = NAME_PARTS
                    .iter()
                    .map(|p| optional(p.def().name, json!(avro_type(p.def().ty))))
                    .collect();
                optional(
                    "Name",
                    json!({ "type": "record", "name": "Name", "namespace": NAMESPACE, "fields": parts }),
                )
            }
        });
    }
    json!({
        "type": "record",
        "name": "UserChangeEvent",
        "namespace": NAMESPACE,
        "fields": fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_first_then_fields_with_name_nested() {
        let s = EventSchema::build().unwrap();
        let v: Value = serde_json::from_str(&s.json).unwrap();
        assert_eq!(v["name"], "UserChangeEvent");
        assert_eq!(v["namespace"], NAMESPACE);
        let fields = v["fields"].as_array().unwrap();
        assert_eq!(fields[0]["name"], "ChangeEventHeader");
        let header: Vec<&str> = fields[0]["type"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            header,
            [
                "entityName",
                "recordIds",
                "changeType",
                "changeOrigin",
                "transactionKey",
                "sequenceNumber",
                "commitTimestamp",
                "commitNumber",
                "commitUser",
                "nulledFields",
                "diffFields",
                "changedFields"
            ]
        );
        let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(names[1], "Username");
        assert_eq!(names[2], "Name");
        assert!(!names.contains(&"Id") && !names.contains(&"FirstName"));
        assert_eq!(fields[2]["type"][1]["fields"][0]["name"], "FirstName");
        assert_eq!(fields[2]["type"][1]["fields"][1]["name"], "LastName");
        let active = fields.iter().find(|f| f["name"] == "IsActive").unwrap();
        assert_eq!(active["type"], json!(["null", "boolean"]));
        assert_eq!(active["default"], Value::Null);
        let created = fields.iter().find(|f| f["name"] == "CreatedDate").unwrap();
        assert_eq!(created["type"], json!(["null", "long"]));
    }

    #[test]
    fn places_follow_the_schema() {
        let s = EventSchema::build().unwrap();
        assert_eq!(s.place(idx::USERNAME), Some(Place::Top(1)));
        assert_eq!(
            s.place(idx::FIRST_NAME),
            Some(Place::Nested {
                parent: 2,
                child: 0
            })
        );
        assert_eq!(
            s.place(idx::LAST_NAME),
            Some(Place::Nested {
                parent: 2,
                child: 1
            })
        );
        assert_eq!(s.place(idx::ID), None);
        assert_eq!(s.place(idx::NAME), None);
        assert_eq!(s.place(idx::EMAIL), Some(Place::Top(3)));
    }

    #[test]
    fn the_id_is_stable_and_short() {
        let a = EventSchema::build().unwrap();
        let b = EventSchema::build().unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 22);
    }
}
