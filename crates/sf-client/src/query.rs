//! SOQL queries as a stream of pages: `GET query?q=` then each `nextRecordsUrl` until `done`,
//! with `Sforce-Query-Options: batchSize=N`. One page is in memory at a time; a session that
//! expires between pages is refreshed and the stream goes on from the same cursor.

use futures_util::Stream;
use futures_util::stream;
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
        let client = self.clone();
        let batch_size = batch_size.clamp(200, 2000);
        stream::try_unfold(Cursor::First(soql.to_owned()), move |cursor| {
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
