//! Request parsing that answers in IDM's error shape: a JSON body (at most 1 MiB, 32 levels
//! deep, no NUL characters) and the query string, each rejected with a 400 (413 for a body
//! over the size limit) that says what is wrong.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::limits::{self, LimitError, MAX_BODY_BYTES, MAX_JSON_DEPTH};

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from(LimitError::TooLarge {
                    what: "the request body",
                    max: MAX_BODY_BYTES,
                })
            } else {
                ApiError::bad_request(format!("The request body could not be read: {e}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "The request body is empty; a JSON body is required",
            ));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json stops at 128 levels on its own; say which limit, as for 33 levels.
            if e.to_string().starts_with("recursion limit exceeded") {
                ApiError::from(too_deep())
            } else {
                ApiError::bad_request(format!("The request body is not valid: {e}"))
            }
        })?;
        limits::check_depth(&value, "the request body", MAX_JSON_DEPTH)?;
        limits::check_no_nul(&value)?;
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("The request body is not valid: {e}")))
    }
}

fn too_deep() -> LimitError {
    LimitError::TooDeep {
        what: "the request body",
        max: MAX_JSON_DEPTH,
    }
}

/// The query string's parameters (the last one wins when a name repeats).
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(map) =
            axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| {
                    ApiError::bad_request(format!("The query string is not valid: {e}"))
                })?;
        Ok(Params(map))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// CREST rejects `_`-prefixed parameters it does not know; so do we.
    pub fn allow_only(&self, known: &[&str]) -> Result<(), ApiError> {
        let mut unknown: Vec<&str> = self
            .0
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with('_') && !known.contains(k))
            .collect();
        unknown.sort_unstable();
        match unknown.first() {
            Some(name) => Err(ApiError::bad_request(format!(
                "Unrecognized request parameter '{name}'"
            ))),
            None => Ok(()),
        }
    }

    /// A whole-number parameter (`_pageSize`, `_pagedResultsOffset`, …).
    pub fn whole(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("{name} must be a whole number, not {text:?}"))
                })
            })
            .transpose()
    }

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "Parameter {name} must be true or false, not {other:?}"
            ))),
        }
    }
}
