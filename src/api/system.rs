//! `/openidm/system`: the Salesforce connector as IDM exposes a provisioner — the `test` action,
//! and read, create, update and delete of its objects (queries are in `system_query.rs`).
//!
//! Delete deactivates (`IsActive = false`): Salesforce has no delete for `User`.
//!
//! Errors from Salesforce map onto IDM's shape:
//!
//! | client error | HTTP |
//! |---|---|
//! | not found | 404 |
//! | rejected (validation, bad SOQL) | 400, Salesforce's `errorCode` and message in `message`, all errors in `detail.errors` |
//! | API request limit reached | 503 |
//! | connector unusable: bad client credentials, re-authorization needed, never authorized, disabled | 503 |
//! | unavailable after retries (503s, row locks, timeouts, connection failures) | 503 |
//! | an answer that is not Salesforce's | 502 |
//!
//! 503 for the connector's own states: the request was fine and will work once an operator fixes
//! the connector, which is what "Service Unavailable" says; the message says what to fix.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::AppState;
use super::body::{JsonBody, Params};
use super::error::ApiError;
use super::render;
use super::salesforce_errors::sf_error;
use super::system_catalog::Catalog;
use super::system_connector::{disabled_message, system_config, usable};
use super::system_query::{self, ObjectFields, REV_FIELD, Renderer, Source};
use crate::config::ProvisionerConfig;
use crate::config::provisioner::ObjectTypeConfig;
use crate::salesforce::{ErrorKind, Record, SalesforceClient, SalesforceError, USER};

const ACTION_PARAMS: &[&str] = &["_action", "_prettyPrint"];
const READ_PARAMS: &[&str] = &["_fields", "_prettyPrint"];

/// What IDM's Salesforce connector calls itself in the test action.
const DISPLAY_NAME: &str = "Salesforce Connector";

/// `POST /openidm/system?_action=test`: the test of every configured system, as an array.
pub async fn collection_action(
    State(state): State<AppState>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    check_action(&params, "test")?;
    let mut reports = Vec::new();
    for system in &state.conf.systems {
        reports.push(test_report(system, state.connectors.get(&system.name)).await);
    }
    Ok(render::json(
        StatusCode::OK,
        &Value::Array(reports),
        params.flag("_prettyPrint")?,
    ))
}

/// `GET /openidm/system`: actions need POST.
pub async fn collection_get(params: Params) -> Result<Response, ApiError> {
    match params.get("_action") {
        Some(action) => Err(ApiError::bad_request(format!(
            "Unknown action '{action}' for GET on system: actions are POSTed (POST /openidm/system?_action=test)"
        ))),
        None => Err(ApiError::bad_request(
            "Querying the list of systems is not supported: POST /openidm/system?_action=test reports every configured system",
        )),
    }
}

/// `POST /openidm/system/{system}?_action=test`
pub async fn system_action(
    State(state): State<AppState>,
    Path(system): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    params.allow_only(ACTION_PARAMS)?;
    let config = system_config(&state, &system)?;
    check_action(&params, "test")?;
    let report = test_report(config, state.connectors.get(&config.name)).await;
    Ok(render::json(
        StatusCode::OK,
        &report,
        params.flag("_prettyPrint")?,
    ))
}

fn check_action(params: &Params, supported: &str) -> Result<(), ApiError> {
    match params.get("_action") {
        Some(a) if a == supported => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Unknown action '{other}': the supported action is '{supported}'"
        ))),
        None => Err(ApiError::bad_request(format!(
            "POST here needs _action={supported}"
        ))),
    }
}

/// The test action's report, in the field order of IDM's provisioner: `name, enabled, config,
/// connectorRef, displayName, objectTypes, [error], ok`. One token call at most (none when the
/// connector is known to have bad credentials) and one API call.
pub async fn test_report(system: &ProvisionerConfig, client: Option<&SalesforceClient>) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(system.name));
    let enabled = match client {
        Some(c) => c.enabled().await,
        None => system.enabled,
    };
    out.insert("enabled".into(), json!(enabled));
    out.insert("config".into(), json!(system.config_id()));
    out.insert("connectorRef".into(), system.connector_ref.clone());
    out.insert("displayName".into(), json!(DISPLAY_NAME));
    let types: Vec<&String> = system.object_types.keys().collect();
    out.insert("objectTypes".into(), json!(types));
    let error = if !enabled {
        Some(disabled_message(system))
    } else {
        match client {
            None => {
                Some("Connector not available: the Salesforce client could not be set up".into())
            }
            Some(client) => match client.test().await {
                Ok(_) => None,
                Err(e) => Some(test_error(&e)),
            },
        }
    };
    let ok = error.is_none();
    if let Some(e) = error {
        out.insert("error".into(), json!(e));
    }
    out.insert("ok".into(), json!(ok));
    Value::Object(out)
}

/// What failed, for an operator. Client errors never carry secrets (see `salesforce::errors`).
fn test_error(e: &SalesforceError) -> String {
    match e.kind() {
        ErrorKind::BadCredentials => format!("Bad credentials: {e}"),
        ErrorKind::NeedsReauthorization => format!("Re-authorization needed: {e}"),
        ErrorKind::NotAuthorized => {
            format!("Not authorized: {e}; run `idm-sync salesforce authorize`")
        }
        ErrorKind::RateLimited => format!("Salesforce API request limit reached: {e}"),
        ErrorKind::Transient => format!("Salesforce unreachable or unavailable: {e}"),
        _ => format!("Connector test failed: {e}"),
    }
}

/// A configured system's object type, as the routes name it.
pub struct SystemObject<'a> {
    pub system: &'a ProvisionerConfig,
    client: Option<&'a SalesforceClient>,
    pub object_type: String,
    pub object: &'a ObjectTypeConfig,
}

impl<'a> SystemObject<'a> {
    pub fn resolve(
        state: &'a AppState,
        system: &str,
        object_type: &str,
    ) -> Result<SystemObject<'a>, ApiError> {
        let config = system_config(state, system)?;
        let object = config
            .object_types
            .get(object_type)
            // The client speaks to `User` only; another configured type has no operations here.
            .filter(|o| o.native_type == USER)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Resource 'system/{system}/{object_type}' not found"
                ))
            })?;
        Ok(SystemObject {
            system: config,
            client: state.connectors.get(&config.name),
            object_type: object_type.to_owned(),
            object,
        })
    }

    pub fn path(&self) -> String {
        format!("system/{}/{}", self.system.name, self.object_type)
    }

    pub fn fields(&self) -> ObjectFields<'a> {
        ObjectFields {
            object: self.path(),
            attributes: &self.object.properties,
        }
    }

    /// The client, if the connector may be used.
    pub async fn connected(&self) -> Result<&'a SalesforceClient, ApiError> {
        usable(self.system, self.client).await
    }

    fn not_found(&self, id: &str) -> ApiError {
        ApiError::not_found(format!("Object {}/{id} not found", self.path()))
    }

    /// Reads one object with the `_fields` selection; `None` if it does not exist.
    /// The object, or IDM's 404 for it.
    async fn read_existing(&self, id: &str, fields: Option<&str>) -> Result<Value, ApiError> {
        self.read(id, fields)
            .await?
            .ok_or_else(|| self.not_found(id))
    }

    async fn read(&self, id: &str, fields: Option<&str>) -> Result<Option<Value>, ApiError> {
        if !is_salesforce_id(id) {
            return Ok(None);
        }
        let client = self.connected().await?;
        let select = self
            .fields()
            .selection(fields)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let available = client.user_field_names().await.map_err(sf_error)?;
        let mut natives: Vec<&str> = vec!["Id", REV_FIELD];
        for (_, native) in &select {
            if available.contains(&native.to_ascii_lowercase()) && !natives.contains(&&**native) {
                natives.push(native);
            }
        }
        let record = client.get(id, &natives).await.map_err(sf_error)?;
        Ok(record.map(|r| {
            Renderer {
                select,
                rev: Some(REV_FIELD),
            }
            .object(&r)
        }))
    }

    /// The request body as a Salesforce record: attribute names become their native names
    /// (`__NAME__` is `Username`); values go as they are. `_id` and `_rev` are IDM's, not fields.
    fn record(&self, body: Value) -> Result<Record, ApiError> {
        let Value::Object(map) = body else {
            return Err(ApiError::bad_request(
                "The request body must be a JSON object",
            ));
        };
        let mut record = Record::new();
        for (name, value) in map {
            if name == "_id" || name == "_rev" {
                continue;
            }
            let native = match self.object.properties.iter().find(|a| a.name == name) {
                Some(a) if a.native_name == "__NAME__" => "Username".to_owned(),
                Some(a) => a.native_name.clone(),
                None => name,
            };
            record.insert(native, value);
        }
        Ok(record)
    }
}

/// Salesforce ids are 15 or 18 letters and digits; anything else names no object.
fn is_salesforce_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `GET /openidm/system/{system}/{type}?_queryFilter=…` (the translation is `system_query.rs`'s).
pub async fn query(
    State(state): State<AppState>,
    Path((system, object_type)): Path<(String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(catalog) = Catalog::of(&state, &system, &object_type) {
        return catalog.query(&params).await;
    }
    params.allow_only(system_query::QUERY_PARAMS)?;
    let target = SystemObject::resolve(&state, &system, &object_type)?;
    let spec = system_query::parse(&params, &target.fields())?;
    let client = target.connected().await?;
    system_query::answer(client, &spec, &Source::of_users(&target.object.native_type)).await
}

/// `GET /openidm/system/{system}/{type}/{id}`
pub async fn read(
    State(state): State<AppState>,
    Path((system, object_type, id)): Path<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(catalog) = Catalog::of(&state, &system, &object_type) {
        return catalog.read(&id, &params).await;
    }
    params.allow_only(READ_PARAMS)?;
    let target = SystemObject::resolve(&state, &system, &object_type)?;
    let object = target.read_existing(&id, params.get("_fields")).await?;
    Ok(render::json(
        StatusCode::OK,
        &object,
        params.flag("_prettyPrint")?,
    ))
}

/// `POST /openidm/system/{system}/{type}?_action=create` → 201 with the created object;
/// `?_action=liveSync` → one liveSync pass (no body needed).
pub async fn type_action(
    State(state): State<AppState>,
    Path((system, object_type)): Path<(String, String)>,
    params: Params,
    body: Result<JsonBody<Value>, ApiError>,
) -> Result<Response, ApiError> {
    if let Some(catalog) = Catalog::of(&state, &system, &object_type) {
        return Err(catalog.read_only());
    }
    params.allow_only(&["_action", "_fields", "_prettyPrint"])?;
    let target = SystemObject::resolve(&state, &system, &object_type)?;
    match params.get("_action") {
        Some("liveSync") => {
            return super::system_live_sync::live_sync(&state, &target.path(), &params).await;
        }
        Some(other) if other != "create" => {
            return Err(ApiError::bad_request(format!(
                "Unknown action '{other}': the supported actions are 'create' and 'liveSync'"
            )));
        }
        _ => check_action(&params, "create")?,
    }
    let JsonBody(body) = body?;
    let record = target.record(body)?;
    let client = target.connected().await?;
    let id = client.create(&record).await.map_err(sf_error)?;
    let object = target.read_existing(&id, params.get("_fields")).await?;
    let location = format!("/openidm/{}/{id}", target.path());
    let mut response = render::json(StatusCode::CREATED, &object, params.flag("_prettyPrint")?);
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// `PUT /openidm/system/{system}/{type}/{id}`: a PATCH to Salesforce with the given attributes
/// (attributes not given keep their value), then the object as it is now.
pub async fn update(
    State(state): State<AppState>,
    Path((system, object_type, id)): Path<(String, String, String)>,
    params: Params,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    if let Some(catalog) = Catalog::of(&state, &system, &object_type) {
        return Err(catalog.read_only());
    }
    params.allow_only(READ_PARAMS)?;
    let target = SystemObject::resolve(&state, &system, &object_type)?;
    if !is_salesforce_id(&id) {
        return Err(target.not_found(&id));
    }
    let record = target.record(body)?;
    let client = target.connected().await?;
    client
        .update(&id, &record)
        .await
        .map_err(|e| not_found_or(e, &target, &id))?;
    let object = target.read_existing(&id, params.get("_fields")).await?;
    Ok(render::json(
        StatusCode::OK,
        &object,
        params.flag("_prettyPrint")?,
    ))
}

/// `DELETE /openidm/system/{system}/{type}/{id}`: deactivation (`IsActive = false`), since a
/// Salesforce user cannot be deleted; answers the object after deactivation.
pub async fn deactivate(
    State(state): State<AppState>,
    Path((system, object_type, id)): Path<(String, String, String)>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(catalog) = Catalog::of(&state, &system, &object_type) {
        return Err(catalog.read_only());
    }
    params.allow_only(READ_PARAMS)?;
    let target = SystemObject::resolve(&state, &system, &object_type)?;
    if !is_salesforce_id(&id) {
        return Err(target.not_found(&id));
    }
    let client = target.connected().await?;
    client
        .deactivate(&id)
        .await
        .map_err(|e| not_found_or(e, &target, &id))?;
    let object = target.read_existing(&id, params.get("_fields")).await?;
    Ok(render::json(
        StatusCode::OK,
        &object,
        params.flag("_prettyPrint")?,
    ))
}

fn not_found_or(e: SalesforceError, target: &SystemObject<'_>, id: &str) -> ApiError {
    if e.kind() == ErrorKind::NotFound {
        target.not_found(id)
    } else {
        sf_error(e)
    }
}
