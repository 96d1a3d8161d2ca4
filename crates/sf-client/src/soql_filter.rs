//! An IDM query filter as a SOQL `WHERE` clause: the one translation recon's `sourceQuery`, its
//! liveSync id lists and the worker's correlation queries share.
//!
//! Filters: `eq`, `co`, `sw`, `lt`, `le`, `gt`, `ge`, `pr`, `and`, `or`, `!`, `true`, `false` on
//! top-level fields. As in SOQL, text comparisons are case-insensitive (IDM's are not): the
//! difference is documented, not hidden. String values go through the one escaper
//! ([`crate::soql`]).

use crate::soql::{self as sf, LikeMatch, LiteralError, is_field_name};
use idm_core::filter::{CompareOp, Filter, Literal};

/// Why a filter has no SOQL translation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The filter names something SOQL cannot query: the same for every value.
    #[error("field /{0} cannot be queried in Salesforce (only top-level fields)")]
    Field(String),
    /// This value cannot be written in this comparison (a range comparison with a string
    /// longer than SOQL accepts): other values of the same filter translate.
    #[error("{field}: {source}")]
    Value {
        field: String,
        #[source]
        source: LiteralError,
    },
}

/// A SOQL condition equivalent to `filter`; `None` for `true`. String values go through the
/// Salesforce client's one escaper ([`crate::soql`]).
pub fn where_clause(filter: &Filter) -> Result<Option<String>, TranslateError> {
    if *filter == Filter::True {
        return Ok(None);
    }
    let mut out = String::new();
    push(&mut out, filter)?;
    Ok(Some(out))
}

fn push(out: &mut String, filter: &Filter) -> Result<(), TranslateError> {
    match filter {
        Filter::True => out.push_str(sf::MATCHES_ALL),
        Filter::False => out.push_str(sf::MATCHES_NOTHING),
        Filter::Not(inner) => {
            out.push_str("(NOT ");
            push(out, inner)?;
            out.push(')');
        }
        Filter::And(parts) | Filter::Or(parts) => {
            if let Filter::Or(parts) = filter
                && let Some((name, values)) = same_field_equalities(parts)?
            {
                // liveSync's `_id eq "a" or _id eq "b" …`: one IN list, shorter than the ORs.
                out.push('(');
                out.push_str(&sf::in_list(name, values));
                out.push(')');
                return Ok(());
            }
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            if parts.is_empty() {
                return push(
                    out,
                    if matches!(filter, Filter::And(_)) {
                        &Filter::True
                    } else {
                        &Filter::False
                    },
                );
            }
            out.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(joiner);
                }
                push(out, p)?;
            }
            out.push(')');
        }
        Filter::Present(field) => {
            out.push_str(&format!("{} != null", field_name(field.tokens())?));
        }
        Filter::Compare { field, op, value } => {
            let name = field_name(field.tokens())?;
            let text = match (op, value) {
                (CompareOp::Eq, Literal::String(s)) => sf::equals(name, s),
                (CompareOp::Co | CompareOp::Sw, value) => {
                    let how = if *op == CompareOp::Co {
                        LikeMatch::Contains
                    } else {
                        LikeMatch::StartsWith
                    };
                    sf::like(name, &plain(value), how)
                }
                (op, value) => {
                    let symbol = match op {
                        CompareOp::Lt => "<",
                        CompareOp::Le => "<=",
                        CompareOp::Gt => ">",
                        CompareOp::Ge => ">=",
                        _ => "=",
                    };
                    let literal = match value {
                        Literal::String(s) => {
                            sf::quote(s).map_err(|source| TranslateError::Value {
                                field: name.to_owned(),
                                source,
                            })?
                        }
                        other => plain(other),
                    };
                    format!("{name} {symbol} {literal}")
                }
            };
            out.push_str(&text);
        }
    }
    Ok(())
}

/// The field and values of an `or` of two or more `eq` comparisons of one field with strings.
fn same_field_equalities(parts: &[Filter]) -> Result<Option<(&str, Vec<&str>)>, TranslateError> {
    let mut field = None;
    let mut values = Vec::with_capacity(parts.len());
    for p in parts {
        let Filter::Compare {
            field: f,
            op: CompareOp::Eq,
            value: Literal::String(s),
        } = p
        else {
            return Ok(None);
        };
        match field {
            None => field = Some(f.tokens()),
            Some(seen) if seen == f.tokens() => {}
            Some(_) => return Ok(None),
        }
        values.push(s.as_str());
    }
    match field {
        Some(tokens) if values.len() >= 2 => Ok(Some((field_name(tokens)?, values))),
        _ => Ok(None),
    }
}

/// A number or boolean as SOQL writes it (digits, sign, `.`, `e`, or `true`/`false`: nothing
/// to escape); a string as it is.
fn plain(value: &Literal) -> String {
    match value {
        Literal::String(s) => s.clone(),
        Literal::Number(n) => n.to_string(),
        Literal::Bool(b) => b.to_string(),
    }
}

fn field_name(tokens: &[String]) -> Result<&str, TranslateError> {
    match tokens {
        [name] if name == "_id" => Ok("Id"),
        [name] if is_field_name(name) => Ok(name),
        _ => Err(TranslateError::Field(tokens.join("/"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use idm_core::filter;

    fn soql(text: &str) -> String {
        where_clause(&filter::parse(text).unwrap())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn translates_filters() {
        assert_eq!(soql("Username eq \"a'b\""), "Username = 'a\\'b'");
        assert_eq!(
            soql("IsActive eq true and Email sw \"x_\""),
            "(IsActive = true AND Email LIKE 'x\\_%')"
        );
        assert_eq!(soql("!(Email pr)"), "(NOT Email != null)");
        assert_eq!(where_clause(&Filter::True).unwrap(), None);
        assert!(matches!(
            where_clause(&filter::parse("/a/b eq 1").unwrap()),
            Err(TranslateError::Field(_))
        ));
    }

    #[test]
    fn values_go_through_the_client_escaper() {
        assert_eq!(
            soql("Username eq \"a\\\\b\\n\\u0001'\""),
            r"Username = 'a\\b\n\u0001\''"
        );
        let long = "x".repeat(sf::MAX_WHERE_STRING + 1);
        assert_eq!(
            soql(&format!("Username eq \"{long}\" or Email eq \"a\"")),
            "(Id = null OR Email = 'a')"
        );
        assert!(matches!(
            where_clause(&filter::parse(&format!("Username gt \"{long}\"")).unwrap()),
            Err(TranslateError::Value { .. })
        ));
    }

    #[test]
    fn an_or_of_equalities_on_one_field_is_an_in_list() {
        assert_eq!(
            soql("_id eq \"005A\" or _id eq \"005B\""),
            "(Id IN ('005A', '005B'))"
        );
        assert_eq!(
            soql("(IsActive eq true) and (_id eq \"005A\" or _id eq \"005B\")"),
            "(IsActive = true AND (Id IN ('005A', '005B')))"
        );
        // Mixed fields or operators stay ORs.
        assert_eq!(
            soql("Email eq \"a\" or Username eq \"b\""),
            "(Email = 'a' OR Username = 'b')"
        );
        assert_eq!(soql("_id eq \"005A\""), "Id = '005A'");
    }
}
