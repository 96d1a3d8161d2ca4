//! `User`'s child relationship over `PermissionSetAssignment.AssigneeId`, named
//! `PermissionSetAssignments`, in a parent-to-child subquery:
//! `SELECT Id, (SELECT Id, PermissionSet.Name FROM PermissionSetAssignments WHERE …) FROM User`.
//!
//! A user's child rows come from the by-assignee index (a few rows per user), never from a scan
//! of every assignment, so a page of users with their assignments costs about what the page alone
//! does.

use std::sync::Arc;

use super::query::{push_row, value};
use super::{Col, Obj};
use crate::org::Org;
use crate::soql::{Query, SoqlError, Subquery};

/// The relationship's name, as `describe` of `User` would list it and as answers key it.
pub const PERMISSION_SET_ASSIGNMENTS: &str = "PermissionSetAssignments";

/// A parsed subquery over a user's permission set assignments.
#[derive(Debug)]
pub struct ChildQuery {
    /// How many plain fields are selected before it: its place in each user record.
    pub at: usize,
    query: Query<Col>,
    /// Its columns, shared with the cursors that page a user's remaining rows.
    pub cols: Arc<Vec<Col>>,
}

impl ChildQuery {
    /// Parses subquery `sub` of the `User` query `src`.
    pub fn parse(src: &str, sub: &Subquery) -> Result<ChildQuery, SoqlError> {
        let resolve = |name: &str| Col::resolve(Obj::PermissionSetAssignment, name);
        let Some((name, pos)) = &sub.relationship else {
            // No FROM: the sub-parser reports where the syntax breaks.
            return Err(syntax_error(src, sub));
        };
        let bare = match name.split_once('.') {
            Some((parent, rel)) if parent.eq_ignore_ascii_case("User") => rel,
            _ => name.as_str(),
        };
        if !bare.eq_ignore_ascii_case(PERMISSION_SET_ASSIGNMENTS) {
            return Err(unknown_relationship(src, name, *pos));
        }
        let query = Query::parse_subquery(src, sub, PERMISSION_SET_ASSIGNMENTS, "User", &resolve)?;
        if query.count_only {
            // The wording is the emulator's: COUNT() counts parents, not a relationship's rows.
            return Err(SoqlError::at(
                src,
                sub.pos,
                "MALFORMED_QUERY",
                "COUNT() is not supported in a parent-to-child subquery".to_owned(),
            ));
        }
        if let Some(nested) = query.subqueries.first() {
            return Err(refuse(src, nested));
        }
        let cols = Arc::new(query.fields.clone());
        Ok(ChildQuery {
            at: sub.at,
            query,
            cols,
        })
    }

    /// The rows of user `user` that the subquery returns: its WHERE, ORDER BY (else creation
    /// order), OFFSET and LIMIT, applied to that user's assignments alone.
    pub fn rows(&self, org: &Org, user: u32) -> Vec<u32> {
        let mut rows: Vec<u32> = org
            .access
            .assignments_of(user)
            .iter()
            .copied()
            .filter(|&r| self.query.matches(&|c| value(org, c, r)))
            .collect();
        if !self.query.order.is_empty() {
            rows.sort_by(|&x, &y| {
                self.query
                    .compare(&|c| value(org, c, x), &|c| value(org, c, y))
            });
        }
        self.query.window(rows)
    }
}

/// The answer to a subquery no modelled relationship serves (any subquery of an access object,
/// or one nested in a subquery).
pub fn refuse(src: &str, sub: &Subquery) -> SoqlError {
    match &sub.relationship {
        Some((name, pos)) => unknown_relationship(src, name, *pos),
        None => syntax_error(src, sub),
    }
}

/// Salesforce's answer to an unknown child relationship.
fn unknown_relationship(src: &str, name: &str, pos: usize) -> SoqlError {
    SoqlError::at(
        src,
        pos,
        "INVALID_TYPE",
        format!(
            "Didn't understand relationship '{name}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."
        ),
    )
}

/// The syntax error of a subquery without FROM, as the sub-parser finds it.
fn syntax_error(src: &str, sub: &Subquery) -> SoqlError {
    let resolve = |name: &str| Col::resolve(Obj::PermissionSetAssignment, name);
    match Query::parse_subquery(src, sub, "", "User", &resolve) {
        Err(e) => e,
        Ok(_) => SoqlError::at(
            src,
            sub.pos,
            "MALFORMED_QUERY",
            "unexpected token: '('".to_owned(),
        ),
    }
}

/// Appends a user's subquery result: `null` when no row matches, else
/// `{"totalSize":n,"done":…,"nextRecordsUrl"?:…,"records":[…]}` with the first `inline` of its
/// `rows`; `next` is the URL that pages the rest (required when they do not all fit).
pub fn push_result(
    out: &mut String,
    version: &str,
    org: &Org,
    rows: &[u32],
    inline: usize,
    cols: &[Col],
    next: Option<&str>,
) {
    if rows.is_empty() {
        out.push_str("null");
        return;
    }
    crate::query::push_result_head(out, rows.len(), next);
    for (n, &row) in rows.iter().take(inline).enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_row(out, version, org, Obj::PermissionSetAssignment, row, cols);
    }
    out.push_str("]}");
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::AccessConfig;
    use crate::access::Owner;

    fn org() -> Org {
        let access = AccessConfig {
            assignments_per_user: 3,
            ..AccessConfig::default()
        };
        let now = chrono::Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        crate::seed::generate_with(40, 7, now, &access)
    }

    fn child(src: &str) -> Result<ChildQuery, SoqlError> {
        let q = Query::parse(src)?;
        let sub = q.subqueries.first().expect("a subquery");
        ChildQuery::parse(src, sub)
    }

    /// A user's assignments to sets no profile owns, in creation order: what the service asks.
    fn granted(org: &Org, u: u32) -> Vec<u32> {
        org.access
            .assignments_of(u)
            .iter()
            .copied()
            .filter(|&r| {
                let ps = org.access.assignment(r).unwrap().permission_set;
                !matches!(
                    org.access.permission_sets[ps as usize].owner,
                    Owner::Profile(_)
                )
            })
            .collect()
    }

    #[test]
    fn rows_are_one_users_filtered_assignments() {
        let org = org();
        let c = child(
            "SELECT Id, Username, (SELECT Id, PermissionSetGroupId, PermissionSet.Name, PermissionSetGroup.DeveloperName FROM PermissionSetAssignments WHERE PermissionSet.IsOwnedByProfile = false) FROM User",
        )
        .unwrap();
        assert_eq!(c.at, 2);
        assert_eq!(c.cols.len(), 4);
        let mut with = 0;
        for u in 0..40u32 {
            let rows = c.rows(&org, u);
            assert_eq!(rows, granted(&org, u), "user {u}");
            with += usize::from(!rows.is_empty());
            // The profile's own assignment is there, and filtered out.
            assert_eq!(org.access.assignments_of(u).len(), rows.len() + 1);
        }
        assert_eq!(with, 39, "all but the Automated Process user hold 3");
    }

    #[test]
    fn order_by_and_limit_apply_per_parent() {
        let org = org();
        let c = child(
            "SELECT Id, (SELECT Id, PermissionSet.Name FROM User.permissionsetassignments WHERE PermissionSet.IsOwnedByProfile = false ORDER BY PermissionSet.Name DESC LIMIT 2) FROM User",
        )
        .unwrap();
        let name = |r: u32| {
            let ps = org.access.assignment(r).unwrap().permission_set;
            org.access.permission_sets[ps as usize].name.to_lowercase()
        };
        for u in 1..40u32 {
            let mut all: Vec<String> = granted(&org, u).into_iter().map(name).collect();
            if all.is_empty() {
                continue;
            }
            all.sort();
            all.reverse();
            all.truncate(2);
            let got: Vec<String> = c.rows(&org, u).into_iter().map(name).collect();
            assert_eq!(got, all, "user {u}");
        }
    }

    #[test]
    fn unknown_nested_and_counting_subqueries_are_refused() {
        let e = child("SELECT Id, (SELECT Id FROM Assignments) FROM User")
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_TYPE");
        assert!(
            e.message.contains(
                "Didn't understand relationship 'Assignments' in FROM part of query call."
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("Column:28"), "{}", e.message);
        let e = child("SELECT Id, (SELECT Id FROM Account.PermissionSetAssignments) FROM User")
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_TYPE");
        let e = child("SELECT Id, (SELECT Id, Nope FROM PermissionSetAssignments) FROM User")
            .err()
            .unwrap();
        assert_eq!(e.code, "INVALID_FIELD");
        assert!(
            e.message
                .contains("No such column 'Nope' on entity 'PermissionSetAssignment'"),
            "{}",
            e.message
        );
        let e = child(
            "SELECT Id, (SELECT Id, (SELECT Id FROM Things) FROM PermissionSetAssignments) FROM User",
        )
        .err()
        .unwrap();
        assert_eq!(e.code, "INVALID_TYPE");
        let e = child("SELECT Id, (SELECT COUNT() FROM PermissionSetAssignments) FROM User")
            .err()
            .unwrap();
        assert_eq!(e.code, "MALFORMED_QUERY");
        let e = child("SELECT Id, (SELECT Id WHERE Id = null) FROM User")
            .err()
            .unwrap();
        assert_eq!(e.code, "MALFORMED_QUERY");
        let e = child(
            "SELECT Id, (SELECT Id FROM PermissionSetAssignments WHERE AssigneeId = 'x') FROM User",
        )
        .err()
        .unwrap();
        assert_eq!(e.code, "INVALID_QUERY_FILTER_OPERATOR");
    }

    #[test]
    fn results_are_null_without_rows_and_nested_records_with() {
        let org = org();
        let c = child(
            "SELECT Id, (SELECT Id, PermissionSet.Name FROM PermissionSetAssignments WHERE PermissionSet.IsOwnedByProfile = false) FROM User",
        )
        .unwrap();
        let mut out = String::new();
        push_result(&mut out, "v62.0", &org, &[], 200, &c.cols, None);
        assert_eq!(out, "null");
        let rows = c.rows(&org, 1);
        let mut out = String::new();
        push_result(&mut out, "v62.0", &org, &rows, 2, &c.cols, Some("/next"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["totalSize"], 3);
        assert_eq!(v["done"], false);
        assert_eq!(v["nextRecordsUrl"], "/next");
        let records = v["records"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        let first = org.access.assignment(rows[0]).unwrap();
        assert_eq!(records[0]["Id"], first.id.as_str());
        assert_eq!(records[0]["attributes"]["type"], "PermissionSetAssignment");
        assert_eq!(
            records[0]["PermissionSet"]["Name"],
            org.access.permission_sets[first.permission_set as usize]
                .name
                .as_str()
        );
    }
}
