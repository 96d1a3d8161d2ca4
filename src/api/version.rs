//! `Accept-API-Version: protocol=2.1,resource=1.0`: resource version 1.0 is the one we serve.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

pub async fn check_api_version(request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get("accept-api-version") {
        let checked = value
            .to_str()
            .map_err(|_| ApiError::bad_request("Accept-API-Version is not valid text"))
            .and_then(check);
        if let Err(e) = checked {
            return e.into_response();
        }
    }
    next.run(request).await
}

fn check(value: &str) -> Result<(), ApiError> {
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, version) = part.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!(
                "Accept-API-Version {value:?} is malformed: expected e.g. resource=1.0"
            ))
        })?;
        let (major, minor) = parse_version(version.trim()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Accept-API-Version: {version:?} is not a version number"
            ))
        })?;
        match key.trim() {
            "resource" if major == 1 && minor == 0 => {}
            "resource" => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported resource version {version} requested: this endpoint supports resource=1.0"
                )));
            }
            "protocol" if major == 1 || major == 2 => {}
            "protocol" => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported protocol version {version} requested: protocol 1.x and 2.x are supported"
                )));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Accept-API-Version: unknown key {other:?} (expected protocol or resource)"
                )));
            }
        }
    }
    Ok(())
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn versions() {
        assert!(check("resource=1.0").is_ok());
        assert!(check("protocol=2.1,resource=1.0").is_ok());
        assert!(check("resource=1").is_ok());
        assert!(
            check("resource=2.0")
                .unwrap_err()
                .message
                .contains("resource=1.0")
        );
        assert!(check("protocol=3.0").is_err());
        assert!(check("resource").is_err());
        assert!(check("flavour=1.0").is_err());
    }
}
