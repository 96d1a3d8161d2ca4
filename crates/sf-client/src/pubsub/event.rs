//! A change event, decoded: its header, the record fields it carries (named as REST names them,
//! compound parts such as `Name.FirstName` flattened to `FirstName`), and its bitmap fields
//! named. Decoding follows the schema the event names (`GetSchema`), never a schema of our own.

use std::collections::{BTreeSet, HashMap};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{Name, RecordSchema};
use apache_avro::types::Value as Avro;
use chrono::{DateTime, NaiveDate, SecondsFormat};
use serde_json::{Number, Value};

use super::bitmap::FieldPositions;
use super::errors::PubSubError;
use crate::client::Record;

/// The header's name in a change event schema.
const HEADER: &str = "ChangeEventHeader";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    /// A change Salesforce could not describe (`GAP_CREATE`, `GAP_UPDATE`, ...): read the records.
    Gap(String),
    /// Too many changes in one transaction to describe: what changed must be found otherwise.
    GapOverflow,
    Other(String),
}

impl ChangeType {
    fn parse(s: &str) -> ChangeType {
        match s {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            gap if gap.starts_with("GAP_") => ChangeType::Gap(gap.to_owned()),
            other => ChangeType::Other(other.to_owned()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEventHeader {
    pub entity_name: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    pub change_origin: String,
    pub transaction_key: String,
    pub sequence_number: i64,
    /// Milliseconds since the epoch.
    pub commit_timestamp: i64,
    pub commit_number: i64,
    /// The id of the user whose transaction made the change.
    pub commit_user: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub replay_id: Vec<u8>,
    pub header: ChangeEventHeader,
    /// The fields the event carries a value for (nulls left out: see `nulled`).
    pub fields: Record,
    pub changed: BTreeSet<String>,
    pub nulled: BTreeSet<String>,
    pub diff: BTreeSet<String>,
}

impl ChangeEvent {
    /// Whether the event says what `field` now holds: a create carries every field (an absent
    /// one is null), an update only those it changed or nulled.
    pub fn carries(&self, field: &str) -> bool {
        match self.header.change_type {
            ChangeType::Create => true,
            ChangeType::Update => self.fields.contains_key(field) || self.nulled.contains(field),
            _ => false,
        }
    }
}

/// A topic's schema, parsed once and used for every event that names it.
#[derive(Debug, Clone)]
pub struct EventSchema {
    pub id: String,
    schema: Schema,
    positions: FieldPositions,
}

impl EventSchema {
    pub fn parse(id: &str, json: &str) -> Result<EventSchema, PubSubError> {
        let bad = |reason: String| PubSubError::Schema {
            schema_id: id.to_owned(),
            reason,
        };
        let schema = Schema::parse_str(json).map_err(|e| bad(e.to_string()))?;
        let Schema::Record(record) = &schema else {
            return Err(bad("not a record schema".into()));
        };
        if record.fields.first().map(|f| f.name.as_str()) != Some(HEADER) {
            return Err(bad(format!("its first field is not {HEADER}")));
        }
        let positions = positions(record);
        Ok(EventSchema {
            id: id.to_owned(),
            schema,
            positions,
        })
    }

    /// Decodes one event's Avro payload.
    pub fn decode(&self, payload: &[u8], replay_id: Vec<u8>) -> Result<ChangeEvent, PubSubError> {
        self.read(&self.reader()?, payload, replay_id)
    }

    /// Decodes events written with this schema, `(payload, replay id)` each; the reader (a walk
    /// of the whole schema) is built once for all of them.
    pub fn decode_all<'p>(
        &self,
        events: impl IntoIterator<Item = (&'p [u8], Vec<u8>)>,
    ) -> Result<Vec<ChangeEvent>, PubSubError> {
        let reader = self.reader()?;
        events
            .into_iter()
            .map(|(payload, replay_id)| self.read(&reader, payload, replay_id))
            .collect()
    }

    fn bad(&self, reason: String) -> PubSubError {
        PubSubError::Decode {
            schema_id: self.id.clone(),
            reason,
        }
    }

    fn reader(&self) -> Result<GenericDatumReader<'_>, PubSubError> {
        GenericDatumReader::builder(&self.schema)
            .build()
            .map_err(|e| self.bad(e.to_string()))
    }

    fn read(
        &self,
        reader: &GenericDatumReader<'_>,
        payload: &[u8],
        replay_id: Vec<u8>,
    ) -> Result<ChangeEvent, PubSubError> {
        let bad = |reason: String| self.bad(reason);
        let mut input = payload;
        let value = reader
            .read_value(&mut input)
            .map_err(|e| bad(e.to_string()))?;
        let Avro::Record(fields) = value else {
            return Err(bad("the payload is not a record".into()));
        };
        let mut header = None;
        let mut record = Record::new();
        for (name, value) in fields {
            match (name.as_str(), unwrap_union(value)) {
                (HEADER, Avro::Record(h)) => header = Some(h),
                (_, Avro::Null) => {}
                // A compound field's parts are fields of their own in REST.
                (_, Avro::Record(parts)) => {
                    for (part, v) in parts {
                        if let Some(v) = json(unwrap_union(v)) {
                            record.insert(part, v);
                        }
                    }
                }
                (_, v) => {
                    if let Some(v) = json(v) {
                        record.insert(name, v);
                    }
                }
            }
        }
        let header = header.ok_or_else(|| bad(format!("no {HEADER}")))?;
        let mut h: HashMap<String, Avro> = header
            .into_iter()
            .map(|(k, v)| (k, unwrap_union(v)))
            .collect();
        let mut text = |k: &str| match h.remove(k) {
            Some(Avro::String(s) | Avro::Enum(_, s)) => s,
            _ => String::new(),
        };
        let (entity_name, change_type) = (text("entityName"), text("changeType"));
        let (change_origin, transaction_key) = (text("changeOrigin"), text("transactionKey"));
        let commit_user = text("commitUser");
        let number = |k: &str| match h.get(k) {
            Some(Avro::Int(n)) => i64::from(*n),
            Some(Avro::Long(n) | Avro::TimestampMillis(n)) => *n,
            _ => 0,
        };
        let header = ChangeEventHeader {
            entity_name,
            change_type: ChangeType::parse(&change_type),
            change_origin,
            transaction_key,
            commit_user,
            sequence_number: number("sequenceNumber"),
            commit_timestamp: number("commitTimestamp"),
            commit_number: number("commitNumber"),
            record_ids: strings(h.remove("recordIds")),
        };
        let names = |k: &str| self.positions.names(&strings(h.get(k).cloned()));
        Ok(ChangeEvent {
            replay_id,
            changed: names("changedFields"),
            nulled: names("nulledFields"),
            diff: names("diffFields"),
            header,
            fields: record,
        })
    }
}

/// The schema's top-level field names, with the parts of each compound (record) field.
fn positions(record: &RecordSchema) -> FieldPositions {
    let mut named: HashMap<Name, &RecordSchema> = HashMap::new();
    named.insert(record.name.clone(), record);
    for f in &record.fields {
        collect_records(&f.schema, &mut named);
    }
    let fields = record
        .fields
        .iter()
        .map(|f| {
            let parts = nested_record(&f.schema, &named)
                .map(|r| r.fields.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default();
            (f.name.clone(), parts)
        })
        .collect();
    FieldPositions { fields }
}

/// Every named record of a schema, so that references to them resolve.
fn collect_records<'a>(schema: &'a Schema, out: &mut HashMap<Name, &'a RecordSchema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.clone(), r);
            for f in &r.fields {
                collect_records(&f.schema, out);
            }
        }
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_records(v, out)),
        _ => {}
    }
}

/// The record a field holds, through a union with null or a reference by name.
fn nested_record<'a>(
    schema: &'a Schema,
    named: &HashMap<Name, &'a RecordSchema>,
) -> Option<&'a RecordSchema> {
    match schema {
        Schema::Record(r) => Some(r),
        Schema::Ref { name } => named.get(name).copied(),
        Schema::Union(u) => u.variants().iter().find_map(|v| nested_record(v, named)),
        _ => None,
    }
}

fn unwrap_union(v: Avro) -> Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(*inner),
        other => other,
    }
}

fn strings(v: Option<Avro>) -> Vec<String> {
    match v.map(unwrap_union) {
        Some(Avro::Array(items)) => items
            .into_iter()
            .filter_map(|i| match unwrap_union(i) {
                Avro::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A field's value as REST would show it; `None` for null and for types REST has no form for.
fn json(v: Avro) -> Option<Value> {
    Some(match v {
        Avro::Null => return None,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(n) => Value::from(n),
        Avro::Long(n) => Value::from(n),
        Avro::Float(f) => Value::Number(Number::from_f64(f64::from(f))?),
        Avro::Double(f) => Value::Number(Number::from_f64(f)?),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Date(days) => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
            let date = epoch.checked_add_signed(chrono::Duration::days(i64::from(days)))?;
            Value::String(date.format("%Y-%m-%d").to_string())
        }
        Avro::TimestampMillis(ms) => {
            let at = DateTime::from_timestamp_millis(ms)?;
            Value::String(at.to_rfc3339_opts(SecondsFormat::Millis, true))
        }
        Avro::Array(items) => Value::Array(
            items
                .into_iter()
                .filter_map(|i| json(unwrap_union(i)))
                .collect(),
        ),
        Avro::Union(_, inner) => return json(*inner),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;
    use serde_json::json;

    /// A change event schema of the documented shape: the header first, then the record's
    /// fields as unions with null, the compound `Name` a nested record.
    const SCHEMA: &str = r#"{
      "type": "record", "name": "UserChangeEvent", "namespace": "com.sforce.eventbus",
      "fields": [
        {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
          {"name": "entityName", "type": "string"},
          {"name": "recordIds", "type": {"type": "array", "items": "string"}},
          {"name": "changeType", "type": {"type": "enum", "name": "ChangeType",
            "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]}},
          {"name": "changeOrigin", "type": "string"},
          {"name": "transactionKey", "type": "string"},
          {"name": "sequenceNumber", "type": "int"},
          {"name": "commitTimestamp", "type": "long"},
          {"name": "commitNumber", "type": "long"},
          {"name": "commitUser", "type": "string"},
          {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
          {"name": "diffFields", "type": {"type": "array", "items": "string"}},
          {"name": "changedFields", "type": {"type": "array", "items": "string"}}]}},
        {"name": "Username", "type": ["null", "string"], "default": null},
        {"name": "Name", "type": ["null", {"type": "record", "name": "Name", "fields": [
          {"name": "FirstName", "type": ["null", "string"], "default": null},
          {"name": "LastName", "type": ["null", "string"], "default": null}]}], "default": null},
        {"name": "Email", "type": ["null", "string"], "default": null},
        {"name": "IsActive", "type": ["null", "boolean"], "default": null},
        {"name": "LastModifiedDate", "type": ["null", "long"], "default": null},
        {"name": "Title", "type": ["null", "string"], "default": null}
      ]}"#;

    fn string(s: &str) -> Avro {
        Avro::String(s.into())
    }

    fn some(v: Avro) -> Avro {
        Avro::Union(1, Box::new(v))
    }

    fn strings(items: &[&str]) -> Avro {
        Avro::Array(items.iter().map(|s| string(s)).collect())
    }

    fn encode(
        change: (u32, &str),
        fields: Vec<(&str, Avro)>,
        changed: &[&str],
        nulled: &[&str],
    ) -> Vec<u8> {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let header = Avro::Record(vec![
            ("entityName".into(), string("User")),
            ("recordIds".into(), strings(&["005000000000001AAA"])),
            ("changeType".into(), Avro::Enum(change.0, change.1.into())),
            (
                "changeOrigin".into(),
                string("com/salesforce/api/rest/62.0"),
            ),
            ("transactionKey".into(), string("0002-abc")),
            ("sequenceNumber".into(), Avro::Int(1)),
            ("commitTimestamp".into(), Avro::Long(1_764_000_000_123)),
            ("commitNumber".into(), Avro::Long(42)),
            ("commitUser".into(), string("005000000000009AAA")),
            ("nulledFields".into(), strings(nulled)),
            ("diffFields".into(), strings(&[])),
            ("changedFields".into(), strings(changed)),
        ]);
        let names = [
            "Username",
            "Name",
            "Email",
            "IsActive",
            "LastModifiedDate",
            "Title",
        ];
        let mut record = vec![("ChangeEventHeader".to_owned(), header)];
        for name in names {
            let v = fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| some(v.clone()))
                .unwrap_or(Avro::Union(0, Box::new(Avro::Null)));
            record.push((name.to_owned(), v));
        }
        GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(Avro::Record(record))
            .unwrap()
    }

    fn name(first: Option<&str>, last: Option<&str>) -> Avro {
        let part = |v: Option<&str>| match v {
            Some(s) => some(string(s)),
            None => Avro::Union(0, Box::new(Avro::Null)),
        };
        Avro::Record(vec![
            ("FirstName".into(), part(first)),
            ("LastName".into(), part(last)),
        ])
    }

    #[test]
    fn a_create_carries_every_field_with_compound_parts_flattened() {
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        let payload = encode(
            (0, "CREATE"),
            vec![
                ("Username", string("ada@example.com")),
                ("Name", name(Some("Ada"), Some("Lovelace"))),
                ("IsActive", Avro::Boolean(true)),
                ("LastModifiedDate", Avro::Long(1_764_000_000_000)),
            ],
            &[],
            &[],
        );
        let e = schema.decode(&payload, vec![7]).unwrap();
        assert_eq!(e.replay_id, vec![7]);
        assert_eq!(e.header.change_type, ChangeType::Create);
        assert_eq!(e.header.record_ids, ["005000000000001AAA"]);
        assert_eq!(e.header.commit_user, "005000000000009AAA");
        assert_eq!(e.header.commit_timestamp, 1_764_000_000_123);
        assert_eq!(
            Value::Object(e.fields.clone()),
            json!({"Username": "ada@example.com", "FirstName": "Ada", "LastName": "Lovelace",
                   "IsActive": true, "LastModifiedDate": 1_764_000_000_000_i64})
        );
        // A create says what every field holds, the absent ones being null.
        assert!(e.carries("Title") && e.carries("Email"));
    }

    #[test]
    fn an_update_names_its_changed_and_nulled_fields() {
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        // Positions: 0 header, 1 Username, 2 Name (0 FirstName, 1 LastName), 3 Email,
        // 4 IsActive, 5 LastModifiedDate, 6 Title.
        let payload = encode(
            (1, "UPDATE"),
            vec![
                ("Name", name(None, Some("Byron"))),
                ("IsActive", Avro::Boolean(false)),
                ("LastModifiedDate", Avro::Long(1)),
            ],
            &["0x70", "2-0x02"],
            &["0x40"],
        );
        let e = schema.decode(&payload, vec![8]).unwrap();
        assert_eq!(e.header.change_type, ChangeType::Update);
        let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        // A nulled field is a changed one too.
        assert_eq!(
            e.changed,
            set(&["IsActive", "LastModifiedDate", "LastName", "Title"])
        );
        assert_eq!(e.nulled, set(&["Title"]));
        assert_eq!(e.fields.get("LastName"), Some(&json!("Byron")));
        assert!(!e.fields.contains_key("FirstName"));
        assert!(e.carries("LastName") && e.carries("Title") && !e.carries("Username"));
    }

    #[test]
    fn gaps_and_bad_input_are_told_apart() {
        assert_eq!(
            ChangeType::parse("GAP_UPDATE"),
            ChangeType::Gap("GAP_UPDATE".into())
        );
        assert_eq!(ChangeType::parse("GAP_OVERFLOW"), ChangeType::GapOverflow);
        let schema = EventSchema::parse("s1", SCHEMA).unwrap();
        assert!(matches!(
            schema.decode(&[0xff, 0xff], vec![]),
            Err(PubSubError::Decode { .. })
        ));
        assert!(matches!(
            EventSchema::parse(
                "s2",
                r#"{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]}"#
            ),
            Err(PubSubError::Schema { .. })
        ));
        assert!(EventSchema::parse("s3", "not json").is_err());
    }
}
