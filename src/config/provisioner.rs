//! `conf/provisioner.openicf-<name>.json` in IDM 7.5's format (one per Salesforce org; `<name>`
//! is the system name, which the file's optional `name` must repeat), parsed into the Salesforce
//! client's typed configuration plus what IDM's system endpoints report (`connectorRef`,
//! `objectTypes`).
//!
//! `configurationProperties` keys read: `loginUrl` (the token endpoint), `clientId`,
//! `clientSecret`, `refreshToken`, `instanceUrl`, `version`, `connectTimeout` (ms),
//! `maximumConnections`, `proxyHost`/`proxyPort`, `supportedObjectTypes`, `grantType` (only
//! `refresh_token`). idm-sync's own optional keys: `requestTimeout` (ms, default 120000: IDM's
//! connector has none, but every request here has one), `queryBatchSize` (200..2000, default
//! 2000), `retryMaxAttempts` (default 5), `retryMaxTotalDelay` (ms, default 30000).
//! `authorizeUrl` (the authorize endpoint a browser opens, when it reaches the org by another
//! address than the service: the compose file's emulator; derived from `loginUrl` otherwise).
//! `removeAccessOnDeactivation` (default false: a deactivated user keeps its grants, as in
//! Salesforce). `enabled: false` keeps the file valid without credentials (IDM ships it so until OAuth is done).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Url;
use serde_json::{Map, Value};

use super::Invalid;
use crate::salesforce::{ClientConfig, RetryConfig, Secret};

/// The sample's connector file, relative to the configuration directory (the demo writes it).
pub const SALESFORCE_FILE: &str = "provisioner.openicf-salesforce.json";

#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The system name (`salesforce`, from the file name): `/openidm/system/<name>`.
    pub name: String,
    pub enabled: bool,
    /// As written in the file; the test action echoes it.
    pub connector_ref: Value,
    pub client: ClientConfig,
    /// `removeAccessOnDeactivation`: a deactivated user also loses its permission sets,
    /// permission set groups and public groups (Salesforce keeps them; so does idm-sync by
    /// default).
    pub remove_access_on_deactivation: bool,
    pub supported_object_types: Vec<String>,
    pub object_types: BTreeMap<String, ObjectTypeConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectTypeConfig {
    pub native_type: String,
    pub properties: Vec<AttributeConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttributeConfig {
    /// The IDM-side name (the key under `properties`).
    pub name: String,
    /// JSON type: `string`, `boolean`, `object`, …
    pub kind: String,
    /// Salesforce's field name.
    pub native_name: String,
    pub native_type: String,
    pub required: bool,
}

impl ProvisionerConfig {
    /// The config id IDM reports (`config/provisioner.openicf/salesforce`).
    pub fn config_id(&self) -> String {
        format!("config/provisioner.openicf/{}", self.name)
    }

    pub fn from_json(name: &str, value: &Value) -> Result<ProvisionerConfig, Invalid> {
        let root = value
            .as_object()
            .ok_or_else(|| Invalid::new("/", "must be a JSON object"))?;
        // The name is a path segment (`/openidm/system/<name>`) and a metric label.
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Invalid::new(
                "/",
                format!(
                    "the system name {name:?} (from the file name) may hold only letters, digits, '_' and '-'"
                ),
            ));
        }
        match root.get("name") {
            None => {}
            Some(Value::String(n)) if n == name => {}
            Some(other) => {
                return Err(Invalid::new(
                    "/name",
                    format!(
                        "is {other}, but the file name says the system is {name:?}: they must agree"
                    ),
                ));
            }
        }
        let enabled = match root.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Invalid::new("/enabled", "must be true or false")),
        };
        let connector_ref = root.get("connectorRef").cloned().unwrap_or(Value::Null);
        if !connector_ref.is_object() && !connector_ref.is_null() {
            return Err(Invalid::new("/connectorRef", "must be an object"));
        }
        let props = match root.get("configurationProperties") {
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(Invalid::new(
                    "/configurationProperties",
                    "must be an object",
                ));
            }
            None => return Err(Invalid::new("/configurationProperties", "missing")),
        };
        let p = Props(props);
        if let Some(grant) = p.opt_str("grantType")?
            && grant != "refresh_token"
        {
            return Err(p.invalid(
                "grantType",
                format!("{grant:?} is not supported: only \"refresh_token\""),
            ));
        }
        let login_url = p
            .url("loginUrl")?
            .ok_or_else(|| p.invalid("loginUrl", "missing"))?;
        // Without OAuth done, a disabled connector may lack credentials; an enabled one may not.
        let client_id = p.opt_str("clientId")?.unwrap_or_default();
        let client_secret = p.opt_str("clientSecret")?.unwrap_or_default();
        if enabled && client_id.is_empty() {
            return Err(p.invalid("clientId", "required when the connector is enabled"));
        }
        if enabled && client_secret.is_empty() {
            return Err(p.invalid("clientSecret", "required when the connector is enabled"));
        }
        let refresh_token = p
            .opt_str("refreshToken")?
            .filter(|t| !t.is_empty())
            .map(Secret::new);
        let instance_url = p.url("instanceUrl")?;
        let authorize_url = p.url("authorizeUrl")?;
        let api_version = p.version()?;
        let connect_timeout = p.millis("connectTimeout", 120_000)?;
        let request_timeout = p.millis("requestTimeout", 120_000)?;
        let maximum_connections = p.int("maximumConnections", 10, 1, 1000)? as usize;
        let proxy = match p.opt_str("proxyHost")?.filter(|h| !h.is_empty()) {
            Some(host) => {
                let port = p.int("proxyPort", 3128, 1, 65535)?;
                let base = if host.contains("://") {
                    host
                } else {
                    format!("http://{host}")
                };
                Some(format!("{base}:{port}"))
            }
            None => None,
        };
        let supported_object_types = match props.get("supportedObjectTypes") {
            None | Some(Value::Null) => vec!["User".to_owned()],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        Invalid::new(
                            format!("/configurationProperties/supportedObjectTypes/{i}"),
                            "must be a string",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(p.invalid("supportedObjectTypes", "must be an array of strings"));
            }
        };
        let query_batch_size = p.int("queryBatchSize", 2000, 200, 2000)? as u32;
        let remove_access_on_deactivation = p.flag("removeAccessOnDeactivation")?;
        let retry = RetryConfig {
            max_attempts: p.int("retryMaxAttempts", 5, 1, 100)? as u32,
            max_total_delay: p.millis("retryMaxTotalDelay", 30_000)?,
            ..RetryConfig::default()
        };
        let object_types = parse_object_types(root.get("objectTypes"))?;
        let client = ClientConfig {
            system_name: name.to_owned(),
            login_url,
            client_id,
            client_secret: Secret::new(client_secret),
            refresh_token,
            instance_url,
            authorize_url,
            api_version,
            connect_timeout,
            request_timeout,
            maximum_connections,
            proxy,
            query_batch_size,
            retry,
            enabled_in_file: enabled,
        };
        Ok(ProvisionerConfig {
            name: name.to_owned(),
            enabled,
            connector_ref,
            client,
            remove_access_on_deactivation,
            supported_object_types,
            object_types,
        })
    }
}

/// Typed access to `configurationProperties`, with errors naming the JSON path.
struct Props<'a>(&'a Map<String, Value>);

impl Props<'_> {
    fn invalid(&self, key: &str, message: impl Into<String>) -> Invalid {
        Invalid::new(format!("/configurationProperties/{key}"), message)
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, Invalid> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.invalid(key, "must be a string or null")),
        }
    }

    fn url(&self, key: &str) -> Result<Option<Url>, Invalid> {
        let Some(text) = self.opt_str(key)?.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let url = Url::parse(&text)
            .map_err(|e| self.invalid(key, format!("{text:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.invalid(key, format!("{text:?} must be an http or https URL")));
        }
        Ok(Some(url))
    }

    /// A boolean that is false unless set.
    fn flag(&self, key: &str) -> Result<bool, Invalid> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(_) => Err(self.invalid(key, "must be true or false")),
        }
    }

    fn int(&self, key: &str, default: i64, min: i64, max: i64) -> Result<i64, Invalid> {
        let n = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(default),
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        }
        .ok_or_else(|| self.invalid(key, "must be a whole number"))?;
        if n < min || n > max {
            return Err(self.invalid(key, format!("{n} is out of range {min}..={max}")));
        }
        Ok(n)
    }

    fn millis(&self, key: &str, default: u64) -> Result<Duration, Invalid> {
        // IDM writes -1 or 0 for "no timeout"; idm-sync keeps a bound on every call: the default.
        let ms = self.int(key, default as i64, i64::MIN, i64::MAX)?;
        Ok(Duration::from_millis(if ms <= 0 {
            default
        } else {
            ms as u64
        }))
    }

    /// `version`: 62, 62.0 or "62.0" → `62.0`.
    fn version(&self) -> Result<String, Invalid> {
        let v = match self.0.get("version") {
            None | Some(Value::Null) => return Ok("62.0".to_owned()),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().trim_start_matches('v').parse::<f64>().ok(),
            Some(_) => None,
        }
        .filter(|v| v.fract() == 0.0 && (20.0..=999.0).contains(v))
        .ok_or_else(|| self.invalid("version", "must be an API version such as 62"))?;
        Ok(format!("{v:.1}"))
    }
}

fn parse_object_types(
    value: Option<&Value>,
) -> Result<BTreeMap<String, ObjectTypeConfig>, Invalid> {
    let mut out = BTreeMap::new();
    let types = match value {
        None | Some(Value::Null) => return Ok(out),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(Invalid::new("/objectTypes", "must be an object")),
    };
    for (type_name, def) in types {
        let path = format!("/objectTypes/{type_name}");
        let def = def
            .as_object()
            .ok_or_else(|| Invalid::new(&path, "must be an object"))?;
        let native_type = match def.get("nativeType") {
            Some(Value::String(s)) => s.clone(),
            None => type_name.clone(),
            Some(_) => {
                return Err(Invalid::new(
                    format!("{path}/nativeType"),
                    "must be a string",
                ));
            }
        };
        let props = match def.get("properties") {
            Some(Value::Object(m)) => m,
            None => return Err(Invalid::new(format!("{path}/properties"), "missing")),
            Some(_) => {
                return Err(Invalid::new(
                    format!("{path}/properties"),
                    "must be an object",
                ));
            }
        };
        let mut properties = Vec::with_capacity(props.len());
        for (name, prop) in props {
            let ppath = format!("{path}/properties/{name}");
            let prop = prop
                .as_object()
                .ok_or_else(|| Invalid::new(&ppath, "must be an object"))?;
            let text = |key: &str, default: &str| -> Result<String, Invalid> {
                match prop.get(key) {
                    None => Ok(default.to_owned()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(_) => Err(Invalid::new(format!("{ppath}/{key}"), "must be a string")),
                }
            };
            let kind = text("type", "string")?;
            let required = match prop.get("required") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(Invalid::new(
                        format!("{ppath}/required"),
                        "must be true or false",
                    ));
                }
            };
            properties.push(AttributeConfig {
                native_name: text("nativeName", name)?,
                native_type: text("nativeType", &kind)?,
                kind,
                name: name.clone(),
                required,
            });
        }
        out.insert(
            type_name.clone(),
            ObjectTypeConfig {
                native_type,
                properties,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "connectorRef": {"bundleName": "org.forgerock.openicf.connectors.salesforce-connector"},
            "configurationProperties": {
                "clientId": "key", "clientSecret": "secret-value", "refreshToken": "refresh-value",
                "grantType": "refresh_token",
                "loginUrl": "https://test.salesforce.com/services/oauth2/token",
                "instanceUrl": null, "version": 44, "connectTimeout": 120000,
                "proxyHost": null, "proxyPort": 3128, "maximumConnections": 10,
                "supportedObjectTypes": ["User"]
            },
            "enabled": true,
            "objectTypes": {"User": {"nativeType": "User", "properties": {
                "Username": {"type": "string", "nativeName": "Username", "nativeType": "string", "required": true},
                "IsActive": {"type": "boolean", "nativeName": "IsActive", "nativeType": "boolean"}
            }}}
        })
    }

    #[test]
    fn parses_idm_sample_format() {
        let c = ProvisionerConfig::from_json("salesforce", &sample()).unwrap();
        assert!(c.enabled);
        assert_eq!(c.config_id(), "config/provisioner.openicf/salesforce");
        assert_eq!(c.client.api_version, "44.0");
        assert_eq!(c.client.login_url.host_str(), Some("test.salesforce.com"));
        assert_eq!(
            c.client.refresh_token.as_ref().unwrap().expose(),
            "refresh-value"
        );
        assert_eq!(c.client.connect_timeout, Duration::from_secs(120));
        assert_eq!(c.client.maximum_connections, 10);
        assert_eq!(c.client.proxy, None);
        assert_eq!(c.supported_object_types, vec!["User"]);
        let user = &c.object_types["User"];
        assert_eq!(user.properties.len(), 2);
        assert!(
            user.properties
                .iter()
                .any(|p| p.name == "Username" && p.required)
        );
        assert!(
            user.properties
                .iter()
                .any(|p| p.name == "IsActive" && p.kind == "boolean" && !p.required)
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("secret-value") && !shown.contains("refresh-value"),
            "{shown}"
        );
    }

    #[test]
    fn proxy_and_versions_and_extras() {
        let mut v = sample();
        let p = v["configurationProperties"].as_object_mut().unwrap();
        p.insert("proxyHost".into(), json!("proxy.example"));
        p.insert("proxyPort".into(), json!(8080));
        p.insert("version".into(), json!("v62.0"));
        p.insert("queryBatchSize".into(), json!(500));
        p.insert("connectTimeout".into(), json!(-1));
        let c = ProvisionerConfig::from_json("salesforce", &v).unwrap();
        assert_eq!(c.client.proxy.as_deref(), Some("http://proxy.example:8080"));
        assert_eq!(c.client.api_version, "62.0");
        assert_eq!(c.client.query_batch_size, 500);
        assert!(
            !c.remove_access_on_deactivation,
            "grants are kept by default"
        );
        assert_eq!(c.client.connect_timeout, Duration::from_secs(120));
        let p = v["configurationProperties"].as_object_mut().unwrap();
        p.insert("removeAccessOnDeactivation".into(), json!(true));
        let c = ProvisionerConfig::from_json("salesforce", &v).unwrap();
        assert!(c.remove_access_on_deactivation);
        let p = v["configurationProperties"].as_object_mut().unwrap();
        p.insert("removeAccessOnDeactivation".into(), json!("yes"));
        let e = ProvisionerConfig::from_json("salesforce", &v).unwrap_err();
        assert_eq!(
            e.path,
            "/configurationProperties/removeAccessOnDeactivation"
        );
    }

    #[test]
    fn errors_name_the_json_path() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "loginUrl",
                json!("not a url"),
                "/configurationProperties/loginUrl",
            ),
            (
                "loginUrl",
                json!("ftp://x/y"),
                "/configurationProperties/loginUrl",
            ),
            (
                "version",
                json!("sixty"),
                "/configurationProperties/version",
            ),
            (
                "maximumConnections",
                json!(0),
                "/configurationProperties/maximumConnections",
            ),
            (
                "grantType",
                json!("password"),
                "/configurationProperties/grantType",
            ),
            ("clientId", json!(""), "/configurationProperties/clientId"),
            (
                "queryBatchSize",
                json!(5000),
                "/configurationProperties/queryBatchSize",
            ),
        ];
        for (key, bad, path) in cases {
            let mut v = sample();
            v["configurationProperties"][key] = bad;
            let e = ProvisionerConfig::from_json("salesforce", &v).unwrap_err();
            assert_eq!(e.path, path, "{key}: {e}");
        }
        let mut v = sample();
        v["objectTypes"]["User"]["properties"]["Username"]["required"] = json!("yes");
        let e = ProvisionerConfig::from_json("salesforce", &v).unwrap_err();
        assert_eq!(e.path, "/objectTypes/User/properties/Username/required");
    }

    #[test]
    fn a_disabled_connector_may_lack_credentials() {
        let mut v = sample();
        v["enabled"] = json!(false);
        v["configurationProperties"]["clientId"] = Value::Null;
        v["configurationProperties"]["refreshToken"] = Value::Null;
        let c = ProvisionerConfig::from_json("salesforce", &v).unwrap();
        assert!(!c.enabled);
        assert!(c.client.refresh_token.is_none());
    }
}
