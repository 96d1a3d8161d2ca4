//! The bitmap strings of a change event's `changedFields`, `nulledFields` and `diffFields`, as
//! the Pub/Sub API delivers them (Pub/Sub API guide, "Event Deserialization Considerations"):
//! the first element is `0x…` over the top-level fields, bit i set for the field at position i
//! of the Avro schema, counted from the least significant bit; a compound field's children follow
//! as `"{parent position}-0x…"` over the positions of the nested record. The doc's example is
//! `['0x650004E0','4-0x10','7-0x06']`: whole bytes, upper-case hex digits.

/// A bitmap string that does not read as the above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a bitmap field entry: {0:?}")]
pub struct BitmapError(pub String);

/// `0x…` with bit `p` set for each of `positions`, in as few whole bytes as hold the highest;
/// `None` for no positions.
pub fn hex(positions: &[usize]) -> Option<String> {
    let top = positions.iter().copied().max()?;
    let mut bytes = vec![0u8; top / 8 + 1];
    let len = bytes.len();
    for &p in positions {
        // Big-endian: the last byte holds bits 0–7.
        if let Some(b) = bytes.get_mut(len - 1 - p / 8) {
            *b |= 1 << (p % 8);
        }
    }
    let mut out = String::with_capacity(2 + 2 * len);
    out.push_str("0x");
    for b in bytes {
        out.push_str(&format!("{b:02X}"));
    }
    Some(out)
}

/// The positions set in one `0x…` string, lowest first.
pub fn positions(hex: &str) -> Result<Vec<usize>, BitmapError> {
    let bad = || BitmapError(hex.to_owned());
    let digits = hex.strip_prefix("0x").ok_or_else(bad)?;
    if digits.is_empty() {
        return Err(bad());
    }
    let mut out = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let nibble = c.to_digit(16).ok_or_else(bad)?;
        out.extend((0..4).filter(|b| nibble & (1 << b) != 0).map(|b| i * 4 + b));
    }
    Ok(out)
}

/// A bitmap field: the top-level positions, then each compound field's children, in parent
/// order; an element is left out when it has no bit set (so no change at all is `[]`).
pub fn encode(top: &[usize], nested: &[(usize, Vec<usize>)]) -> Vec<String> {
    let mut out: Vec<String> = hex(top).into_iter().collect();
    let mut nested: Vec<&(usize, Vec<usize>)> = nested.iter().collect();
    nested.sort_by_key(|(parent, _)| *parent);
    for (parent, children) in nested {
        if let Some(h) = hex(children) {
            out.push(format!("{parent}-{h}"));
        }
    }
    out
}

/// A bitmap field read back: top-level positions and `(parent, child positions)`.
pub type Decoded = (Vec<usize>, Vec<(usize, Vec<usize>)>);

/// Reads a bitmap field (the inverse of [`encode`]).
pub fn decode(field: &[String]) -> Result<Decoded, BitmapError> {
    let mut top = Vec::new();
    let mut nested = Vec::new();
    for entry in field {
        match entry.split_once('-') {
            Some((parent, h)) => {
                let parent = parent
                    .parse::<usize>()
                    .map_err(|_| BitmapError(entry.clone()))?;
                nested.push((parent, positions(h)?));
            }
            None => top.extend(positions(entry)?),
        }
    }
    Ok((top, nested))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_round_trips() {
        let doc: Vec<String> = ["0x650004E0", "4-0x10", "7-0x06"]
            .map(str::to_owned)
            .to_vec();
        let (top, nested) = decode(&doc).unwrap();
        assert_eq!(top, vec![5, 6, 7, 10, 24, 26, 29, 30]);
        assert_eq!(nested, vec![(4, vec![4]), (7, vec![1, 2])]);
        assert_eq!(encode(&top, &nested), doc);
    }

    #[test]
    fn whole_bytes_upper_case_and_nothing_for_no_bits() {
        assert_eq!(hex(&[0]).as_deref(), Some("0x01"));
        assert_eq!(hex(&[7, 13]).as_deref(), Some("0x2080"));
        assert_eq!(hex(&[8]).as_deref(), Some("0x0100"));
        assert_eq!(hex(&[3, 27]).as_deref(), Some("0x08000008"));
        assert_eq!(hex(&[]), None);
        assert_eq!(encode(&[], &[(2, vec![])]), Vec::<String>::new());
        assert_eq!(encode(&[], &[(2, vec![0])]), vec!["2-0x01".to_owned()]);
    }

    #[test]
    fn malformed_entries_are_refused() {
        assert!(positions("650004E0").is_err());
        assert!(positions("0x").is_err());
        assert!(positions("0xZZ").is_err());
        assert!(decode(&["x-0x01".to_owned()]).is_err());
    }
}
