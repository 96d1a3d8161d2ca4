//! An IDM query filter as a SOQL `WHERE` clause: the one translation recon's `sourceQuery`, its
//! liveSync id lists, the worker's correlation queries and the `/system` query endpoint share.
//!
//! Filters: `eq`, `co`, `sw`, `lt`, `le`, `gt`, `ge`, `pr`, `and`, `or`, `!`, `true`, `false` on
//! top-level fields. How a filter's field names become Salesforce fields is the caller's
//! [`Fields`]: recon and correlation name Salesforce fields themselves ([`NativeNames`]), the
//! `/system` endpoint names the provisioner's attributes, whose types it also checks. As in SOQL,
//! text comparisons are case-insensitive (IDM's are not): the difference is documented, not
//! hidden. String values go through the one escaper ([`crate::soql`]).

use crate::soql::{self as sf, LikeMatch, LiteralError, is_field_name};
use idm_core::filter::{CompareOp, Filter, Literal, Pointer};

/// Why a filter has no SOQL translation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The filter names something SOQL cannot query: the same for every value.
    #[error("field /{0} cannot be queried in Salesforce (only top-level fields)")]
    Field(String),
    #[error("'{field}' is not an attribute of {object}: it cannot be used in a query")]
    UnknownField { field: String, object: String },
    #[error("'{0}': system object attributes are top-level; nested fields cannot be queried")]
    NestedField(String),
    #[error("attribute '{0}' has a nativeName that is not a Salesforce field name")]
    BadNativeName(String),
    /// The value does not fit the attribute's type, or the operator does not apply to it.
    #[error("'{field}' is a {kind} attribute: {problem}")]
    Type {
        field: String,
        kind: String,
        problem: String,
    },
    /// This value cannot be written in this comparison (a range comparison with a string
    /// longer than SOQL accepts): other values of the same filter translate.
    #[error("{field}: {source}")]
    Value {
        field: String,
        #[source]
        source: LiteralError,
    },
}

impl TranslateError {
    /// Whether only this filter's values are at fault (the same filter with other values
    /// translates), rather than its fields or shape.
    pub fn is_about_a_value(&self) -> bool {
        matches!(self, TranslateError::Value { .. })
    }
}

/// What a field is, as far as SOQL literals are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Id,
    Text,
    Boolean,
    Number,
    /// Compound values (`Address`): selectable, not filterable.
    Compound,
    /// Not known: every literal is written as it comes (recon's own field names).
    Untyped,
}

/// A filter field resolved to its Salesforce field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoqlField {
    /// As the filter named it, for messages.
    pub name: String,
    pub native: String,
    pub kind: FieldKind,
    /// The type as configured, for messages.
    pub kind_name: String,
}

/// How a filter's field names become Salesforce fields.
pub trait Fields {
    fn resolve(&self, pointer: &Pointer) -> Result<SoqlField, TranslateError>;
}

/// Field names that are Salesforce field names already (`_id` is `Id`), of no known type:
/// every literal is written as it comes.
pub struct NativeNames;

impl Fields for NativeNames {
    fn resolve(&self, pointer: &Pointer) -> Result<SoqlField, TranslateError> {
        let tokens = pointer.tokens();
        let native = match tokens {
            [name] if name == "_id" => "Id",
            [name] if is_field_name(name) => name.as_str(),
            _ => return Err(TranslateError::Field(tokens.join("/"))),
        };
        Ok(SoqlField {
            name: native.to_owned(),
            native: native.to_owned(),
            kind: FieldKind::Untyped,
            kind_name: String::new(),
        })
    }
}

/// A SOQL condition equivalent to `filter` over Salesforce field names; `None` for `true`.
pub fn where_clause(filter: &Filter) -> Result<Option<String>, TranslateError> {
    where_clause_in(filter, &NativeNames)
}

/// A SOQL condition equivalent to `filter`, its fields resolved by `fields`; `None` for
/// "everything".
pub fn where_clause_in(
    filter: &Filter,
    fields: &dyn Fields,
) -> Result<Option<String>, TranslateError> {
    if *filter == Filter::True || matches!(filter, Filter::And(items) if items.is_empty()) {
        return Ok(None);
    }
    let mut out = String::new();
    push(&mut out, filter, fields)?;
    Ok(Some(out))
}

fn push(out: &mut String, filter: &Filter, fields: &dyn Fields) -> Result<(), TranslateError> {
    match filter {
        Filter::True => out.push_str(sf::MATCHES_ALL),
        Filter::False => out.push_str(sf::MATCHES_NOTHING),
        Filter::And(parts) if parts.is_empty() => out.push_str(sf::MATCHES_ALL),
        Filter::Or(parts) if parts.is_empty() => out.push_str(sf::MATCHES_NOTHING),
        Filter::Not(inner) => {
            out.push_str("(NOT (");
            push(out, inner, fields)?;
            out.push_str("))");
        }
        // Always parenthesised: SOQL refuses AND and OR mixed at one level.
        Filter::And(parts) | Filter::Or(parts) => {
            if let Filter::Or(parts) = filter
                && let Some((field, values)) = same_field_equalities(parts, fields)?
            {
                // liveSync's `_id eq "a" or _id eq "b" …`: one IN list, shorter than the ORs.
                out.push('(');
                out.push_str(&sf::in_list(&field.native, values));
                out.push(')');
                return Ok(());
            }
            let joiner = if matches!(filter, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            out.push('(');
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    out.push_str(joiner);
                }
                push(out, p, fields)?;
            }
            out.push(')');
        }
        Filter::Present(pointer) => {
            let field = fields.resolve(pointer)?;
            out.push_str(&field.native);
            out.push_str(" != null");
        }
        Filter::Compare { field, op, value } => {
            let field = fields.resolve(field)?;
            push_comparison(out, &field, *op, value)?;
        }
    }
    Ok(())
}

fn push_comparison(
    out: &mut String,
    field: &SoqlField,
    op: CompareOp,
    value: &Literal,
) -> Result<(), TranslateError> {
    let type_error = |problem: String| TranslateError::Type {
        field: field.name.clone(),
        kind: field.kind_name.clone(),
        problem,
    };
    let like = match op {
        CompareOp::Co => Some(LikeMatch::Contains),
        CompareOp::Sw => Some(LikeMatch::StartsWith),
        _ => None,
    };
    let native = field.native.as_str();
    let text = match (field.kind, value) {
        (FieldKind::Id, Literal::String(_)) if like.is_some() => {
            return Err(type_error(format!(
                "'{}' (contains, starts with) is not supported on ids",
                op.as_str()
            )));
        }
        (FieldKind::Text | FieldKind::Id | FieldKind::Untyped, Literal::String(s)) => {
            match (op, like) {
                (CompareOp::Eq, _) => sf::equals(native, s),
                (_, Some(how)) => sf::like(native, s, how),
                _ => ranged(native, op, &quoted(native, s)?),
            }
        }
        (FieldKind::Untyped, other) => match like {
            Some(how) => sf::like(native, &plain(other), how),
            None => ranged(native, op, &plain(other)),
        },
        (FieldKind::Boolean, Literal::Bool(b)) if op == CompareOp::Eq => {
            format!("{native} = {b}")
        }
        (FieldKind::Boolean, Literal::Bool(_)) => {
            return Err(type_error("only 'eq' compares booleans".into()));
        }
        (FieldKind::Number, Literal::Number(n)) if like.is_none() => {
            ranged(native, op, &n.to_string())
        }
        (FieldKind::Compound, _) => return Err(type_error("it cannot be used in a filter".into())),
        (FieldKind::Text | FieldKind::Id, _) => {
            return Err(type_error("compare it with a string".into()));
        }
        (FieldKind::Boolean, _) => return Err(type_error("compare it with true or false".into())),
        (FieldKind::Number, _) => {
            return Err(type_error(format!(
                "compare it with a number using eq, gt, ge, lt or le, not {}",
                op.as_str()
            )));
        }
    };
    out.push_str(&text);
    Ok(())
}

/// `field <op> literal` for `eq` and the range operators.
fn ranged(native: &str, op: CompareOp, literal: &str) -> String {
    let symbol = match op {
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        _ => "=",
    };
    format!("{native} {symbol} {literal}")
}

fn quoted(native: &str, s: &str) -> Result<String, TranslateError> {
    sf::quote(s).map_err(|source| TranslateError::Value {
        field: native.to_owned(),
        source,
    })
}

/// The field and values of an `or` of two or more `eq` comparisons of one text field with
/// strings.
fn same_field_equalities<'a>(
    parts: &'a [Filter],
    fields: &dyn Fields,
) -> Result<Option<(SoqlField, Vec<&'a str>)>, TranslateError> {
    let mut pointer = None;
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
        match pointer {
            None => pointer = Some(f),
            Some(seen) if seen == f => {}
            Some(_) => return Ok(None),
        }
        values.push(s.as_str());
    }
    let Some(pointer) = pointer.filter(|_| values.len() >= 2) else {
        return Ok(None);
    };
    let field = fields.resolve(pointer)?;
    Ok(matches!(
        field.kind,
        FieldKind::Text | FieldKind::Id | FieldKind::Untyped
    )
    .then_some((field, values)))
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
        assert_eq!(soql("!(Email pr)"), "(NOT (Email != null))");
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
