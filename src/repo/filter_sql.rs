//! Compiles a [`Filter`] to a SQL condition on `managed_objects(object_type, id, rev, body)`.
//!
//! The SQL gives the same answers as [`Filter::matches`] (the rules are documented on
//! `crate::filter`). Two concerns shape it:
//!
//! - **Injection.** Every value and every nested pointer is a bound parameter. The only user
//!   text written into the SQL is a top-level field name matching `^[A-Za-z_][A-Za-z0-9_]*$`,
//!   which cannot close a quote.
//! - **Index use.** A top-level field is written `(body->>'userName')`, exactly the expression
//!   of the indexes `managed_objects_user_name` and `managed_objects_mail`, and a string `eq`
//!   is `(body->>'userName') = $1 AND …`, which the planner turns into an index scan.
//!
//! # SQL forms (`F` = `(body->>'f')` or `(body #>> $p::text[])`, `J` = the `jsonb` counterpart)
//!
//! | filter              | SQL                                                              |
//! |---------------------|------------------------------------------------------------------|
//! | `f eq "s"`          | `(F = $1 AND jsonb_typeof(J) = 'string')`                        |
//! | `f co "s"`          | `(strpos(F, $1) > 0 AND jsonb_typeof(J) = 'string')`             |
//! | `f sw "s"`          | `(starts_with(F, $1) AND jsonb_typeof(J) = 'string')`            |
//! | `f lt "s"` (le…)    | `(F COLLATE "C" < $1 AND jsonb_typeof(J) = 'string')`            |
//! | `f gt 1.5` (eq…)    | `(jsonb_typeof(J) = 'number' AND J > to_jsonb($1::numeric))`     |
//! | `f eq true`         | `(J = to_jsonb($1::boolean))`                                    |
//! | `f pr`              | `(J IS NOT NULL AND J <> 'null'::jsonb)`                         |
//! | `co`/`sw` number, any other op on a boolean | `FALSE`                                  |
//! | `!x`                | `NOT COALESCE((x), FALSE)`                                       |
//!
//! `strpos`/`starts_with` rather than `LIKE`, so `%`, `_` and `\` in values need no escaping.
//! Numbers are compared as `jsonb` (which compares `numeric`s exactly) after a type check, so
//! no cast can fail whatever order Postgres evaluates the conditions in; the literal is bound
//! as text and cast to `numeric`, which keeps it exact.
//!
//! `_id` is the `id` column and `_rev` the text of the `rev` column (IDM shows `_rev` as a
//! string): `_rev eq "3"` matches revision 3, `_rev eq 3` and `_rev eq "x"` match nothing.
//!
//! # NULL and NOT
//!
//! A comparison on a missing field is SQL `NULL`, not `FALSE`; in a `WHERE`, `AND` and `OR`
//! that is harmless (NULL rows are not returned, and Kleene logic gives the same answer as
//! reading NULL as FALSE). Only `NOT` would go wrong (`NOT NULL` is NULL, so `!(mail eq "x")`
//! would miss objects without `mail`), so `NOT` alone folds NULL to FALSE first. Positive
//! comparisons stay bare, and index-friendly. The expression may therefore be NULL where the
//! filter is false: use it in `WHERE`, or wrap it in `COALESCE(…, FALSE)` to select it.

use sqlx::{Postgres, QueryBuilder};

use crate::filter::{CompareOp, Filter, Literal, Pointer};

/// Pushes a boolean SQL expression for `filter` (no leading WHERE/AND), all values bound as
/// parameters. The expression is self-contained (parenthesized, or a single term), so it can
/// follow `AND` as is. It is NULL for some non-matching rows (see the module notes).
pub fn push_filter(qb: &mut QueryBuilder<Postgres>, filter: &Filter) {
    match filter {
        Filter::True => {
            qb.push("TRUE");
        }
        Filter::False => {
            qb.push("FALSE");
        }
        Filter::Not(inner) => {
            qb.push("NOT COALESCE((");
            push_filter(qb, inner);
            qb.push("), FALSE)");
        }
        Filter::And(parts) => push_list(qb, parts, " AND ", "TRUE"),
        Filter::Or(parts) => push_list(qb, parts, " OR ", "FALSE"),
        Filter::Present(field) => push_present(qb, &Field::of(field)),
        Filter::Compare { field, op, value } => push_compare(qb, &Field::of(field), *op, value),
    }
}

/// Pushes a jsonb-valued expression for the field (for ORDER BY / keyset paging);
/// `_id` → `to_jsonb(id)`, `_rev` → `to_jsonb(rev)` (numeric, so revisions sort in write order).
pub fn push_json_field(qb: &mut QueryBuilder<Postgres>, field: &Pointer) {
    Field::of(field).push_json(qb);
}

fn push_list(qb: &mut QueryBuilder<Postgres>, parts: &[Filter], joiner: &str, empty: &str) {
    if parts.is_empty() {
        qb.push(empty);
        return;
    }
    qb.push("(");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            qb.push(joiner);
        }
        push_filter(qb, part);
    }
    qb.push(")");
}

/// Where a pointer's value lives in the row.
enum Field<'a> {
    /// `_id`: the `id` column.
    Id,
    /// `_rev`: the `rev` column, as text.
    Rev,
    /// A top-level property whose name is a plain identifier, safe to write in the SQL.
    Named(&'a str),
    /// Anything else: the path is bound as a `text[]` parameter.
    Path(&'a [String]),
}

/// True for names that may be written into SQL text inside single quotes: exactly
/// `^[A-Za-z_][A-Za-z0-9_]*$`, so no quote, backslash or space can get in.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<'a> Field<'a> {
    fn of(pointer: &'a Pointer) -> Field<'a> {
        match pointer.tokens() {
            [name] if name == "_id" => Field::Id,
            [name] if name == "_rev" => Field::Rev,
            [name] if is_plain_name(name) => Field::Named(name),
            tokens => Field::Path(tokens),
        }
    }

    /// The value as text (`->>` / `#>>`); NULL when missing.
    fn push_text(&self, qb: &mut QueryBuilder<Postgres>) {
        match self {
            Field::Id => {
                qb.push("id");
            }
            Field::Rev => {
                qb.push("(rev::text)");
            }
            Field::Named(name) => {
                qb.push("(body->>'").push(*name).push("')");
            }
            Field::Path(tokens) => {
                qb.push("(body #>> ")
                    .push_bind(tokens.to_vec())
                    .push("::text[])");
            }
        }
    }

    /// The value as `jsonb` (`->` / `#>`); NULL when missing.
    fn push_json(&self, qb: &mut QueryBuilder<Postgres>) {
        match self {
            Field::Id => {
                qb.push("to_jsonb(id)");
            }
            Field::Rev => {
                qb.push("to_jsonb(rev)");
            }
            Field::Named(name) => {
                qb.push("(body->'").push(*name).push("')");
            }
            Field::Path(tokens) => {
                qb.push("(body #> ")
                    .push_bind(tokens.to_vec())
                    .push("::text[])");
            }
        }
    }

    /// `_id` and `_rev` are always strings; properties must be checked.
    fn is_always_string(&self) -> bool {
        matches!(self, Field::Id | Field::Rev)
    }
}

fn push_present(qb: &mut QueryBuilder<Postgres>, field: &Field<'_>) {
    if field.is_always_string() {
        qb.push("TRUE");
        return;
    }
    qb.push("(");
    field.push_json(qb);
    qb.push(" IS NOT NULL AND ");
    field.push_json(qb);
    qb.push(" <> 'null'::jsonb)");
}

fn push_compare(
    qb: &mut QueryBuilder<Postgres>,
    field: &Field<'_>,
    op: CompareOp,
    value: &Literal,
) {
    match value {
        Literal::String(s) => push_string_compare(qb, field, op, s),
        Literal::Number(n) => push_number_compare(qb, field, op, n),
        Literal::Bool(b) => push_bool_compare(qb, field, op, *b),
    }
}

fn push_string_compare(qb: &mut QueryBuilder<Postgres>, field: &Field<'_>, op: CompareOp, s: &str) {
    let value = s.to_owned();
    qb.push("(");
    match op {
        CompareOp::Eq => {
            // Bare `F = $1` first: this is the form the expression indexes answer.
            field.push_text(qb);
            qb.push(" = ").push_bind(value);
        }
        CompareOp::Co => {
            qb.push("strpos(");
            field.push_text(qb);
            qb.push(", ").push_bind(value).push(") > 0");
        }
        CompareOp::Sw => {
            qb.push("starts_with(");
            field.push_text(qb);
            qb.push(", ").push_bind(value).push(")");
        }
        // Code point order, whatever the database's locale (and like Rust's `str` order).
        CompareOp::Lt => push_text_ordering(qb, field, "<", value),
        CompareOp::Le => push_text_ordering(qb, field, "<=", value),
        CompareOp::Gt => push_text_ordering(qb, field, ">", value),
        CompareOp::Ge => push_text_ordering(qb, field, ">=", value),
    }
    if !field.is_always_string() {
        qb.push(" AND jsonb_typeof(");
        field.push_json(qb);
        qb.push(") = 'string'");
    }
    qb.push(")");
}

fn push_text_ordering(
    qb: &mut QueryBuilder<Postgres>,
    field: &Field<'_>,
    sql_op: &str,
    value: String,
) {
    field.push_text(qb);
    qb.push(" COLLATE \"C\" ")
        .push(sql_op)
        .push(" ")
        .push_bind(value);
}

fn push_number_compare(
    qb: &mut QueryBuilder<Postgres>,
    field: &Field<'_>,
    op: CompareOp,
    n: &serde_json::Number,
) {
    // `_id`/`_rev` are strings; `co`/`sw` have no number semantics (see `crate::filter`).
    let sql_op = match ordering_operator(op) {
        Some(sql_op) if !field.is_always_string() => sql_op,
        _ => {
            qb.push("FALSE");
            return;
        }
    };
    qb.push("(jsonb_typeof(");
    field.push_json(qb);
    qb.push(") = 'number' AND ");
    field.push_json(qb);
    qb.push(" ")
        .push(sql_op)
        .push(" to_jsonb(")
        .push_bind(n.to_string())
        .push("::numeric))");
}

fn push_bool_compare(qb: &mut QueryBuilder<Postgres>, field: &Field<'_>, op: CompareOp, b: bool) {
    if field.is_always_string() || op != CompareOp::Eq {
        qb.push("FALSE");
        return;
    }
    qb.push("(");
    field.push_json(qb);
    qb.push(" = to_jsonb(").push_bind(b).push("::boolean))");
}

/// The SQL operator of an equality or ordering comparison; `None` for `co` and `sw`.
fn ordering_operator(op: CompareOp) -> Option<&'static str> {
    match op {
        CompareOp::Eq => Some("="),
        CompareOp::Lt => Some("<"),
        CompareOp::Le => Some("<="),
        CompareOp::Gt => Some(">"),
        CompareOp::Ge => Some(">="),
        CompareOp::Co | CompareOp::Sw => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;

    /// The SQL text for a filter (values appear as `$n`).
    fn sql(filter: &str) -> String {
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_filter(&mut qb, &parse(filter).unwrap());
        qb.sql().as_str().to_owned()
    }

    #[test]
    fn top_level_string_eq_uses_the_index_expression() {
        assert_eq!(
            sql("/userName eq \"x\""),
            "((body->>'userName') = $1 AND jsonb_typeof((body->'userName')) = 'string')"
        );
        assert_eq!(
            sql("mail eq \"x\""),
            "((body->>'mail') = $1 AND jsonb_typeof((body->'mail')) = 'string')"
        );
    }

    #[test]
    fn other_pointers_are_bound() {
        assert_eq!(
            sql("/name/givenName eq \"x\""),
            "((body #>> $1::text[]) = $2 AND jsonb_typeof((body #> $3::text[])) = 'string')"
        );
        for field in [
            "/a'b", "/a-b", "/1a", "/é", "/a~1b", "/", "/_id/x", "/x/_id",
        ] {
            assert_eq!(
                sql(&format!("{field} pr")),
                "((body #> $1::text[]) IS NOT NULL AND (body #> $2::text[]) <> 'null'::jsonb)",
                "{field}"
            );
        }
    }

    #[test]
    fn plain_names_are_identifiers() {
        for name in ["userName", "mail", "_x", "a1", "A_B_9"] {
            assert!(is_plain_name(name), "{name}");
        }
        for name in ["", "1a", "a-b", "a'b", "a b", "é", "a\\", "a;", "ä"] {
            assert!(!is_plain_name(name), "{name}");
        }
    }

    #[test]
    fn user_input_never_reaches_the_sql_text() {
        for filter in [
            "userName eq \"'; drop table managed_objects; --\"",
            "userName eq \"x\\\" or true\"",
            "/x';drop/**/table/**/managed_objects;-- eq 1",
            "/a~1'b co 'x'",
        ] {
            let text = sql(filter);
            assert!(!text.contains("drop"), "{text}");
            assert!(!text.contains("or true"), "{text}");
            assert!(!text.contains("'b"), "{text}");
        }
    }

    #[test]
    fn id_and_rev_use_their_columns() {
        assert_eq!(sql("_id eq \"u1\""), "(id = $1)");
        assert_eq!(sql("/_id sw \"u\""), "(starts_with(id, $1))");
        assert_eq!(sql("_rev eq \"3\""), "((rev::text) = $1)");
        assert_eq!(sql("_rev eq 3"), "FALSE");
        assert_eq!(sql("_id pr"), "TRUE");
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_json_field(&mut qb, &Pointer::parse("_rev").unwrap());
        push_json_field(&mut qb, &Pointer::parse("_id").unwrap());
        assert_eq!(qb.sql(), "to_jsonb(rev)to_jsonb(id)");
    }

    #[test]
    fn json_field_forms() {
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_json_field(&mut qb, &Pointer::parse("/sn").unwrap());
        qb.push(", ");
        push_json_field(&mut qb, &Pointer::parse("/name/sn").unwrap());
        assert_eq!(qb.sql(), "(body->'sn'), (body #> $1::text[])");
    }

    #[test]
    fn forms_per_type() {
        assert_eq!(
            sql("a co \"%\""),
            "(strpos((body->>'a'), $1) > 0 AND jsonb_typeof((body->'a')) = 'string')"
        );
        assert_eq!(
            sql("a le \"m\""),
            "((body->>'a') COLLATE \"C\" <= $1 AND jsonb_typeof((body->'a')) = 'string')"
        );
        assert_eq!(
            sql("a gt 1.5"),
            "(jsonb_typeof((body->'a')) = 'number' AND (body->'a') > to_jsonb($1::numeric))"
        );
        assert_eq!(sql("a co 1"), "FALSE");
        assert_eq!(sql("a eq true"), "((body->'a') = to_jsonb($1::boolean))");
        assert_eq!(sql("a lt true"), "FALSE");
        assert_eq!(
            sql("a pr"),
            "((body->'a') IS NOT NULL AND (body->'a') <> 'null'::jsonb)"
        );
    }

    #[test]
    fn logic_forms() {
        assert_eq!(sql("true"), "TRUE");
        assert_eq!(sql("!false"), "NOT COALESCE((FALSE), FALSE)");
        assert_eq!(
            sql("a eq 1 and b pr or !c eq true"),
            "(((jsonb_typeof((body->'a')) = 'number' AND (body->'a') = to_jsonb($1::numeric)) AND \
             ((body->'b') IS NOT NULL AND (body->'b') <> 'null'::jsonb)) OR \
             NOT COALESCE((((body->'c') = to_jsonb($2::boolean))), FALSE))"
        );
        let mut qb = QueryBuilder::<Postgres>::new("");
        push_filter(&mut qb, &Filter::And(vec![]));
        qb.push(" ");
        push_filter(&mut qb, &Filter::Or(vec![]));
        assert_eq!(qb.sql(), "TRUE FALSE");
    }
}
