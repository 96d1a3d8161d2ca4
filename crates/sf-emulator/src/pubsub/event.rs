//! One change event: what changed in a `User` record (or a gap), and its Avro payload.
//!
//! Content (Change Data Capture guide, "Change Event Body Fields", Pub/Sub API clients): a
//! CREATE carries every field that has a value and no `changedFields`; an UPDATE carries the
//! changed fields only (unchanged ones are null), `changedFields` for every changed field and
//! `nulledFields` for those set to null; gap and overflow events carry no field data (an
//! overflow event no record id either).

use apache_avro::types::Value as Avro;

use super::bitmap;
use super::schema::{CHANGE_TYPES, EventSchema, NAME_PARTS, Place, Slot};
use crate::schema::{Field, Record, Val, idx};

/// `ChangeEventHeader.changeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    GapOverflow,
}

impl ChangeType {
    pub fn symbol(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::GapCreate => "GAP_CREATE",
            ChangeType::GapUpdate => "GAP_UPDATE",
            ChangeType::GapDelete => "GAP_DELETE",
            ChangeType::GapUndelete => "GAP_UNDELETE",
            ChangeType::GapOverflow => "GAP_OVERFLOW",
        }
    }

    /// A gap type by its symbol (`GAP_UPDATE`, …); `None` for other symbols.
    pub fn gap(symbol: &str) -> Option<ChangeType> {
        [
            ChangeType::GapCreate,
            ChangeType::GapUpdate,
            ChangeType::GapDelete,
            ChangeType::GapUndelete,
        ]
        .into_iter()
        .find(|t| t.symbol() == symbol)
    }

    fn index(self) -> u32 {
        let i = CHANGE_TYPES
            .iter()
            .position(|s| *s == self.symbol())
            .unwrap_or_default();
        u32::try_from(i).unwrap_or_default()
    }
}

/// A change to publish: its type, record ids and field data.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: ChangeType,
    pub record_ids: Vec<String>,
    /// Values sent (never null: a field not listed is sent as null).
    pub values: Vec<(Field, Val)>,
    pub changed: Vec<Field>,
    pub nulled: Vec<Field>,
}

/// Audit fields every save moves: a save that moves only these changed nothing.
const AUDIT: [Field; 3] = [
    idx::LAST_MODIFIED_DATE,
    idx::LAST_MODIFIED_BY_ID,
    idx::SYSTEM_MODSTAMP,
];

fn record_id(rec: &Record) -> Vec<String> {
    rec[idx::ID]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect()
}

impl Change {
    /// A new record: every field with a value.
    pub fn created(rec: &Record) -> Change {
        Change {
            kind: ChangeType::Create,
            record_ids: record_id(rec),
            values: Field::all()
                .filter(|f| *f != idx::ID && !rec[*f].is_null())
                .map(|f| (f, rec[f].clone()))
                .collect(),
            changed: Vec::new(),
            nulled: Vec::new(),
        }
    }

    /// An updated record; `None` when nothing but the audit fields moved.
    pub fn updated(old: &Record, new: &Record) -> Option<Change> {
        let changed: Vec<Field> = Field::all().filter(|f| old[*f] != new[*f]).collect();
        if changed.iter().all(|f| AUDIT.contains(f)) {
            return None;
        }
        Some(Change {
            kind: ChangeType::Update,
            record_ids: record_id(new),
            values: changed
                .iter()
                .filter(|f| !new[**f].is_null())
                .map(|f| (*f, new[*f].clone()))
                .collect(),
            nulled: changed
                .iter()
                .copied()
                .filter(|f| new[*f].is_null())
                .collect(),
            changed,
        })
    }

    /// A gap event for `record_ids`, or an overflow event (which names no record).
    pub fn gap(kind: ChangeType, record_ids: Vec<String>) -> Change {
        let record_ids = match kind {
            ChangeType::GapOverflow => Vec::new(),
            _ => record_ids,
        };
        Change {
            kind,
            record_ids,
            values: Vec::new(),
            changed: Vec::new(),
            nulled: Vec::new(),
        }
    }
}

/// The header values a commit gives each of its events.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    pub change_origin: &'a str,
    pub transaction_key: &'a str,
    pub sequence_number: i32,
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: &'a str,
}

#[derive(Debug, thiserror::Error)]
#[error("a change event does not fit its schema")]
pub struct EncodeError(#[from] apache_avro::Error);

fn avro_val(v: &Val) -> Avro {
    match v {
        Val::Null => Avro::Null,
        Val::Str(s) => Avro::String(s.clone()),
        Val::Bool(b) => Avro::Boolean(*b),
        Val::DateTime(d) => Avro::Long(d.timestamp_millis()),
    }
}

/// A union with null: branch 0 null, branch 1 the value.
fn optional(v: Option<Avro>) -> Avro {
    match v {
        None | Some(Avro::Null) => Avro::Union(0, Box::new(Avro::Null)),
        Some(v) => Avro::Union(1, Box::new(v)),
    }
}

fn strings(list: Vec<String>) -> Avro {
    Avro::Array(list.into_iter().map(Avro::String).collect())
}

/// A field list as a bitmap field over the schema's positions.
fn bitmap_of(schema: &EventSchema, fields: &[Field]) -> Vec<String> {
    let mut top = Vec::new();
    let mut nested: Vec<(usize, Vec<usize>)> = Vec::new();
    for f in fields {
        match schema.place(*f) {
            Some(Place::Top(p)) => top.push(p),
            Some(Place::Nested { parent, child }) => {
                match nested.iter_mut().find(|(p, _)| *p == parent) {
                    Some((_, children)) => children.push(child),
                    None => nested.push((parent, vec![child])),
                }
            }
            None => {}
        }
    }
    bitmap::encode(&top, &nested)
}

/// The Avro binary payload of `change` with `header`.
pub fn encode(
    schema: &EventSchema,
    header: &Header<'_>,
    change: &Change,
) -> Result<Vec<u8>, EncodeError> {
    let value_of = |f: Field| {
        change
            .values
            .iter()
            .find(|(g, _)| *g == f)
            .map(|(_, v)| avro_val(v))
    };
    let mut fields: Vec<(String, Avro)> = Vec::with_capacity(schema.slots.len() + 1);
    fields.push((
        "ChangeEventHeader".to_owned(),
        Avro::Record(vec![
            ("entityName".to_owned(), Avro::String("User".to_owned())),
            ("recordIds".to_owned(), strings(change.record_ids.clone())),
            (
                "changeType".to_owned(),
                Avro::Enum(change.kind.index(), change.kind.symbol().to_owned()),
            ),
            (
                "changeOrigin".to_owned(),
                Avro::String(header.change_origin.to_owned()),
            ),
            (
                "transactionKey".to_owned(),
                Avro::String(header.transaction_key.to_owned()),
            ),
            (
                "sequenceNumber".to_owned(),
                Avro::Int(header.sequence_number),
            ),
            (
                "commitTimestamp".to_owned(),
                Avro::Long(header.commit_timestamp),
            ),
            ("commitNumber".to_owned(), Avro::Long(header.commit_number)),
            (
                "commitUser".to_owned(),
                Avro::String(header.commit_user.to_owned()),
            ),
            (
                "nulledFields".to_owned(),
                strings(bitmap_of(schema, &change.nulled)),
            ),
            // Salesforce sends diffs only for long text areas, which User does not model.
            ("diffFields".to_owned(), strings(Vec::new())),
            (
                "changedFields".to_owned(),
                strings(bitmap_of(schema, &change.changed)),
            ),
        ]),
    ));
    for slot in &schema.slots {
        match slot {
            Slot::Field(f) => fields.push((f.def().name.to_owned(), optional(value_of(*f)))),
            Slot::Name => {
                let parts: Vec<(String, Avro)> = NAME_PARTS
                    .iter()
                    .map(|p| (p.def().name.to_owned(), optional(value_of(*p))))
                    .collect();
                let any = NAME_PARTS.iter().any(|p| value_of(*p).is_some());
                fields.push((
                    "Name".to_owned(),
                    optional(any.then_some(Avro::Record(parts))),
                ));
            }
        }
    }
    let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema.avro).build()?;
    let mut out = Vec::with_capacity(512);
    writer.write_value(&mut out, Avro::Record(fields))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn user() -> Record {
        let mut r = Record::default();
        r[idx::ID] = Val::Str("005000000000001AAA".to_owned());
        r[idx::USERNAME] = Val::Str("ada@example.com".to_owned());
        r[idx::FIRST_NAME] = Val::Str("Ada".to_owned());
        r[idx::LAST_NAME] = Val::Str("Lovelace".to_owned());
        r[idx::NAME] = Val::Str("Ada Lovelace".to_owned());
        r[idx::TITLE] = Val::Str("Countess".to_owned());
        r[idx::IS_ACTIVE] = Val::Bool(true);
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        r[idx::CREATED_DATE] = Val::DateTime(t);
        r[idx::LAST_MODIFIED_DATE] = Val::DateTime(t);
        r[idx::SYSTEM_MODSTAMP] = Val::DateTime(t);
        r
    }

    fn header() -> Header<'static> {
        Header {
            change_origin: "com/salesforce/api/rest/62.0",
            transaction_key: "0000abcd-0000-0000-0000-000000000001",
            sequence_number: 1,
            commit_timestamp: 1_704_164_645_000,
            commit_number: 42,
            commit_user: "005000000000002AAA",
        }
    }

    fn decode(schema: &EventSchema, bytes: &[u8]) -> Vec<(String, Avro)> {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema.avro)
            .build()
            .unwrap();
        match reader.read_value(&mut &bytes[..]).unwrap() {
            Avro::Record(f) => f,
            other => panic!("{other:?}"),
        }
    }

    fn get<'a>(rec: &'a [(String, Avro)], name: &str) -> &'a Avro {
        &rec.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn header_strings(rec: &[(String, Avro)], name: &str) -> Vec<String> {
        let Avro::Record(h) = get(rec, "ChangeEventHeader") else {
            panic!()
        };
        let Avro::Array(a) = get(h, name) else {
            panic!()
        };
        a.iter()
            .map(|v| match v {
                Avro::String(s) => s.clone(),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn a_create_carries_every_value_and_no_changed_fields() {
        let s = EventSchema::build().unwrap();
        let change = Change::created(&user());
        let rec = decode(&s, &encode(&s, &header(), &change).unwrap());
        assert_eq!(
            get(&rec, "Username"),
            &Avro::Union(1, Box::new(Avro::String("ada@example.com".into())))
        );
        assert_eq!(
            get(&rec, "IsActive"),
            &Avro::Union(1, Box::new(Avro::Boolean(true)))
        );
        assert_eq!(
            get(&rec, "CreatedDate"),
            &Avro::Union(1, Box::new(Avro::Long(1_704_164_645_000)))
        );
        assert_eq!(
            get(&rec, "Department"),
            &Avro::Union(0, Box::new(Avro::Null))
        );
        let Avro::Union(1, name) = get(&rec, "Name") else {
            panic!()
        };
        let Avro::Record(parts) = name.as_ref() else {
            panic!()
        };
        assert_eq!(
            get(parts, "FirstName"),
            &Avro::Union(1, Box::new(Avro::String("Ada".into())))
        );
        assert!(header_strings(&rec, "changedFields").is_empty());
        assert_eq!(
            header_strings(&rec, "recordIds"),
            vec!["005000000000001AAA".to_owned()]
        );
        let Avro::Record(h) = get(&rec, "ChangeEventHeader") else {
            panic!()
        };
        assert_eq!(get(h, "changeType"), &Avro::Enum(0, "CREATE".to_owned()));
        assert_eq!(
            get(h, "commitUser"),
            &Avro::String("005000000000002AAA".into())
        );
    }

    #[test]
    fn an_update_carries_changed_fields_and_their_bitmaps() {
        let s = EventSchema::build().unwrap();
        let old = user();
        let mut new = old.clone();
        new[idx::TITLE] = Val::Null;
        new[idx::FIRST_NAME] = Val::Str("Augusta".to_owned());
        new[idx::NAME] = Val::Str("Augusta Lovelace".to_owned());
        new[idx::IS_ACTIVE] = Val::Bool(false);
        let later = Utc.with_ymd_and_hms(2024, 2, 2, 3, 4, 5).unwrap();
        new[idx::LAST_MODIFIED_DATE] = Val::DateTime(later);
        new[idx::SYSTEM_MODSTAMP] = Val::DateTime(later);
        let change = Change::updated(&old, &new).unwrap();
        let rec = decode(&s, &encode(&s, &header(), &change).unwrap());
        assert_eq!(get(&rec, "Username"), &Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(get(&rec, "Title"), &Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(
            get(&rec, "IsActive"),
            &Avro::Union(1, Box::new(Avro::Boolean(false)))
        );
        let pos = |f: Field| match s.place(f).unwrap() {
            Place::Top(p) => p,
            Place::Nested { .. } => panic!(),
        };
        let (top, nested) = bitmap::decode(&header_strings(&rec, "changedFields")).unwrap();
        let mut want = vec![
            pos(idx::IS_ACTIVE),
            pos(idx::TITLE),
            pos(idx::LAST_MODIFIED_DATE),
            pos(idx::SYSTEM_MODSTAMP),
        ];
        want.sort_unstable();
        assert_eq!(top, want);
        assert_eq!(nested, vec![(2, vec![0])]);
        let (nulled, nested_nulled) =
            bitmap::decode(&header_strings(&rec, "nulledFields")).unwrap();
        assert_eq!(nulled, vec![pos(idx::TITLE)]);
        assert!(nested_nulled.is_empty());
    }

    #[test]
    fn a_save_that_moves_only_audit_fields_is_no_change() {
        let old = user();
        let mut new = old.clone();
        new[idx::SYSTEM_MODSTAMP] = Val::DateTime(Utc::now());
        new[idx::LAST_MODIFIED_DATE] = Val::DateTime(Utc::now());
        assert_eq!(Change::updated(&old, &new), None);
    }

    #[test]
    fn gaps_carry_no_fields_and_overflow_no_ids() {
        let s = EventSchema::build().unwrap();
        let gap = Change::gap(ChangeType::GapUpdate, vec!["005000000000001AAA".into()]);
        let rec = decode(&s, &encode(&s, &header(), &gap).unwrap());
        assert_eq!(get(&rec, "Name"), &Avro::Union(0, Box::new(Avro::Null)));
        assert_eq!(header_strings(&rec, "recordIds").len(), 1);
        let overflow = Change::gap(ChangeType::GapOverflow, vec!["x".into()]);
        let rec = decode(&s, &encode(&s, &header(), &overflow).unwrap());
        assert!(header_strings(&rec, "recordIds").is_empty());
        assert_eq!(ChangeType::gap("GAP_CREATE"), Some(ChangeType::GapCreate));
        assert_eq!(ChangeType::gap("UPDATE"), None);
    }
}
