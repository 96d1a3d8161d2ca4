//! Authentication of a Pub/Sub API call: the gRPC metadata `accesstoken` (an access token of
//! the org), `instanceurl` and `tenantid` (the org id, or `core/<subdomain>/<org id>`) on every
//! call (Pub/Sub API guide, "Authentication" and "Include Authorization Headers").

use chrono::Utc;
use tonic::metadata::MetadataMap;

use super::status::PubSubError;
use crate::{Shared, ids, lock, read};

/// Who a call acts as.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The org id as the call named it (errors quote it).
    pub tenant: String,
}

fn header<'a>(md: &'a MetadataMap, name: &str) -> Option<&'a str> {
    md.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Checks the three headers; the token must be live and the tenant the token's org.
pub fn check(shared: &Shared, md: &MetadataMap) -> Result<Caller, PubSubError> {
    let (Some(token), Some(_instance), Some(tenant)) = (
        header(md, "accesstoken"),
        header(md, "instanceurl"),
        header(md, "tenantid"),
    ) else {
        return Err(PubSubError::AuthHeaders);
    };
    let live = lock(&shared.tokens).is_live(token, Utc::now(), shared.config.access_token_max_uses);
    if !live {
        return Err(PubSubError::Auth);
    }
    // Tokens are `<org id 15>!…`, and every token here belongs to the one org.
    let org_id = read(&shared.org).org_id.clone();
    let named = tenant.rsplit('/').next().unwrap_or(tenant);
    let same_org = ids::canonical_15(named).is_some_and(|n| Some(n) == ids::canonical_15(&org_id));
    if !same_org {
        return Err(PubSubError::Auth);
    }
    Ok(Caller {
        tenant: tenant.to_owned(),
    })
}
