//! Correlating managed users with Salesforce users: the mapping's `correlationQuery` (or
//! script) for each user, the filters of many users OR-ed into a few SOQL queries, and each
//! user's matches decided by evaluating its own filter on what came back.

use std::collections::{HashMap, HashSet};

use futures_util::TryStreamExt;
use serde_json::{Map, Value};

use crate::filter::Filter;
use crate::mapping::{CorrelationRequest, DEFAULT_LINK_QUALIFIER, Mapping, SyncContext};
use crate::repo::links::{self, Side};
use crate::repo::{Pool, RepoError};
use crate::salesforce::access::is_access_attribute;
use crate::salesforce::soql::is_field_name;
use crate::salesforce::soql_filter;
use crate::salesforce::{SalesforceClient, SalesforceError};

/// Users correlated per SOQL query at most.
const CORRELATION_CHUNK: usize = 100;

/// Characters of correlation conditions per query at most: with the field list, a query stays
/// well under Salesforce's 100,000-character statement limit whatever the values (each string
/// is at most 4,000 characters once escaped), so long values cannot make a batch's query fail.
const CORRELATION_WHERE_CHARS: usize = 60_000;

/// The Salesforce users one managed user correlates with.
#[derive(Debug)]
pub struct Matches {
    pub ids: Vec<String>,
    /// The single match is linked already (to another managed user): set by the caller.
    pub linked_elsewhere: bool,
}

/// Runs the mapping's correlation for `sources` (id, managed user): per user with a match, the
/// matching Salesforce ids. A user whose script fails or whose values cannot be written in
/// SOQL is left out (its change then fails on its own); a filter SOQL cannot express fails
/// the whole call.
pub async fn correlate(
    client: &SalesforceClient,
    mapping: &Mapping,
    sources: &[(&str, &Map<String, Value>)],
) -> Result<HashMap<String, Matches>, SalesforceError> {
    let mut out: HashMap<String, Matches> = HashMap::new();
    if sources.is_empty() || !mapping.has_correlation() {
        return Ok(out);
    }
    let ctx = SyncContext::default();
    let mut filters: Vec<(&str, Filter)> = Vec::new();
    for (id, body) in sources {
        match mapping.correlate(&Value::Object((*body).clone()), &ctx) {
            Ok(Some(CorrelationRequest::Query(filter))) => filters.push((id, filter)),
            Ok(Some(CorrelationRequest::Ids(found))) => {
                out.insert(
                    (*id).to_owned(),
                    Matches {
                        ids: found,
                        linked_elsewhere: false,
                    },
                );
            }
            Ok(None) => {}
            // The user's change fails on its own when it is planned (decide sees no match,
            // CREATE then fails visibly on Salesforce if the user exists there).
            Err(e) => tracing::warn!(user = id, error = %e, "correlation script failed"),
        }
    }
    let fields = correlation_fields(mapping);
    let mut clauses: Vec<(&str, &Filter, String)> = Vec::with_capacity(filters.len());
    for (id, filter) in &filters {
        match soql_filter::where_clause(filter) {
            Ok(Some(c)) => clauses.push((id, filter, format!("({c})"))),
            Ok(None) => clauses.push((id, filter, "(Id != null)".into())),
            // This user's values cannot be written in its query: it is left uncorrelated
            // rather than failing the others' (its change then fails on its own if the
            // user exists in Salesforce).
            Err(e) if e.is_about_a_value() => {
                tracing::warn!(user = id, error = %e, "correlation query left out");
            }
            Err(e) => {
                return Err(SalesforceError::InvalidArgument(format!(
                    "correlation query: {e}"
                )));
            }
        }
    }
    for chunk in correlation_chunks(&clauses) {
        let soql = format!(
            "SELECT {} FROM User WHERE {}",
            fields.join(", "),
            chunk
                .iter()
                .map(|(_, _, c)| c.as_str())
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let pages: Vec<_> = client.query(&soql).try_collect().await?;
        let records: Vec<Value> = pages
            .into_iter()
            .flat_map(|p| p.records)
            .map(Value::Object)
            .collect();
        // SOQL compares text case-insensitively; the filter, evaluated here, decides as
        // IDM would (case-sensitively).
        for (id, filter, _) in chunk {
            let found: Vec<String> = records
                .iter()
                .filter(|r| filter.matches(r))
                .filter_map(|r| r.get("Id").and_then(Value::as_str).map(str::to_owned))
                .collect();
            if !found.is_empty() {
                out.insert(
                    (*id).to_owned(),
                    Matches {
                        ids: found,
                        linked_elsewhere: false,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// Consecutive runs of `clauses` (user, filter, condition) of at most [`CORRELATION_CHUNK`]
/// conditions and [`CORRELATION_WHERE_CHARS`] characters (a longer condition goes alone).
fn correlation_chunks<A, B>(clauses: &[(A, B, String)]) -> Vec<&[(A, B, String)]> {
    let mut out = Vec::new();
    let (mut start, mut chars) = (0, 0);
    for (i, (_, _, c)) in clauses.iter().enumerate() {
        let full = i - start >= CORRELATION_CHUNK || chars + c.len() > CORRELATION_WHERE_CHARS;
        if i > start && full {
            out.extend(clauses.get(start..i));
            (start, chars) = (i, 0);
        }
        // " OR " between conditions.
        chars += c.len() + 4;
    }
    if start < clauses.len() {
        out.extend(clauses.get(start..));
    }
    out
}

/// The fields the correlation query selects: every mapped target field that is a plain field
/// name (a correlation filter reads target fields), grants left out (not `User` fields).
fn correlation_fields(mapping: &Mapping) -> Vec<String> {
    let mut out = vec!["Id".to_owned(), "Username".to_owned()];
    for p in &mapping.properties {
        let name = p.target.trim_start_matches('/');
        if is_field_name(name)
            && !is_access_attribute(name)
            && !out.iter().any(|f| f.eq_ignore_ascii_case(name))
        {
            out.push(name.to_owned());
        }
    }
    out
}

/// Marks each single match already linked under `link_type` (to another managed user, since
/// the users correlated are unlinked): FOUND_ALREADY_LINKED rather than FOUND. One query.
pub async fn mark_linked_elsewhere(
    pool: &Pool,
    link_type: &str,
    matches: &mut HashMap<String, Matches>,
) -> Result<(), RepoError> {
    let singles: Vec<String> = matches
        .values()
        .filter_map(|m| match m.ids.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
        .collect();
    if singles.is_empty() {
        return Ok(());
    }
    let linked: HashSet<String> = links::by_ids(
        pool,
        link_type,
        DEFAULT_LINK_QUALIFIER,
        Side::First,
        &singles,
    )
    .await?
    .into_iter()
    .map(|l| l.first_id)
    .collect();
    for m in matches.values_mut() {
        m.linked_elsewhere = matches!(m.ids.as_slice(), [one] if linked.contains(one));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_chunks_are_bounded_in_count_and_length() {
        let short: Vec<((), (), String)> = (0..250).map(|_| ((), (), "(a)".into())).collect();
        let sizes: Vec<usize> = correlation_chunks(&short).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let long = "x".repeat(25_000);
        let mixed: Vec<((), (), String)> = [long.as_str(), "(a)", &long, &long, "(b)"]
            .iter()
            .map(|c| ((), (), (*c).to_owned()))
            .collect();
        let sizes: Vec<usize> = correlation_chunks(&mixed).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [3, 2]);
        let huge = vec![((), (), "x".repeat(70_000))];
        assert_eq!(correlation_chunks(&huge).len(), 1, "a long one goes alone");
        assert!(correlation_chunks::<(), ()>(&[]).is_empty());
    }
}
