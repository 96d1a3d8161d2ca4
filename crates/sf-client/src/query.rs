//! SOQL queries as a stream of pages: `GET query?q=` then each `nextRecordsUrl` until `done`,
//! with `Sforce-Query-Options: batchSize=N`. One page is in memory at a time; a session that
//! expires between pages is refreshed and the stream goes on from the same cursor.

use std::collections::HashMap;

use futures_util::stream;
use futures_util::{Stream, TryStreamExt};
use reqwest::Method;
use serde::Deserialize;

use crate::client::{Call, Record, SalesforceClient, Target, parse_json};
use crate::errors::SalesforceError;

/// One page of query results (`attributes` removed from each record).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPage {
    pub records: Vec<Record>,
    /// The whole result's size, as Salesforce reported it.
    pub total_size: u64,
    /// True on the last page.
    pub done: bool,
}

#[derive(Deserialize)]
struct QueryResponse {
    #[serde(rename = "totalSize")]
    total_size: u64,
    done: bool,
    #[serde(rename = "nextRecordsUrl")]
    next_records_url: Option<String>,
    records: Vec<Record>,
}

enum Cursor {
    First(String),
    Next(String),
    Finished,
}

impl SalesforceClient {
    /// Streams the pages of `soql` with the configured batch size. The stream ends after the last
    /// page or after the first error.
    pub fn query(
        &self,
        soql: &str,
    ) -> impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static {
        self.query_with_batch_size(soql, self.config().query_batch_size)
    }

    /// As [`SalesforceClient::query`], with a batch size for this query (Salesforce: 200..=2000,
    /// and it may return fewer).
    pub fn query_with_batch_size(
        &self,
        soql: &str,
        batch_size: u32,
    ) -> impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static {
        self.pages(Cursor::First(soql.to_owned()), batch_size)
    }

    /// The rest of a result from its `nextRecordsUrl` (a child relationship's, say), with the
    /// configured batch size.
    pub(crate) fn query_more(
        &self,
        next_records_url: String,
    ) -> impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static {
        self.pages(
            Cursor::Next(next_records_url),
            self.config().query_batch_size,
        )
    }

    fn pages(
        &self,
        cursor: Cursor,
        batch_size: u32,
    ) -> impl Stream<Item = Result<QueryPage, SalesforceError>> + Send + 'static {
        let client = self.clone();
        let batch_size = batch_size.clamp(200, 2000);
        stream::try_unfold(cursor, move |cursor| {
            let client = client.clone();
            async move {
                let mut call = match cursor {
                    Cursor::Finished => return Ok(None),
                    Cursor::First(q) => {
                        let mut c = Call::new(Method::GET, Target::Data("query".into()), "query");
                        c.query.push(("q", q));
                        c
                    }
                    Cursor::Next(url) => {
                        Call::new(Method::GET, Target::InstancePath(url), "query more")
                    }
                };
                call.batch_size = Some(batch_size);
                let raw = client.call(&call).await?;
                let page: QueryResponse = parse_json(&raw, "query result")?;
                drop(raw);
                let next = match (page.done, page.next_records_url) {
                    (true, _) => Cursor::Finished,
                    (false, Some(url)) => Cursor::Next(url),
                    (false, None) => {
                        return Err(SalesforceError::InvalidResponse(
                            "query result not done but without nextRecordsUrl".into(),
                        ));
                    }
                };
                let mut records = page.records;
                for r in &mut records {
                    r.shift_remove("attributes");
                }
                Ok(Some((
                    QueryPage {
                        records,
                        total_size: page.total_size,
                        done: page.done,
                    },
                    next,
                )))
            }
        })
    }
}

/// Ids per `WHERE Id IN (…)` query: keeps the statement well under Salesforce's length limit.
pub const IDS_PER_QUERY: usize = 200;

impl SalesforceClient {
    /// The records of `object` among `ids` that exist, with `fields`: one query per
    /// [`IDS_PER_QUERY`] ids (an API call each, not one per record). Ids that cannot be
    /// Salesforce ids (anything but ASCII letters and digits) are left out rather than failing
    /// their query. Keyed by the `Id` Salesforce answers (18 characters).
    pub async fn records_by_id(
        &self,
        object: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<HashMap<String, Record>, SalesforceError> {
        let mut out = HashMap::new();
        let fields = fields.join(", ");
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let list: Vec<&str> = chunk
                .iter()
                .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
                .map(String::as_str)
                .collect();
            if list.is_empty() {
                continue;
            }
            let query = format!(
                "SELECT {fields} FROM {object} WHERE {}",
                crate::soql::in_list("Id", list)
            );
            let mut pages = std::pin::pin!(self.query(&query));
            while let Some(page) = pages.try_next().await? {
                for record in page.records {
                    if let Some(id) = record.get("Id").and_then(serde_json::Value::as_str) {
                        out.insert(id.to_owned(), record.clone());
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_recorded_query_page() {
        // Salesforce docs (resources_query): a page with more to come.
        let body = r#"{"totalSize":3222,"done":false,"nextRecordsUrl":"/services/data/v66.0/query/01gRO0000016PIAYA2-500",
          "records":[{"attributes":{"type":"Contact","url":"/services/data/v66.0/sobjects/Contact/003RO0000035WQgYAM"},"Id":"003RO0000035WQgYAM","Name":"John Smith"}]}"#;
        let page: QueryResponse = serde_json::from_str(body).unwrap();
        assert_eq!(page.total_size, 3222);
        assert!(!page.done);
        assert_eq!(
            page.next_records_url.as_deref(),
            Some("/services/data/v66.0/query/01gRO0000016PIAYA2-500")
        );
        assert_eq!(page.records[0]["Name"], "John Smith");
    }
}
