//! `ChangeEventHeader.changeOrigin` of a REST write: `com/salesforce/api/rest/<version>`, with
//! `;client=<id>` when the request named a client in `Sforce-Call-Options: client=<id>` (Apex
//! reference, `ChangeEventHeader.changeorigin`).

use axum::http::HeaderMap;

/// The origin of a write through REST API `version` (`v62.0` or `62.0`).
pub fn rest_origin(version: &str, headers: &HeaderMap) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    let client = headers
        .get("sforce-call-options")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .filter_map(|opt| opt.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("client"))
                .map(|(_, id)| id.trim().to_owned())
        })
        .filter(|id| !id.is_empty());
    match client {
        Some(id) => format!("com/salesforce/api/rest/{version};client={id}"),
        None => format!("com/salesforce/api/rest/{version}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_option_is_appended() {
        let mut h = HeaderMap::new();
        assert_eq!(rest_origin("v62.0", &h), "com/salesforce/api/rest/62.0");
        h.insert(
            "Sforce-Call-Options",
            "defaultNamespace=x, client=idm-sync/1".parse().unwrap(),
        );
        assert_eq!(
            rest_origin("v62.0", &h),
            "com/salesforce/api/rest/62.0;client=idm-sync/1"
        );
    }
}
