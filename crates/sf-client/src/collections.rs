//! Batched writes through sObject Collections (`POST|PATCH composite/sobjects`): up to 200 records
//! a call (one API call each), `allOrNone: false`, one result per record in input order.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::client::{Call, Record, SalesforceClient, Target, USER, check_id, parse_json};
use crate::errors::{ApiError, SalesforceError};

/// Salesforce's cap on records per Collections call.
pub const MAX_RECORDS_PER_CALL: usize = 200;

/// One record's outcome: its id, or why it failed (Salesforce's per-record errors as
/// [`SalesforceError::RecordRejected`], or the whole call's error).
pub type RecordResult = Result<String, SalesforceError>;

#[derive(Deserialize)]
struct CollectionResult {
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
}

impl SalesforceClient {
    /// Creates users, 200 a call. Results follow the input order. After a call fails as a whole
    /// (limit, authorization, retries exhausted), the rest are not sent and carry that error.
    pub async fn create_many(&self, records: &[Record]) -> Vec<RecordResult> {
        self.create_many_of(USER, records).await
    }

    /// Creates records of `object` (such as `PermissionSetAssignment`), as [`Self::create_many`].
    pub async fn create_many_of(&self, object: &str, records: &[Record]) -> Vec<RecordResult> {
        let bodies: Vec<Value> = records.iter().map(|r| typed(object, r, None)).collect();
        self.collections(Method::POST, &bodies, None).await
    }

    /// Deletes records of any object by id (`DELETE composite/sobjects?ids=…`), 200 a call, one
    /// result per id in order; an id that cannot be a Salesforce id fails alone.
    pub async fn delete_many(&self, ids: &[String]) -> Vec<RecordResult> {
        let mut results: Vec<Option<RecordResult>> = Vec::with_capacity(ids.len());
        let mut valid = Vec::with_capacity(ids.len());
        for id in ids {
            match check_id(id) {
                Ok(()) => {
                    results.push(None);
                    valid.push(id.clone());
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut sent = Vec::with_capacity(valid.len());
        let mut failed: Option<SalesforceError> = None;
        for chunk in valid.chunks(MAX_RECORDS_PER_CALL) {
            if let Some(e) = &failed {
                sent.extend(chunk.iter().map(|_| Err(e.clone())));
                continue;
            }
            match self.delete_call(chunk).await {
                Ok(done) => {
                    sent.extend(done.into_iter().zip(chunk).map(|(r, id)| match r.success {
                        true => Ok(r.id.unwrap_or_else(|| id.clone())),
                        false => Err(SalesforceError::RecordRejected { errors: r.errors }),
                    }))
                }
                Err(e) => {
                    sent.extend(chunk.iter().map(|_| Err(e.clone())));
                    failed = Some(e);
                }
            }
        }
        interleave(results, sent)
    }

    async fn delete_call(&self, ids: &[String]) -> Result<Vec<CollectionResult>, SalesforceError> {
        let mut call = Call::new(
            Method::DELETE,
            Target::Data("composite/sobjects".into()),
            "collections delete",
        );
        call.query.push(("ids", ids.join(",")));
        call.query.push(("allOrNone", "false".to_owned()));
        let raw = self.call(&call).await?;
        let results: Vec<CollectionResult> = parse_json(&raw, "collection results")?;
        if results.len() != ids.len() {
            return Err(SalesforceError::InvalidResponse(format!(
                "{} results for {} ids",
                results.len(),
                ids.len()
            )));
        }
        Ok(results)
    }

    /// Updates users (`(id, changed fields)`), 200 a call, one result per input in order.
    pub async fn update_many(&self, updates: &[(String, Record)]) -> Vec<RecordResult> {
        let mut results: Vec<Option<RecordResult>> = Vec::with_capacity(updates.len());
        let mut bodies = Vec::with_capacity(updates.len());
        let mut ids = Vec::with_capacity(updates.len());
        for (id, record) in updates {
            // A bad id is this record's failure, not the batch's.
            match check_id(id) {
                Ok(()) => {
                    results.push(None);
                    bodies.push(typed(USER, record, Some(id)));
                    ids.push(id.clone());
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let sent = self.collections(Method::PATCH, &bodies, Some(&ids)).await;
        interleave(results, sent)
    }

    async fn collections(
        &self,
        method: Method,
        records: &[Value],
        ids: Option<&[String]>,
    ) -> Vec<RecordResult> {
        let mut out = Vec::with_capacity(records.len());
        let mut failed: Option<SalesforceError> = None;
        for (n, chunk) in records.chunks(MAX_RECORDS_PER_CALL).enumerate() {
            if let Some(e) = &failed {
                out.extend(chunk.iter().map(|_| Err(e.clone())));
                continue;
            }
            let start = n * MAX_RECORDS_PER_CALL;
            let chunk_ids = ids.and_then(|ids| ids.get(start..start + chunk.len()));
            match self.collection_call(method.clone(), chunk).await {
                Ok(results) => {
                    out.extend(results.into_iter().enumerate().map(|(i, r)| {
                        match (r.success, r.id) {
                            (true, Some(id)) => Ok(id),
                            // A successful update may omit nothing, but fall back to the input id.
                            (true, None) => chunk_ids
                                .and_then(|ids| ids.get(i).cloned())
                                .ok_or_else(|| {
                                    SalesforceError::InvalidResponse("success without id".into())
                                }),
                            (false, _) => Err(SalesforceError::RecordRejected { errors: r.errors }),
                        }
                    }))
                }
                Err(e) => {
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                    failed = Some(e);
                }
            }
        }
        out
    }

    async fn collection_call(
        &self,
        method: Method,
        chunk: &[Value],
    ) -> Result<Vec<CollectionResult>, SalesforceError> {
        let body = json!({ "allOrNone": false, "records": chunk });
        let what = if method == Method::POST {
            "collections create"
        } else {
            "collections update"
        };
        let mut call = Call::new(method, Target::Data("composite/sobjects".into()), what);
        call.body = Some(&body);
        let raw = self.call(&call).await?;
        let results: Vec<CollectionResult> = parse_json(&raw, "collection results")?;
        if results.len() != chunk.len() {
            return Err(SalesforceError::InvalidResponse(format!(
                "{} results for {} records",
                results.len(),
                chunk.len()
            )));
        }
        Ok(results)
    }
}

/// The results in input order: those decided before sending (`Some`, a bad id), and in the
/// gaps what Salesforce answered for the records sent, in order.
fn interleave(decided: Vec<Option<RecordResult>>, sent: Vec<RecordResult>) -> Vec<RecordResult> {
    let mut sent = sent.into_iter();
    decided
        .into_iter()
        .map(|r| match r {
            Some(r) => r,
            None => sent.next().unwrap_or_else(|| {
                Err(SalesforceError::InvalidResponse(
                    "missing collection result".into(),
                ))
            }),
        })
        .collect()
}

/// A record as Collections want it: `attributes.type` first, then `id` for updates.
fn typed(object: &str, record: &Record, id: Option<&str>) -> Value {
    let mut out = Record::new();
    out.insert("attributes".into(), json!({ "type": object }));
    if let Some(id) = id {
        out.insert("id".into(), Value::String(id.to_owned()));
    }
    for (k, v) in record {
        if k != "attributes" && !k.eq_ignore_ascii_case("id") {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_typed_and_ids_placed() {
        let mut r = Record::new();
        r.insert("Id".into(), json!("ignored"));
        r.insert("LastName".into(), json!("Jensen"));
        let v = typed(USER, &r, Some("005000000000001AAA"));
        assert_eq!(
            v,
            json!({"attributes": {"type": "User"}, "id": "005000000000001AAA", "LastName": "Jensen"})
        );
        assert_eq!(v.as_object().unwrap().keys().next().unwrap(), "attributes");
    }

    #[test]
    fn parses_recorded_mixed_results() {
        // Collections answer with allOrNone=false (reference §2.6).
        let body = r#"[ {"id":"005000000000001AAA","success":true,"errors":[]},
          {"success":false,"errors":[{"statusCode":"DUPLICATE_USERNAME","message":"Duplicate Username.","fields":["Username"]}]} ]"#;
        let r: Vec<CollectionResult> = serde_json::from_str(body).unwrap();
        assert!(r[0].success);
        assert_eq!(r[1].errors[0].error_code, "DUPLICATE_USERNAME");
        assert_eq!(r[1].errors[0].fields, vec!["Username"]);
    }
}
