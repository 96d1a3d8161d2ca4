//! Id ranges: the bounds `col >= 'id'`, `col < 'id'`, … put on an id column, so a store can
//! answer them from an ordered index. Salesforce's PK chunking splits a table this way
//! (`WHERE Id >= '…' AND Id < '…'`), with bounds taken from ids in `ORDER BY Id` order; the
//! bounds here are canonical 15-char ids, whose byte order is that order.

use std::ops::Bound;

use super::{CmpOp, Column, Expr, Lit, Query};

/// Lower and upper bounds on canonical 15-char ids.
pub type IdRange<'q> = (Bound<&'q str>, Bound<&'q str>);

impl<C: Column> Query<C> {
    /// The range a top-level `col` comparison with an id (`>`, `>=`, `<`, `<=`, `=`; alone or
    /// in a top-level AND) restricts `col` to; `None` without one. The WHERE clause must still
    /// be evaluated: the range only narrows which records to read.
    pub fn id_range(&self, col: C) -> Option<IdRange<'_>> {
        let conjuncts = match self.filter.as_ref()? {
            Expr::And(items) => items.as_slice(),
            e => std::slice::from_ref(e),
        };
        let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
        for e in conjuncts {
            let Expr::Cmp {
                field,
                op,
                lit: Lit::Id(id),
            } = e
            else {
                continue;
            };
            if *field != col {
                continue;
            }
            let id = id.as_str();
            match op {
                CmpOp::Gt => lo = tighter(lo, Bound::Excluded(id), true),
                CmpOp::Ge => lo = tighter(lo, Bound::Included(id), true),
                CmpOp::Lt => hi = tighter(hi, Bound::Excluded(id), false),
                CmpOp::Le => hi = tighter(hi, Bound::Included(id), false),
                CmpOp::Eq => {
                    lo = tighter(lo, Bound::Included(id), true);
                    hi = tighter(hi, Bound::Included(id), false);
                }
                CmpOp::Ne => {}
            }
        }
        let unbounded = matches!((lo, hi), (Bound::Unbounded, Bound::Unbounded));
        (!unbounded).then_some((lo, hi))
    }
}

fn value(b: Bound<&str>) -> Option<&str> {
    match b {
        Bound::Included(v) | Bound::Excluded(v) => Some(v),
        Bound::Unbounded => None,
    }
}

/// The tighter of two lower (`lower`) or upper bounds; at equal values the exclusive one.
fn tighter<'q>(a: Bound<&'q str>, b: Bound<&'q str>, lower: bool) -> Bound<&'q str> {
    let (Some(x), Some(y)) = (value(a), value(b)) else {
        return if value(a).is_some() { a } else { b };
    };
    match x.cmp(y) {
        std::cmp::Ordering::Equal if matches!(b, Bound::Excluded(_)) => b,
        std::cmp::Ordering::Equal => a,
        std::cmp::Ordering::Less => {
            if lower {
                b
            } else {
                a
            }
        }
        std::cmp::Ordering::Greater => {
            if lower {
                a
            } else {
                b
            }
        }
    }
}

/// Whether any id fits `range`. `BTreeMap::range` panics on an inverted range, which a query
/// such as `Id > 'b' AND Id < 'a'` asks for: check with this first.
pub fn is_satisfiable(range: &IdRange<'_>) -> bool {
    match *range {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::idx;

    const A: &str = "005000000000001";
    const B: &str = "005000000000002";

    fn range(soql: &str) -> Option<(Bound<String>, Bound<String>)> {
        let q = Query::parse(soql).unwrap();
        q.id_range(idx::ID)
            .map(|(l, h)| (l.map(str::to_owned), h.map(str::to_owned)))
    }

    #[test]
    fn bounds_come_from_top_level_comparisons() {
        assert_eq!(
            range(&format!(
                "SELECT Id FROM User WHERE Id >= '{A}' AND Id < '{B}'"
            )),
            Some((Bound::Included(A.into()), Bound::Excluded(B.into())))
        );
        assert_eq!(
            range(&format!(
                "SELECT Id FROM User WHERE Id > '{A}' AND Id >= '{A}' AND Id <= '{B}' AND Id <= '{A}'"
            )),
            Some((Bound::Excluded(A.into()), Bound::Included(A.into())))
        );
        assert_eq!(
            range(&format!("SELECT Id FROM User WHERE Id = '{B}'")),
            Some((Bound::Included(B.into()), Bound::Included(B.into())))
        );
        // An 18-char literal is reduced to its canonical 15 chars.
        let b18 = crate::ids::to_18(B).unwrap().to_lowercase();
        assert_eq!(
            range(&format!("SELECT Id FROM User WHERE Id <= '{b18}'")),
            Some((Bound::Unbounded, Bound::Included(B.into())))
        );
        assert_eq!(
            range(&format!(
                "SELECT Id FROM User WHERE Id > '{A}' OR Id < '{B}'"
            )),
            None
        );
        assert_eq!(
            range(&format!("SELECT Id FROM User WHERE Id != '{A}'")),
            None
        );
        assert_eq!(range("SELECT Id FROM User WHERE IsActive = true"), None);
    }

    #[test]
    fn inverted_ranges_are_unsatisfiable() {
        assert!(is_satisfiable(&(Bound::Included(A), Bound::Included(A))));
        assert!(!is_satisfiable(&(Bound::Included(A), Bound::Excluded(A))));
        assert!(!is_satisfiable(&(Bound::Excluded(A), Bound::Excluded(A))));
        assert!(!is_satisfiable(&(Bound::Included(B), Bound::Included(A))));
        assert!(is_satisfiable(&(Bound::Unbounded, Bound::Excluded(A))));
    }
}

#[cfg(test)]
mod org_tests {
    use chrono::TimeZone;

    use crate::org::Org;
    use crate::schema::idx;
    use crate::soql::Query;

    #[test]
    fn user_ranges_follow_id_order_not_creation_order() {
        let now = chrono::Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let made = crate::seed::generate(30, 5, now);
        // The same users created in the reverse order of their ids.
        let users: Vec<_> = made.users.iter().rev().cloned().collect();
        let org = Org::from_parts(made.org_id.clone(), made.profiles.clone(), users, 0);
        let id = |i: u32| org.users[i as usize][idx::ID].as_str().unwrap().to_owned();
        let mut ids: Vec<String> = (0..30).map(id).collect();
        ids.sort();
        let ordered: Vec<String> = Query::parse("SELECT Id FROM User ORDER BY Id")
            .unwrap()
            .run(&org)
            .into_iter()
            .map(id)
            .collect();
        assert_eq!(ordered, ids);

        let src = format!(
            "SELECT Id FROM User WHERE Id >= '{}' AND Id < '{}'",
            ids[5].to_lowercase(),
            &ids[15][..15]
        );
        let got: Vec<String> = Query::parse(&src)
            .unwrap()
            .run(&org)
            .into_iter()
            .map(id)
            .collect();
        // Creation order without ORDER BY: here, descending ids.
        let mut want = ids[5..15].to_vec();
        want.reverse();
        assert_eq!(got, want);
        let got: Vec<String> = Query::parse(&format!("{src} ORDER BY Id"))
            .unwrap()
            .run(&org)
            .into_iter()
            .map(id)
            .collect();
        assert_eq!(got, ids[5..15].to_vec());
    }
}
