//! In-memory evaluation of a [`Filter`] against a JSON object.
//!
//! Every rule here mirrors one in `repo::filter_sql`, so that a filter evaluated here and the
//! same filter run by Postgres select the same objects. Where Postgres behaves in a particular
//! way (array indexes in pointers, exact decimal comparison) the code below says so.

use std::cmp::Ordering;

use serde_json::Value;

use super::{CompareOp, Filter, Literal, Pointer};

impl Filter {
    /// True when `object` satisfies the filter.
    ///
    /// `object` is the object as IDM shows it: `_id` and `_rev` (strings) are ordinary
    /// top-level fields here, where the SQL reads them from their columns.
    pub fn matches(&self, object: &Value) -> bool {
        match self {
            Filter::True => true,
            Filter::False => false,
            Filter::Not(inner) => !inner.matches(object),
            Filter::And(parts) => parts.iter().all(|part| part.matches(object)),
            Filter::Or(parts) => parts.iter().any(|part| part.matches(object)),
            Filter::Present(field) => resolve(object, field).is_some_and(|v| !v.is_null()),
            Filter::Compare { field, op, value } => {
                resolve(object, field).is_some_and(|stored| compare(stored, *op, value))
            }
        }
    }
}

/// Follows the pointer the way Postgres' `#>` does.
fn resolve<'a>(object: &'a Value, pointer: &Pointer) -> Option<&'a Value> {
    pointer
        .tokens()
        .iter()
        .try_fold(object, |current, token| match current {
            Value::Object(map) => map.get(token),
            Value::Array(items) => items.get(postgres_array_index(token, items.len())?),
            _ => None,
        })
}

/// The element a path token selects in an array of `len` elements, as Postgres reads it:
/// an `int4` as `strtol` accepts it (leading blanks, a sign, leading zeros), negative
/// indexes counting from the end.
fn postgres_array_index(token: &str, len: usize) -> Option<usize> {
    let trimmed = token.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
    let digits = trimmed.strip_prefix(['+', '-']).unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: i32 = trimmed.strip_prefix('+').unwrap_or(trimmed).parse().ok()?;
    if index >= 0 {
        usize::try_from(index).ok()
    } else {
        len.checked_sub(usize::try_from(index.unsigned_abs()).ok()?)
    }
}

/// One comparison on a value that exists. Types must agree: a string literal only matches
/// strings, a number only numbers, a boolean only booleans.
fn compare(stored: &Value, op: CompareOp, literal: &Literal) -> bool {
    match (stored, literal) {
        (Value::String(stored), Literal::String(wanted)) => match op {
            CompareOp::Eq => stored == wanted,
            CompareOp::Co => stored.contains(wanted.as_str()),
            CompareOp::Sw => stored.starts_with(wanted.as_str()),
            // `str` orders by code point, like Postgres' `COLLATE "C"` on UTF-8.
            _ => ordering_matches(op, stored.as_str().cmp(wanted.as_str())),
        },
        (Value::Number(stored), Literal::Number(wanted)) => match op {
            CompareOp::Co | CompareOp::Sw => false,
            _ => decimal_cmp(&stored.to_string(), &wanted.to_string())
                .is_some_and(|ordering| ordering_matches(op, ordering)),
        },
        (Value::Bool(stored), Literal::Bool(wanted)) => op == CompareOp::Eq && stored == wanted,
        _ => false,
    }
}

fn ordering_matches(op: CompareOp, ordering: Ordering) -> bool {
    match op {
        CompareOp::Eq => ordering.is_eq(),
        CompareOp::Lt => ordering.is_lt(),
        CompareOp::Le => ordering.is_le(),
        CompareOp::Gt => ordering.is_gt(),
        CompareOp::Ge => ordering.is_ge(),
        CompareOp::Co | CompareOp::Sw => false,
    }
}

/// Compares two JSON number texts exactly, as Postgres `numeric` does.
///
/// Both sides are compared as the decimals their text says (`0.1` is one tenth, not the
/// nearest `f64`), which is what Postgres does with the number stored in `jsonb` and the
/// literal bound as text. `None` when a text is not a number.
fn decimal_cmp(a: &str, b: &str) -> Option<Ordering> {
    let (a, b) = (Decimal::parse(a)?, Decimal::parse(b)?);
    let by_sign = a.sign().cmp(&b.sign());
    if by_sign.is_ne() || a.sign() == 0 {
        return Some(by_sign);
    }
    let magnitude = a
        .leading_position()
        .cmp(&b.leading_position())
        .then_with(|| a.digits.cmp(&b.digits));
    Some(if a.negative {
        magnitude.reverse()
    } else {
        magnitude
    })
}

/// `digits × 10^exponent`, digits without leading or trailing zeros (empty for zero).
struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok()?),
            None => (unsigned, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
            return None;
        }
        let joined = format!("{int_part}{frac_part}");
        let frac_len = i64::try_from(frac_part.len()).ok()?;
        let without_leading = joined.trim_start_matches('0');
        let digits = without_leading.trim_end_matches('0');
        let trailing = i64::try_from(without_leading.len() - digits.len()).ok()?;
        Some(Decimal {
            negative,
            digits: digits.to_owned(),
            exponent: exponent.checked_sub(frac_len)?.checked_add(trailing)?,
        })
    }

    /// -1, 0 or 1.
    fn sign(&self) -> i8 {
        match (self.digits.is_empty(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    /// The power of ten just above the leading digit; orders magnitudes of non-zero numbers.
    fn leading_position(&self) -> i64 {
        i64::try_from(self.digits.len())
            .unwrap_or(i64::MAX)
            .saturating_add(self.exponent)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::parse;

    fn matches(filter: &str, object: &Value) -> bool {
        parse(filter).unwrap().matches(object)
    }

    #[test]
    fn decimal_comparison_is_exact() {
        use Ordering::*;
        let cases = [
            ("1", "1.0", Equal),
            ("1", "1e0", Equal),
            ("100", "1e2", Equal),
            ("0.1", "1e-1", Equal),
            ("0", "-0.0", Equal),
            ("-1", "1", Less),
            ("-2", "-1", Less),
            ("0.5", "0", Greater),
            ("-0.5", "0", Less),
            ("9007199254740993", "9007199254740992", Greater),
            ("18446744073709551615", "1.8446744073709552e19", Less),
            ("123.456", "123.4559", Greater),
            ("1e-7", "0.0000001", Equal),
            ("99", "100", Less),
            ("1.5E+3", "1500", Equal),
        ];
        for (a, b, expected) in cases {
            assert_eq!(decimal_cmp(a, b), Some(expected), "{a} vs {b}");
            assert_eq!(decimal_cmp(b, a), Some(expected.reverse()), "{b} vs {a}");
        }
        assert_eq!(decimal_cmp("x", "1"), None);
        assert_eq!(decimal_cmp("1e99999999999999999999", "1"), None);
    }

    #[test]
    fn array_indexes_follow_postgres() {
        assert_eq!(postgres_array_index("0", 3), Some(0));
        assert_eq!(postgres_array_index("2", 3), Some(2));
        assert_eq!(postgres_array_index("007", 3), Some(7));
        assert_eq!(postgres_array_index("+1", 3), Some(1));
        assert_eq!(postgres_array_index(" 1", 3), Some(1));
        assert_eq!(postgres_array_index("-1", 3), Some(2));
        assert_eq!(postgres_array_index("-3", 3), Some(0));
        assert_eq!(postgres_array_index("-4", 3), None);
        assert_eq!(postgres_array_index("1 ", 3), None);
        assert_eq!(postgres_array_index("x", 3), None);
        assert_eq!(postgres_array_index("", 3), None);
        assert_eq!(postgres_array_index("-", 3), None);
        assert_eq!(postgres_array_index("99999999999", 3), None);
    }

    #[test]
    fn strings() {
        let o = json!({"userName": "bjensen", "n": 5, "s": "5"});
        assert!(matches("userName eq \"bjensen\"", &o));
        assert!(!matches("userName eq \"BJENSEN\"", &o));
        assert!(matches("userName co \"jen\"", &o));
        assert!(matches("userName sw \"bj\"", &o));
        assert!(!matches("userName sw \"jen\"", &o));
        assert!(matches("userName co \"\"", &o));
        assert!(matches("userName gt \"a\"", &o));
        assert!(matches("userName lt \"c\"", &o));
        assert!(matches(
            "userName le \"bjensen\" and userName ge \"bjensen\"",
            &o
        ));
        // Types must agree.
        assert!(!matches("n eq \"5\"", &o));
        assert!(!matches("s eq 5", &o));
        assert!(matches("s eq \"5\"", &o));
        // Code point order: 'Z' < 'a' < 'é'.
        assert!(matches("userName gt \"Z\"", &o));
        assert!(matches("userName lt \"é\"", &o));
    }

    #[test]
    fn numbers() {
        let o = json!({"n": 5, "f": 2.5, "big": 18446744073709551615u64, "neg": -3});
        assert!(matches("n eq 5", &o));
        assert!(matches("n eq 5.0", &o));
        assert!(matches("n eq 5e0", &o));
        assert!(matches("n gt 4.99 and n lt 5.01", &o));
        assert!(matches("f ge 2.5 and f le 2.5", &o));
        assert!(matches("big eq 18446744073709551615", &o));
        assert!(matches("big gt 18446744073709551614", &o));
        assert!(matches("neg lt -2", &o));
        assert!(!matches("n co 5", &o));
        assert!(!matches("n sw 5", &o));
        assert!(!matches("n eq true", &o));
    }

    #[test]
    fn booleans() {
        let o = json!({"active": true, "off": false});
        assert!(matches("active eq true", &o));
        assert!(!matches("active eq false", &o));
        assert!(matches("off eq false", &o));
        assert!(!matches("active gt false", &o));
        assert!(!matches("active co true", &o));
        assert!(!matches("active eq \"true\"", &o));
    }

    #[test]
    fn presence_null_and_missing() {
        let o = json!({"a": 1, "nothing": null, "empty": "", "list": []});
        assert!(matches("a pr", &o));
        assert!(matches("empty pr", &o));
        assert!(matches("list pr", &o));
        assert!(!matches("nothing pr", &o));
        assert!(!matches("missing pr", &o));
        // Negation is two-valued: a missing field is "not equal".
        assert!(matches("!(missing eq \"x\")", &o));
        assert!(matches("!(nothing eq \"x\")", &o));
        assert!(!matches("missing eq \"x\"", &o));
        assert!(matches("!(missing pr)", &o));
    }

    #[test]
    fn nested_fields_and_arrays() {
        let o = json!({
            "name": {"givenName": "Barbara", "a/b": {"c~d": 1}},
            "emails": [{"value": "b@x"}, {"value": "c@x"}],
            "roles": ["admin", "user"],
        });
        assert!(matches("/name/givenName eq \"Barbara\"", &o));
        assert!(matches("name/givenName sw \"Bar\"", &o));
        assert!(matches("/name/a~1b/c~0d eq 1", &o));
        assert!(matches("/emails/1/value eq \"c@x\"", &o));
        assert!(matches("/emails/-1/value eq \"c@x\"", &o));
        assert!(!matches("/emails/2/value pr", &o));
        assert!(!matches("/name/givenName/x pr", &o));
        // Scalar semantics on arrays (see the module documentation).
        assert!(!matches("roles eq \"admin\"", &o));
        assert!(matches("roles/0 eq \"admin\"", &o));
    }

    #[test]
    fn logic() {
        let o = json!({"a": 1, "b": 2});
        assert!(matches("a eq 1 and b eq 2", &o));
        assert!(!matches("a eq 1 and b eq 3", &o));
        assert!(matches("a eq 9 or b eq 2", &o));
        assert!(matches("a eq 9 and b eq 9 or b eq 2", &o));
        assert!(!matches("a eq 9 and (b eq 9 or b eq 2)", &o));
        assert!(matches("true", &o));
        assert!(!matches("false", &o));
        assert!(matches("!false", &o));
        assert!(Filter::And(vec![]).matches(&o));
        assert!(!Filter::Or(vec![]).matches(&o));
    }

    #[test]
    fn id_and_rev_are_plain_fields_in_memory() {
        let o = json!({"_id": "u1", "_rev": "12", "userName": "x"});
        assert!(matches("_id eq \"u1\"", &o));
        assert!(matches("/_rev eq \"12\"", &o));
        assert!(!matches("/_rev eq 12", &o));
    }
}
