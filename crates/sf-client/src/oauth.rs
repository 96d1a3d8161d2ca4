//! OAuth 2.0 with Salesforce's token endpoint, through the `oauth2` crate: the refresh-token
//! grant, the authorization-code exchange, and the authorize URL of the web-server flow.
//!
//! Salesforce's token answer is not quite RFC 6749's: it has no `expires_in` (the session lasts the
//! org's timeout, found out by a 401), `issued_at` is epoch milliseconds as a string, and it adds
//! `instance_url` (where every data call goes), `id` (the identity URL) and `signature`. With
//! refresh-token rotation on, a refresh answer also carries a new `refresh_token`.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse,
    TokenUrl,
};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::config::{ClientConfig, Secret};
use crate::errors::SalesforceError;
use crate::http::Http;

/// Salesforce's own fields of a token answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesforceTokenFields {
    pub instance_url: Option<String>,
    /// Identity URL, `https://login.salesforce.com/id/<org id>/<user id>`.
    pub id: Option<String>,
    /// Epoch milliseconds, as a string.
    pub issued_at: Option<String>,
    /// Base64 HMAC of `id` + `issued_at`; kept opaque.
    pub signature: Option<String>,
}

impl ExtraTokenFields for SalesforceTokenFields {}

pub type SalesforceTokenResponse = StandardTokenResponse<SalesforceTokenFields, BasicTokenType>;

type OAuthClient<HasAuthUrl> = oauth2::Client<
    BasicErrorResponse,
    SalesforceTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The scopes idm-sync asks for: the REST API, the identity URL, and a refresh token.
pub const SCOPES: [&str; 3] = ["api", "id", "refresh_token"];

/// A successful token answer, secrets wrapped.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Secret,
    /// Present on the code exchange, and on refreshes when rotation is on.
    pub refresh_token: Option<Secret>,
    pub instance_url: Option<String>,
    pub identity_url: Option<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
}

impl TokenGrant {
    fn from_response(r: &SalesforceTokenResponse) -> TokenGrant {
        let extra = r.extra_fields();
        TokenGrant {
            access_token: Secret::new(r.access_token().secret()),
            refresh_token: r.refresh_token().map(|t| Secret::new(t.secret())),
            instance_url: extra.instance_url.clone(),
            identity_url: extra.id.clone(),
            issued_at: extra.issued_at.as_deref().and_then(parse_issued_at),
            scope: r
                .scopes()
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// `issued_at` is documented as seconds but is milliseconds in real answers (13 digits); accept both.
pub fn parse_issued_at(text: &str) -> Option<DateTime<Utc>> {
    let n: i64 = text.trim().parse().ok()?;
    if n >= 100_000_000_000 {
        DateTime::from_timestamp_millis(n)
    } else {
        DateTime::from_timestamp(n, 0)
    }
}

/// Our transport as `oauth2`'s HTTP client (its own reqwest integration is not compiled in: one
/// reqwest, one pool, the same permits and timeouts as the REST calls). The boxed future is
/// named `Send` here, which keeps the callers' futures provably `Send`.
struct OAuthHttp<'h>(&'h Http);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = SalesforceError;
    type Future = BoxFuture<'c, Result<oauth2::HttpResponse, SalesforceError>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.0.oauth(request))
    }
}

fn token_client(cfg: &ClientConfig) -> OAuthClient<EndpointNotSet> {
    oauth2::Client::new(ClientId::new(cfg.client_id.clone()))
        .set_client_secret(ClientSecret::new(cfg.client_secret.expose().to_owned()))
        .set_token_uri(TokenUrl::from_url(cfg.login_url.clone()))
        // Salesforce documents the credentials in the form body (Basic is accepted too).
        .set_auth_type(AuthType::RequestBody)
}

/// One refresh-token grant (no retry: the caller decides).
pub(crate) async fn refresh(
    http: &Http,
    cfg: &ClientConfig,
    refresh_token: &Secret,
) -> Result<TokenGrant, SalesforceError> {
    let client = token_client(cfg);
    let token = RefreshToken::new(refresh_token.expose().to_owned());
    let response = client
        .exchange_refresh_token(&token)
        .request_async(&OAuthHttp(http))
        .await
        .map_err(map_token_error);
    http.observer.call("token", &response);
    Ok(TokenGrant::from_response(&response?))
}

/// A PKCE code verifier (RFC 7636) for one authorization: its S256 challenge goes in the
/// authorize URL, the verifier itself in the code exchange, so a code intercepted on its way
/// back is worth nothing without it. Salesforce recommends PKCE for the web-server flow, and a
/// connected app can require it.
pub fn pkce_verifier() -> Secret {
    let (_, verifier) = PkceCodeChallenge::new_random_sha256();
    Secret::new(verifier.secret().clone())
}

/// The authorization-code grant of the web-server flow, with the authorization's PKCE verifier.
pub(crate) async fn exchange_code(
    http: &Http,
    cfg: &ClientConfig,
    code: &str,
    redirect_uri: &str,
    verifier: &Secret,
) -> Result<TokenGrant, SalesforceError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| SalesforceError::InvalidArgument(format!("redirect URI: {e}")))?;
    let client = token_client(cfg).set_redirect_uri(redirect);
    let response = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose().to_owned()))
        .request_async(&OAuthHttp(http))
        .await
        .map_err(map_token_error);
    http.observer.call("token", &response);
    Ok(TokenGrant::from_response(&response?))
}

/// The authorize endpoint on `loginUrl`'s host (`…/services/oauth2/authorize`).
pub fn authorize_endpoint(login_url: &Url) -> Url {
    let mut url = login_url.clone();
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/');
    let path = match path.strip_suffix("/token") {
        Some(base) => format!("{base}/authorize"),
        None => "/services/oauth2/authorize".to_owned(),
    };
    url.set_path(&path);
    url
}

/// The URL an operator opens to authorize idm-sync (web-server flow). `state` comes back on the
/// redirect and must be checked by the caller.
pub fn authorize_url(
    cfg: &ClientConfig,
    redirect_uri: &str,
    state: &str,
    verifier: &Secret,
) -> Result<Url, SalesforceError> {
    let redirect = RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| SalesforceError::InvalidArgument(format!("redirect URI: {e}")))?;
    let client = token_client(cfg)
        .set_auth_uri(AuthUrl::from_url(
            cfg.authorize_url
                .clone()
                .unwrap_or_else(|| authorize_endpoint(&cfg.login_url)),
        ))
        .set_redirect_uri(redirect);
    let state = state.to_owned();
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
        verifier.expose().to_owned(),
    ));
    let (url, _) = client
        .authorize_url(move || CsrfToken::new(state))
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .set_pkce_challenge(challenge)
        .url();
    Ok(url)
}

fn map_token_error(e: RequestTokenError<SalesforceError, BasicErrorResponse>) -> SalesforceError {
    match e {
        RequestTokenError::ServerResponse(r) => {
            let description = r.error_description().cloned().unwrap_or_default();
            let error = r.error().to_string();
            match r.error() {
                // Revoked, expired, or rotated-away refresh token; deactivated user.
                BasicErrorResponseType::InvalidGrant => {
                    SalesforceError::NeedsReauthorization { error, description }
                }
                BasicErrorResponseType::InvalidClient => {
                    SalesforceError::BadCredentials { error, description }
                }
                BasicErrorResponseType::Extension(x) if x == "invalid_client_id" => {
                    SalesforceError::BadCredentials { error, description }
                }
                _ => SalesforceError::TokenRejected { error, description },
            }
        }
        RequestTokenError::Request(e) => e,
        // The body is not echoed: a half-parseable success answer would hold a token.
        RequestTokenError::Parse(e, _) => {
            SalesforceError::InvalidResponse(format!("token endpoint answer: {}", e.path()))
        }
        RequestTokenError::Other(m) => {
            SalesforceError::InvalidResponse(format!("token endpoint: {m}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded refresh answer (Salesforce docs, refresh token flow; reference §1.2).
    const REFRESH_ANSWER: &str = r#"{ "access_token": "00Dxx0000001gPL!AQMAQ.secret", "signature": "HfBA4c3pfLvxx9A4sMY7rPWwjexhQm9LDhyGMI0VdBo=",
      "scope": "visualforce refresh_token web api id full",
      "instance_url": "https://yourInstance.my.salesforce.com",
      "id": "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS",
      "token_type": "Bearer", "issued_at": "1708058728442" }"#;

    #[test]
    fn parses_salesforce_token_answers() {
        let r: SalesforceTokenResponse = serde_json::from_str(REFRESH_ANSWER).unwrap();
        let g = TokenGrant::from_response(&r);
        assert_eq!(g.access_token.expose(), "00Dxx0000001gPL!AQMAQ.secret");
        assert!(g.refresh_token.is_none());
        assert_eq!(
            g.instance_url.as_deref(),
            Some("https://yourInstance.my.salesforce.com")
        );
        assert_eq!(
            g.identity_url.as_deref(),
            Some("https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001Sv6AAAS")
        );
        assert_eq!(g.issued_at.unwrap().timestamp_millis(), 1_708_058_728_442);
        assert_eq!(
            g.scope.as_deref(),
            Some("visualforce refresh_token web api id full")
        );
        assert!(r.expires_in().is_none());
        let shown = format!("{g:?}");
        assert!(!shown.contains("AQMAQ"), "{shown}");
    }

    #[test]
    fn rotated_refresh_token_is_read() {
        let body = REFRESH_ANSWER.replace(
            "\"token_type\"",
            "\"refresh_token\": \"5Aep86new\", \"token_type\"",
        );
        let r: SalesforceTokenResponse = serde_json::from_str(&body).unwrap();
        assert_eq!(
            TokenGrant::from_response(&r)
                .refresh_token
                .unwrap()
                .expose(),
            "5Aep86new"
        );
    }

    #[test]
    fn token_errors_map_to_typed_kinds() {
        // Recorded token-endpoint errors (reference §1.3).
        let parse = |s: &str| -> BasicErrorResponse { serde_json::from_str(s).unwrap() };
        let e = map_token_error(RequestTokenError::ServerResponse(parse(
            r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
        )));
        assert!(
            matches!(&e, SalesforceError::NeedsReauthorization { description, .. } if description == "expired access/refresh token")
        );
        let e = map_token_error(RequestTokenError::ServerResponse(parse(
            r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        )));
        assert!(matches!(e, SalesforceError::BadCredentials { .. }));
        let e = map_token_error(RequestTokenError::ServerResponse(parse(
            r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
        )));
        assert!(matches!(e, SalesforceError::BadCredentials { .. }));
        let e = map_token_error(RequestTokenError::ServerResponse(parse(
            r#"{"error":"unsupported_grant_type","error_description":"grant type not supported"}"#,
        )));
        assert!(matches!(e, SalesforceError::TokenRejected { .. }));
    }

    #[test]
    fn issued_at_accepts_millis_and_seconds() {
        assert_eq!(
            parse_issued_at("1708058728442").unwrap().timestamp(),
            1_708_058_728
        );
        assert_eq!(
            parse_issued_at("1708058728").unwrap().timestamp(),
            1_708_058_728
        );
        assert!(parse_issued_at("soon").is_none());
    }

    #[test]
    fn authorize_url_targets_the_login_host() {
        let cfg = ClientConfig::new(
            Url::parse("https://test.salesforce.com/services/oauth2/token").unwrap(),
            "consumer key",
            Secret::new("s3cret"),
            None,
        );
        // RFC 7636 appendix B's example verifier and its S256 challenge.
        let verifier = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let url = authorize_url(&cfg, "http://127.0.0.1:8765/callback", "xyz", &verifier).unwrap();
        assert_eq!(url.host_str(), Some("test.salesforce.com"));
        assert_eq!(url.path(), "/services/oauth2/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "consumer key");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8765/callback");
        assert_eq!(q["state"], "xyz");
        assert_eq!(q["scope"], "api id refresh_token");
        assert_eq!(
            q["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!url.as_str().contains("s3cret"));
        assert!(!url.as_str().contains(verifier.expose()));
        // A browser-facing authorize endpoint (a container network) wins over the derived one.
        let mut behind = cfg.clone();
        behind.authorize_url =
            Some(Url::parse("http://localhost:8090/services/oauth2/authorize").unwrap());
        let url =
            authorize_url(&behind, "http://127.0.0.1:8765/callback", "xyz", &verifier).unwrap();
        assert_eq!(url.host_str(), Some("localhost"));
        assert_eq!(url.port(), Some(8090));
        // Credentials for another org drop it; the same org's keep it.
        let other = crate::config::Credentials {
            login_url: Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap(),
            client_id: "k".into(),
            client_secret: Secret::new("s"),
        };
        assert_eq!(other.apply(&behind).authorize_url, None);
        let same = crate::config::Credentials {
            login_url: behind.login_url.clone(),
            ..other
        };
        assert!(same.apply(&behind).authorize_url.is_some());
        let fresh = pkce_verifier();
        assert!((43..=128).contains(&fresh.expose().len()));
        assert_ne!(fresh.expose(), pkce_verifier().expose());
    }
}
