//! The bitmap fields of a change event header (`changedFields`, `nulledFields`, `diffFields`),
//! named. As the Pub/Sub API guide ("Event Deserialization Considerations") describes them: the
//! first string is a hexadecimal bitmap over the positions of the schema's top-level fields
//! (bit i, counted from the least significant, is the field at position i); each further string
//! is `{parent position}-{bitmap}` over the fields of the compound field at that position.

use std::collections::BTreeSet;

/// The field names at each position of a change event schema: top-level fields, and for a
/// compound field (a nested record such as `Name`), its own fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPositions {
    pub fields: Vec<(String, Vec<String>)>,
}

impl FieldPositions {
    /// The names a bitmap field lists: a compound field's parts by their own names
    /// (`FirstName`, not `Name`), as REST reads them. Bits beyond the schema and malformed
    /// entries are skipped: a newer schema must not stop the subscriber.
    pub fn names(&self, bitmaps: &[String]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for entry in bitmaps {
            match entry.split_once('-') {
                None => {
                    for i in set_bits(entry) {
                        if let Some((name, parts)) = self.fields.get(i) {
                            match parts.is_empty() {
                                true => out.insert(name.clone()),
                                // A whole compound field: every part of it.
                                false => {
                                    out.extend(parts.iter().cloned());
                                    true
                                }
                            };
                        }
                    }
                }
                Some((parent, bitmap)) => {
                    let parts = parent
                        .parse::<usize>()
                        .ok()
                        .and_then(|p| self.fields.get(p))
                        .map(|(_, parts)| parts);
                    if let Some(parts) = parts {
                        out.extend(set_bits(bitmap).filter_map(|i| parts.get(i).cloned()));
                    }
                }
            }
        }
        out
    }
}

/// The positions of the bits set in a `0x…` hexadecimal string, least significant first.
fn set_bits(hex: &str) -> impl Iterator<Item = usize> + '_ {
    let digits = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or("");
    // From the last digit (bits 0-3) to the first.
    digits.chars().rev().enumerate().flat_map(|(nibble, c)| {
        let v = c.to_digit(16).unwrap_or(0);
        (0..4)
            .filter(move |b| v & (1 << b) != 0)
            .map(move |b| nibble * 4 + b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions() -> FieldPositions {
        let mut fields: Vec<(String, Vec<String>)> =
            (0..32).map(|i| (format!("F{i}"), Vec::new())).collect();
        fields[4] = (
            "Name".into(),
            vec![
                "Salutation".into(),
                "FirstName".into(),
                "LastName".into(),
                "MiddleName".into(),
                "Suffix".into(),
            ],
        );
        FieldPositions { fields }
    }

    #[test]
    fn top_level_bits_count_from_the_least_significant() {
        // The guide's example head, 0x650004E0: bits 5, 6, 7, 10, 24, 26, 29, 30.
        let names = positions().names(&["0x650004E0".into()]);
        let expected: BTreeSet<String> = [5, 6, 7, 10, 24, 26, 29, 30]
            .iter()
            .map(|i| format!("F{i}"))
            .collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn compound_parts_are_named_by_their_own_names() {
        // 4-0x06: parts 1 and 2 of the field at position 4.
        let names = positions().names(&["0x0".into(), "4-0x06".into()]);
        assert_eq!(
            names,
            ["FirstName", "LastName"]
                .map(String::from)
                .into_iter()
                .collect()
        );
        // A set bit for the compound field itself means all of it.
        assert_eq!(positions().names(&["0x10".into()]).len(), 5);
    }

    #[test]
    fn malformed_and_out_of_range_entries_are_skipped() {
        let names = positions().names(&[
            "0x100000000000".into(),
            "zz".into(),
            "99-0x1".into(),
            "x-0x1".into(),
            "4-0xg".into(),
        ]);
        assert!(names.is_empty(), "{names:?}");
    }
}
