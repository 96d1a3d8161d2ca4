//! Parent-to-child subqueries in a SELECT list: `(SELECT … FROM PermissionSetAssignments …)`.
//!
//! The outer parse only marks where a subquery is and which relationship its FROM names: its
//! columns belong to the child object, which the caller picks from that name before parsing the
//! marked tokens with [`Query::parse_subquery`]. Positions stay those of the whole query text, so
//! errors inside a subquery point at the right column.

use std::ops::Range;

use super::{Column, Lexer, Parser, Query, Resolver, SoqlError, Tok};

/// A subquery of a SELECT list, not yet parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Subquery {
    /// How many plain fields the SELECT list names before it: its place in each record.
    pub at: usize,
    /// The relationship its FROM names, as written, and where (`None`: it has no FROM).
    pub relationship: Option<(String, usize)>,
    /// Byte position of its opening parenthesis.
    pub pos: usize,
    /// Its tokens, from its SELECT to its closing parenthesis included.
    toks: Range<usize>,
}

impl<C: Column> Parser<'_, C> {
    /// Whether a subquery opens here: `(` then `SELECT`.
    pub(super) fn at_subquery(&self) -> bool {
        *self.peek() == Tok::LParen
            && matches!(self.toks.get(self.at + 1), Some((Tok::Ident(k), _)) if k.eq_ignore_ascii_case("SELECT"))
    }

    /// Marks the subquery opening at the current `(` and steps past its closing `)`.
    pub(super) fn subquery(&mut self, at: usize) -> Result<Subquery, SoqlError> {
        let open = self.at;
        let pos = self.pos();
        let mut depth = 0usize;
        let mut relationship = None;
        let mut i = open;
        loop {
            match self.toks.get(i).map(|t| &t.0) {
                Some(Tok::LParen) => depth += 1,
                Some(Tok::RParen) => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Some(Tok::Ident(k))
                    if depth == 1 && relationship.is_none() && k.eq_ignore_ascii_case("FROM") =>
                {
                    if let Some((Tok::Ident(name), p)) = self.toks.get(i + 1) {
                        relationship = Some((name.clone(), *p));
                    }
                }
                Some(Tok::Eof) | None => {
                    self.at = i;
                    return Err(self.unexpected());
                }
                Some(_) => {}
            }
            i += 1;
        }
        self.at = i + 1;
        Ok(Subquery {
            at,
            relationship,
            pos,
            toks: open + 1..i + 1,
        })
    }
}

impl<C: Column> Query<C> {
    /// Parses subquery `sub` of `src` over the child relationship `relationship` of `parent`,
    /// whose columns `resolve` names.
    pub fn parse_subquery(
        src: &str,
        sub: &Subquery,
        relationship: &str,
        parent: &str,
        resolve: Resolver<'_, C>,
    ) -> Result<Query<C>, SoqlError> {
        let all = Lexer::run(src)?;
        let mut toks = all
            .get(sub.toks.clone())
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        // Just after the closing parenthesis, so an error at it shows it.
        let end = toks.last().map_or(src.len(), |t| t.1 + 1);
        toks.push((Tok::Eof, end));
        Parser {
            src,
            toks,
            at: 0,
            entity: relationship,
            parent: Some(parent),
            resolve,
        }
        .query()
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::{Field, idx};
    use crate::soql::{Query, resolve_user};

    #[test]
    fn marks_subqueries_in_select_order() {
        let src = "SELECT Id, (SELECT Id, Name FROM Things WHERE (A = 'x' OR B IN ('y')) LIMIT 2), Username FROM User";
        let q = Query::parse(src).unwrap();
        assert_eq!(q.fields, vec![idx::ID, idx::USERNAME]);
        let [sub] = q.subqueries.as_slice() else {
            panic!("{q:?}")
        };
        assert_eq!(sub.at, 1);
        assert_eq!(sub.pos, src.find('(').unwrap());
        let (name, pos) = sub.relationship.clone().unwrap();
        assert_eq!(name, "Things");
        assert_eq!(&src[pos..pos + 6], "Things");
        // The child's columns here are User's, only to exercise the sub-parser.
        let child = Query::<Field>::parse_subquery(src, sub, "things", "User", &resolve_user);
        let e = child.unwrap_err();
        assert_eq!(e.code, "INVALID_FIELD", "{e:?}");
        assert!(e.message.contains("No such column 'A'"), "{}", e.message);
    }

    #[test]
    fn sub_parser_checks_its_own_syntax_and_from() {
        let src = "SELECT Id, (SELECT Id FROM User.Things WHERE Username = 'a' ORDER BY Id LIMIT 3) FROM User";
        let q = Query::parse(src).unwrap();
        let sub = &q.subqueries[0];
        let child =
            Query::<Field>::parse_subquery(src, sub, "Things", "User", &resolve_user).unwrap();
        assert_eq!(child.fields, vec![idx::ID]);
        assert_eq!(child.limit, Some(3));
        assert_eq!(child.order.len(), 1);

        let src = "SELECT Id, (SELECT Id FROM Things WHERE) FROM User";
        let q = Query::parse(src).unwrap();
        let e =
            Query::<Field>::parse_subquery(src, &q.subqueries[0], "Things", "User", &resolve_user)
                .unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert!(
            e.message.ends_with("unexpected token: ')'"),
            "{}",
            e.message
        );
        assert!(e.message.contains("Column:40"), "{}", e.message);
    }

    #[test]
    fn unclosed_or_misplaced_subqueries_are_malformed() {
        for bad in [
            "SELECT Id, (SELECT Id FROM Things FROM User",
            "SELECT Id, (Id) FROM User",
            "SELECT COUNT(), (SELECT Id FROM Things) FROM User",
        ] {
            let e = Query::parse(bad).unwrap_err();
            assert_eq!(e.code, "MALFORMED_QUERY", "{bad}: {e:?}");
        }
    }
}
