//! API usage: the `Sforce-Limit-Info: api-usage=N/M` header of every data answer, and `/limits`.

use std::sync::Mutex;

use serde_json::{Map, Value};

/// Calls used in the last 24 hours, and the allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    /// Parses `api-usage=18/5000`; the header may hold other comma-separated items
    /// (`per-app-api-usage=…`, `api-bursts=…`), which are ignored.
    pub fn parse(header: &str) -> Option<ApiUsage> {
        header.split(',').find_map(|item| {
            let (used, max) = item.trim().strip_prefix("api-usage=")?.split_once('/')?;
            Some(ApiUsage {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }

    pub fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

/// The usage from the latest answer that carried one.
#[derive(Debug, Default)]
pub(crate) struct UsageTracker(Mutex<Option<ApiUsage>>);

impl UsageTracker {
    pub fn record(&self, headers: &reqwest::header::HeaderMap) -> Option<ApiUsage> {
        let usage = headers
            .get("sforce-limit-info")
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::parse)?;
        // A poisoned lock only means a panic elsewhere; the value is a plain Copy.
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(usage);
        Some(usage)
    }

    pub fn last(&self) -> Option<ApiUsage> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One limit of `GET /limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub remaining: u64,
}

/// `GET /services/data/vNN.N/limits`: the daily API allowance, and every limit as returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub daily_api_requests: Option<Limit>,
    pub all: Map<String, Value>,
}

impl Limits {
    pub fn from_json(all: Map<String, Value>) -> Limits {
        Limits {
            daily_api_requests: Self::limit_in(&all, "DailyApiRequests"),
            all,
        }
    }

    pub fn get(&self, name: &str) -> Option<Limit> {
        Self::limit_in(&self.all, name)
    }

    fn limit_in(all: &Map<String, Value>, name: &str) -> Option<Limit> {
        let l = all.get(name)?;
        Some(Limit {
            max: l.get("Max")?.as_u64()?,
            remaining: l.get("Remaining")?.as_u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_headers() {
        // Salesforce docs (headers_api_usage): "api-usage=18/5000", and the v68 form with bursts.
        assert_eq!(
            ApiUsage::parse("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                max: 5000
            })
        );
        assert_eq!(
            ApiUsage::parse("api-usage=15907/5000000, api-bursts=1/750"),
            Some(ApiUsage {
                used: 15907,
                max: 5000000
            })
        );
        assert_eq!(
            ApiUsage::parse("per-app-api-usage=17/250(appName=x), api-usage=25/5000"),
            Some(ApiUsage {
                used: 25,
                max: 5000
            })
        );
        assert_eq!(ApiUsage::parse("api-usage=x/5000"), None);
        assert_eq!(ApiUsage::parse(""), None);
    }

    #[test]
    fn limits_read_daily_api_requests() {
        // Recorded /limits answer (Salesforce docs, dome_limits).
        let body = r#"{"DailyApiRequests":{"Max":15000,"Remaining":14998},"DailyBulkV2QueryJobs":{"Max":10000,"Remaining":10000}}"#;
        let limits = Limits::from_json(serde_json::from_str(body).unwrap());
        assert_eq!(
            limits.daily_api_requests,
            Some(Limit {
                max: 15000,
                remaining: 14998
            })
        );
        assert_eq!(limits.get("DailyBulkV2QueryJobs").unwrap().max, 10000);
        assert_eq!(limits.get("Nope"), None);
    }
}
