//! SOQL string literals: the one escaper every SOQL text built by idm-sync goes through, and
//! the few condition shapes built from values (`Field = 'x'`, `Field IN ('x', 'y')`,
//! `Field LIKE 'x%'`).
//!
//! Escapes follow Salesforce's "Quoted String Escape Sequences" (SOQL and SOSL Reference,
//! <https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm>):
//! `\'`, `\"`, `\\`, `\n`, `\r`, `\t`, `\f`, `\uXXXX`, and in `LIKE` only `\%` and `\_`.
//!
//! Every character can be written, so no value makes a query malformed:
//! - Any other control character (C0, DEL, C1) is written `\uXXXX`. That includes U+0008: the
//!   reference names `\b` "Bell" in English and backspace in its translations, so `\b` is never
//!   emitted. No raw control character ever reaches the query text.
//! - Salesforce refuses strings over [`MAX_WHERE_STRING`] characters in a `WHERE` clause
//!   ("Strings in WHERE clauses can't exceed 4,000 characters", SOQL reference, WHERE). Such a
//!   value cannot equal, contain or start any value Salesforce can filter on (its filterable
//!   text fields hold at most 255 characters), so [`equals`], [`like`] and [`in_list`] turn it
//!   into a condition that matches nothing instead of a query Salesforce would refuse. Only a
//!   range comparison has no such answer: [`quote`] reports [`LiteralError::TooLong`].

use std::fmt::Write as _;

/// The longest string Salesforce accepts in a `WHERE` clause, counted as written (escapes
/// included, which can only make the count stricter).
pub const MAX_WHERE_STRING: usize = 4_000;

/// A condition no record satisfies (`Id` is never null): what a value that cannot match becomes.
pub const MATCHES_NOTHING: &str = "Id = null";

/// A condition every record satisfies.
pub const MATCHES_ALL: &str = "Id != null";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiteralError {
    /// Only the length is kept: the value may be anything, and errors reach logs.
    #[error(
        "a string of {chars} characters once escaped is longer than the {MAX_WHERE_STRING} SOQL accepts in a WHERE clause"
    )]
    TooLong { chars: usize },
}

/// Where a `LIKE` pattern places the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeMatch {
    /// `'%x%'`
    Contains,
    /// `'x%'`
    StartsWith,
}

/// Appends `value` escaped for the inside of a SOQL string literal; with `like`, its `%` and
/// `_` too, so they match themselves in a `LIKE` pattern.
pub fn push_escaped(out: &mut String, value: &str, like: bool) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '%' if like => out.push_str("\\%"),
            '_' if like => out.push_str("\\_"),
            // Control characters are all in the Basic Multilingual Plane: four digits suffice.
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// `value` as a quoted SOQL string literal: `'O\'Hara'`.
pub fn quote(value: &str) -> Result<String, LiteralError> {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    push_escaped(&mut out, value, false);
    out.push('\'');
    checked(out)
}

/// `field = 'value'`, or [`MATCHES_NOTHING`] for a value no Salesforce field can hold.
/// `field` must be a field name checked by the caller ([`is_field_name`]).
pub fn equals(field: &str, value: &str) -> String {
    match quote(value) {
        Ok(literal) => format!("{field} = {literal}"),
        Err(LiteralError::TooLong { .. }) => MATCHES_NOTHING.to_owned(),
    }
}

/// `field LIKE '%value%'` or `field LIKE 'value%'`, the value's wildcards escaped; or
/// [`MATCHES_NOTHING`] for a value no Salesforce field can contain.
pub fn like(field: &str, value: &str, how: LikeMatch) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    out.push('\'');
    if how == LikeMatch::Contains {
        out.push('%');
    }
    push_escaped(&mut out, value, true);
    out.push_str("%'");
    match checked(out) {
        Ok(pattern) => format!("{field} LIKE {pattern}"),
        Err(LiteralError::TooLong { .. }) => MATCHES_NOTHING.to_owned(),
    }
}

/// `field IN ('a', 'b')`: values too long to match anything are left out of the list, and a
/// list left empty is [`MATCHES_NOTHING`].
pub fn in_list<'a>(field: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let literals: Vec<String> = values.into_iter().filter_map(|v| quote(v).ok()).collect();
    if literals.is_empty() {
        return MATCHES_NOTHING.to_owned();
    }
    format!("{field} IN ({})", literals.join(", "))
}

/// A SOQL field name idm-sync may put in a query: a letter, then letters, digits and `_`
/// (standard and custom fields, `Foo__c`). Anything else is refused before it reaches SOQL.
pub fn is_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn checked(literal: String) -> Result<String, LiteralError> {
    // The quotes are not part of the string.
    let chars = literal.chars().count().saturating_sub(2);
    if chars > MAX_WHERE_STRING {
        return Err(LiteralError::TooLong { chars });
    }
    Ok(literal)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The inside of a literal read back with the documented escapes (`\%`/`\_` kept as the
    /// two characters, as a `LIKE` pattern reads them); `None` for anything else.
    fn unescape(body: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c == '\'' || c.is_control() {
                return None;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next()? {
                'n' | 'N' => out.push('\n'),
                'r' | 'R' => out.push('\r'),
                't' | 'T' => out.push('\t'),
                'f' | 'F' => out.push('\u{c}'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() != 4 {
                        return None;
                    }
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                e @ ('%' | '_') => {
                    out.push('\\');
                    out.push(e);
                }
                _ => return None,
            }
        }
        Some(out)
    }

    fn body(literal: &str) -> &str {
        &literal[1..literal.len() - 1]
    }

    #[test]
    fn quotes_backslashes_and_documented_escapes() {
        assert_eq!(quote("O'Hara").unwrap(), r"'O\'Hara'");
        assert_eq!(quote(r#"a\b"c"#).unwrap(), r#"'a\\b\"c'"#);
        assert_eq!(quote("l1\nl2\r\t\u{c}").unwrap(), r"'l1\nl2\r\t\f'");
        assert_eq!(quote("50%_off").unwrap(), "'50%_off'");
    }

    #[test]
    fn other_control_characters_are_unicode_escapes() {
        assert_eq!(
            quote("a\u{0}b\u{7}\u{8}\u{1b}\u{7f}\u{85}").unwrap(),
            r"'a\u0000b\u0007\u0008\u001b\u007f\u0085'"
        );
        // Not control characters: written as they are.
        assert_eq!(quote("é\u{2028}😀").unwrap(), "'é\u{2028}😀'");
    }

    #[test]
    fn builders() {
        assert_eq!(equals("Username", "a'b"), r"Username = 'a\'b'");
        assert_eq!(
            like("Email", "x_1%", LikeMatch::StartsWith),
            r"Email LIKE 'x\_1\%%'"
        );
        assert_eq!(
            like("LastName", "o'", LikeMatch::Contains),
            r"LastName LIKE '%o\'%'"
        );
        assert_eq!(in_list("Id", ["005A", "it's"]), r"Id IN ('005A', 'it\'s')");
        assert_eq!(in_list("Id", []), MATCHES_NOTHING);
    }

    #[test]
    fn values_longer_than_a_where_string_match_nothing() {
        let fits = "x".repeat(MAX_WHERE_STRING);
        assert!(quote(&fits).is_ok());
        let long = "x".repeat(MAX_WHERE_STRING + 1);
        assert_eq!(
            quote(&long),
            Err(LiteralError::TooLong {
                chars: MAX_WHERE_STRING + 1
            })
        );
        // Escapes count as written.
        let escaped = "'".repeat(MAX_WHERE_STRING / 2 + 1);
        assert!(quote(&escaped).is_err());
        assert_eq!(equals("Username", &long), MATCHES_NOTHING);
        assert_eq!(like("Email", &long, LikeMatch::Contains), MATCHES_NOTHING);
        assert_eq!(in_list("Username", ["a", &long]), "Username IN ('a')");
        assert_eq!(in_list("Username", [long.as_str()]), MATCHES_NOTHING);
        // The error shows the length, never the value.
        let shown = quote(&format!("secret{long}")).unwrap_err().to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn field_names() {
        assert!(is_field_name("Username"));
        assert!(is_field_name("Foo__c"));
        assert!(!is_field_name("_id"));
        assert!(!is_field_name("Email FROM User--"));
        assert!(!is_field_name(""));
    }

    proptest! {
        #[test]
        fn escaped_literals_never_break_out_and_round_trip(value in any::<String>()) {
            let Ok(literal) = quote(&value) else {
                return Ok(());
            };
            let inner = body(&literal);
            // Every quote inside is escaped, and no raw control character is left.
            let mut backslashes = 0usize;
            for c in inner.chars() {
                prop_assert!(!c.is_control(), "raw control character in {literal:?}");
                if c == '\'' {
                    prop_assert!(backslashes % 2 == 1, "unescaped quote in {literal:?}");
                }
                backslashes = if c == '\\' { backslashes + 1 } else { 0 };
            }
            prop_assert_eq!(unescape(inner), Some(value));
        }

        #[test]
        fn like_patterns_keep_wildcards_escaped(value in "[a-z%_'\\\\\n\u{1}]{0,40}") {
            let condition = like("Email", &value, LikeMatch::StartsWith);
            let pattern = condition.strip_prefix("Email LIKE ").unwrap();
            let inner = body(pattern).strip_suffix('%').unwrap();
            let read = unescape(inner).unwrap();
            // `\%` and `\_` stay escaped in a pattern: undo that to get the value back.
            prop_assert_eq!(read.replace("\\%", "%").replace("\\_", "_"), value);
        }
    }
}
