//! IDM/CREST `_queryFilter` expressions: the syntax tree, the parser and in-memory evaluation.
//!
//! The same [`Filter`] is compiled to SQL by `repo::filter_sql` and evaluated in memory by
//! [`Filter::matches`] (mapping conditions, correlation); both follow the rules below, so a
//! filter selects the same objects wherever it runs.
//!
//! # Semantics
//!
//! - Values are typed, as in JSON: a string literal matches only JSON strings, a number literal
//!   only JSON numbers (compared numerically, so `1` equals `1.0`), a boolean only booleans.
//!   Nothing matches JSON `null` or a missing field, except through `!`.
//! - `eq`, `co`, `sw` on strings are case-sensitive; `lt`, `le`, `gt`, `ge` on strings compare
//!   code points (Postgres `COLLATE "C"`), so the order does not depend on the database locale.
//! - `co` and `sw` with a number or boolean literal match nothing (the text form of a stored
//!   number differs between Postgres and serde_json, so there is no answer both agree on);
//!   `lt`, `le`, `gt`, `ge` with a boolean match nothing.
//! - Multi-valued (array) properties have scalar semantics: `roles eq "x"` does not match
//!   `"roles": ["x"]`. Matching any element would need an `OR` that stops Postgres from using
//!   the `userName`/`mail` expression indexes for the common scalar case.
//! - `pr` is true when the field exists and is not `null`.
//! - `!` is two-valued: `!(mail eq "x")` matches objects without `mail`.
//! - `_id` and `_rev` are the object's id and revision, both strings (as IDM shows them).
//!
//! The grammar has no `null` literal: CREST's has none either.

mod eval;
mod parse;

use std::fmt;

pub use parse::parse;

/// Longest filter accepted, in bytes: a query string longer than this is an attack or a bug.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// Deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 64;
/// Most leaves (comparisons, presence tests, `true`/`false`) accepted in one filter.
pub const MAX_TERMS: usize = 1000;

/// A parsed query filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    True,
    False,
    Not(Box<Filter>),
    /// All must match; an empty list matches everything.
    And(Vec<Filter>),
    /// One must match; an empty list matches nothing.
    Or(Vec<Filter>),
    Compare {
        field: Pointer,
        op: CompareOp,
        value: Literal,
    },
    /// The field exists and is not `null`.
    Present(Pointer),
}

/// The comparison operators of CREST filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    /// Contains (substring).
    Co,
    /// Starts with.
    Sw,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// The operator's name in filter syntax.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }

    /// Recognises an operator name, case-insensitively.
    pub fn from_name(name: &str) -> Option<CompareOp> {
        [
            CompareOp::Eq,
            CompareOp::Co,
            CompareOp::Sw,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ]
        .into_iter()
        .find(|op| op.as_str().eq_ignore_ascii_case(name))
    }
}

/// A value on the right of a comparison.
///
/// Numbers are `serde_json::Number`s: integers are exact; decimals are kept as the nearest
/// `f64`, whose shortest text form is what the user wrote for up to 15 significant digits.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(serde_json::Number),
    Bool(bool),
}

/// A field: a JSON pointer, kept as its decoded tokens (`/name/givenName` → `["name", "givenName"]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer(Vec<String>);

impl Pointer {
    /// A pointer from decoded tokens.
    pub fn from_tokens(tokens: Vec<String>) -> Pointer {
        Pointer(tokens)
    }

    /// The decoded tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.0
    }

    /// Parses `/a/b`, or `a/b` (CREST accepts pointers without the leading `/`), decoding `~1`
    /// to `/` and `~0` to `~`. The empty pointer (the whole object) is refused: filters and
    /// sort keys always name a field.
    pub fn parse(s: &str) -> Result<Pointer, FilterError> {
        let invalid = |reason: &str| FilterError::InvalidPointer {
            pointer: truncate_for_message(s),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(invalid("it is empty"));
        }
        if s.contains('\0') {
            return Err(invalid("it contains a NUL character"));
        }
        let body = s.strip_prefix('/').unwrap_or(s);
        let mut tokens = Vec::new();
        for raw in body.split('/') {
            let mut token = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    token.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => token.push('~'),
                    Some('1') => token.push('/'),
                    _ => return Err(invalid("'~' must be followed by 0 or 1")),
                }
            }
            tokens.push(token);
        }
        Ok(Pointer(tokens))
    }

    /// True when the pointer is exactly the top-level field `name` (`/name`).
    pub fn is_top_level(&self, name: &str) -> bool {
        matches!(self.0.as_slice(), [only] if only == name)
    }
}

/// `/a/b`, with `~0` and `~1` escapes. A token with white space or parentheses has no filter
/// syntax (CREST has none), so such a pointer does not parse back inside a filter.
impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for token in &self.0 {
            f.write_str("/")?;
            f.write_str(&token.replace('~', "~0").replace('/', "~1"))?;
        }
        Ok(())
    }
}

impl fmt::Display for Literal {
    /// Renders the literal in filter syntax (a JSON value), so that it parses back to itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Filter {
    /// Renders the filter in filter syntax, with parentheses only where precedence needs them;
    /// `parse` gives back an equal filter (for filters `parse` produced).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_filter(f, self, Context::Top)
    }
}

/// Where a sub-filter is written, which decides whether it needs parentheses.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    Top,
    Not,
    And,
    Or,
}

fn write_filter(f: &mut fmt::Formatter<'_>, filter: &Filter, context: Context) -> fmt::Result {
    let write_list =
        |f: &mut fmt::Formatter<'_>, parts: &[Filter], word: &str, inner: Context, parens: bool| {
            if parens {
                f.write_str("(")?;
            }
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                write_filter(f, part, inner)?;
            }
            if parens {
                f.write_str(")")?;
            }
            Ok(())
        };
    match filter {
        Filter::True => f.write_str("true"),
        Filter::False => f.write_str("false"),
        Filter::Not(inner) => {
            f.write_str("!")?;
            write_filter(f, inner, Context::Not)
        }
        // Empty lists have no syntax of their own: write their meaning.
        Filter::And(parts) if parts.is_empty() => f.write_str("true"),
        Filter::Or(parts) if parts.is_empty() => f.write_str("false"),
        Filter::And(parts) => {
            let parens = matches!(context, Context::Not | Context::And);
            write_list(f, parts, "and", Context::And, parens)
        }
        Filter::Or(parts) => {
            let parens = context != Context::Top;
            write_list(f, parts, "or", Context::Or, parens)
        }
        Filter::Compare { field, op, value } => write!(f, "{field} {} {value}", op.as_str()),
        Filter::Present(field) => write!(f, "{field} pr"),
    }
}

/// Why a filter or a pointer was refused. Messages say what is wrong and where, and quote the
/// input only briefly (a filter may carry a password value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("Invalid filter: the filter is empty")]
    Empty,
    #[error("Invalid filter: the filter is {len} bytes long, the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("Invalid filter: nested deeper than {max} levels at position {position}")]
    TooDeep { position: usize, max: usize },
    #[error("Invalid filter: more than {max} comparisons at position {position}")]
    TooManyTerms { position: usize, max: usize },
    /// `position` counts characters (not bytes) from 0.
    #[error("Invalid filter: {message} at position {position}")]
    Syntax { position: usize, message: String },
    #[error("Invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer { pointer: String, reason: String },
}

/// Quotes at most 40 characters of user input in an error message.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_parses_with_and_without_slash() {
        assert_eq!(Pointer::parse("userName").unwrap().tokens(), ["userName"]);
        assert_eq!(Pointer::parse("/userName").unwrap().tokens(), ["userName"]);
        assert_eq!(
            Pointer::parse("/name/givenName").unwrap().tokens(),
            ["name", "givenName"]
        );
        assert_eq!(
            Pointer::parse("name/givenName").unwrap().tokens(),
            ["name", "givenName"]
        );
        assert_eq!(Pointer::parse("/").unwrap().tokens(), [""]);
        assert_eq!(Pointer::parse("//a").unwrap().tokens(), ["", "a"]);
    }

    #[test]
    fn pointer_escapes_round_trip() {
        let p = Pointer::parse("/a~1b/c~0d/~01").unwrap();
        assert_eq!(p.tokens(), ["a/b", "c~d", "~1"]);
        assert_eq!(p.to_string(), "/a~1b/c~0d/~01");
        assert_eq!(Pointer::parse(&p.to_string()).unwrap(), p);
    }

    #[test]
    fn pointer_errors() {
        assert!(matches!(
            Pointer::parse(""),
            Err(FilterError::InvalidPointer { .. })
        ));
        assert!(matches!(
            Pointer::parse("/a~2"),
            Err(FilterError::InvalidPointer { .. })
        ));
        assert!(matches!(
            Pointer::parse("/a~"),
            Err(FilterError::InvalidPointer { .. })
        ));
        assert!(matches!(
            Pointer::parse("/a\0"),
            Err(FilterError::InvalidPointer { .. })
        ));
        let message = Pointer::parse("/x~").unwrap_err().to_string();
        assert_eq!(
            message,
            "Invalid JSON pointer \"/x~\": '~' must be followed by 0 or 1"
        );
    }

    #[test]
    fn is_top_level() {
        assert!(Pointer::parse("/_id").unwrap().is_top_level("_id"));
        assert!(Pointer::parse("_id").unwrap().is_top_level("_id"));
        assert!(!Pointer::parse("/_id/x").unwrap().is_top_level("_id"));
        assert!(!Pointer::parse("/x/_id").unwrap().is_top_level("_id"));
    }

    #[test]
    fn operator_names_are_case_insensitive() {
        assert_eq!(CompareOp::from_name("EQ"), Some(CompareOp::Eq));
        assert_eq!(CompareOp::from_name("sW"), Some(CompareOp::Sw));
        assert_eq!(CompareOp::from_name("pr"), None);
        assert_eq!(CompareOp::from_name("ne"), None);
    }

    #[test]
    fn long_input_is_truncated_in_messages() {
        let long = "x".repeat(100);
        let shown = truncate_for_message(&long);
        assert_eq!(shown.chars().count(), 41);
        assert_eq!(truncate_for_message("é"), "é");
    }
}
