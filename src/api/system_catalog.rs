//! `GET /openidm/system/{system}/{type}` for the access catalog every connector serves
//! read-only: `PermissionSet`, `PermissionSetGroup`, `Group`, `UserRole`, `Profile`. They are
//! what the entitlement attributes name (permission sets by API name, the others by developer
//! name), so an operator can look the names up with `_queryFilter` as on any system object.
//! Only what can be granted is listed: permission sets neither a profile nor a permission set
//! group owns, and public groups (`Type = 'Regular'`). An object type the provisioner file
//! configures under the same name keeps its configuration.

use axum::http::StatusCode;
use axum::response::Response;

use super::body::Params;
use super::error::ApiError;
use super::render;
use super::system_connector::connected_client;
use super::system_query::{self, ObjectFields, Source};
use crate::config::provisioner::AttributeConfig;
use crate::services::AppState;

/// A catalog object type: its name (also the sObject), the condition keeping what can be
/// granted, and its attributes (Salesforce field, JSON type).
struct CatalogType {
    name: &'static str,
    base: Option<&'static str>,
    attributes: &'static [(&'static str, &'static str)],
}

const CATALOG: &[CatalogType] = &[
    CatalogType {
        name: "PermissionSet",
        base: Some("IsOwnedByProfile = false AND PermissionSetGroupId = null"),
        attributes: &[
            ("Name", "string"),
            ("Label", "string"),
            ("Description", "string"),
            ("LicenseId", "string"),
            ("IsCustom", "boolean"),
        ],
    },
    CatalogType {
        name: "PermissionSetGroup",
        base: None,
        attributes: &[
            ("DeveloperName", "string"),
            ("MasterLabel", "string"),
            ("Description", "string"),
            ("Status", "string"),
        ],
    },
    CatalogType {
        name: "Group",
        base: Some("Type = 'Regular'"),
        attributes: &[
            ("Name", "string"),
            ("DeveloperName", "string"),
            ("Type", "string"),
            ("DoesIncludeBosses", "boolean"),
        ],
    },
    CatalogType {
        name: "UserRole",
        base: None,
        attributes: &[
            ("Name", "string"),
            ("DeveloperName", "string"),
            ("ParentRoleId", "string"),
            ("RollupDescription", "string"),
        ],
    },
    CatalogType {
        name: "Profile",
        base: None,
        attributes: &[
            ("Name", "string"),
            ("UserLicenseId", "string"),
            ("UserType", "string"),
        ],
    },
];

/// A catalog object type of a configured system.
pub struct Catalog<'a> {
    state: &'a AppState,
    system: &'a str,
    kind: &'static CatalogType,
    attributes: Vec<AttributeConfig>,
}

impl<'a> Catalog<'a> {
    /// The catalog type `object_type` of `system`, unless the system is unknown, the type is
    /// not a catalog type, or the provisioner file configures it.
    pub fn of(state: &'a AppState, system: &'a str, object_type: &str) -> Option<Catalog<'a>> {
        let config = state.conf.system(system)?;
        if config.object_types.contains_key(object_type) {
            return None;
        }
        let kind = CATALOG.iter().find(|c| c.name == object_type)?;
        let attributes = kind
            .attributes
            .iter()
            .map(|(name, kind)| AttributeConfig {
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                native_name: (*name).to_owned(),
                native_type: (*kind).to_owned(),
                required: false,
            })
            .collect();
        Some(Catalog {
            state,
            system,
            kind,
            attributes,
        })
    }

    fn fields(&self) -> ObjectFields<'_> {
        ObjectFields {
            object: format!("system/{}/{}", self.system, self.kind.name),
            attributes: &self.attributes,
        }
    }

    fn source(&self) -> Source<'static> {
        Source {
            native_type: self.kind.name,
            rev_field: None,
            base: self.kind.base,
            described: false,
        }
    }

    /// `GET …/{type}?_queryFilter=…`
    pub async fn query(&self, params: &Params) -> Result<Response, ApiError> {
        params.allow_only(system_query::QUERY_PARAMS)?;
        let spec = system_query::parse(params, &self.fields())?;
        let client = connected_client(self.state, self.system).await?;
        system_query::answer(client, &spec, &self.source()).await
    }

    /// `GET …/{type}/{id}`: the object, or IDM's 404.
    pub async fn read(&self, id: &str, params: &Params) -> Result<Response, ApiError> {
        params.allow_only(&["_fields", "_prettyPrint"])?;
        let client = connected_client(self.state, self.system).await?;
        let found = system_query::by_id(client, &self.fields(), &self.source(), id, params)
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "Object system/{}/{}/{id} not found",
                    self.system, self.kind.name
                ))
            })?;
        Ok(render::json(
            StatusCode::OK,
            &found,
            params.flag("_prettyPrint")?,
        ))
    }

    /// What a write to a catalog object answers.
    pub fn read_only(&self) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "system/{}/{} is a read-only catalog: manage it in Salesforce Setup",
                self.system, self.kind.name
            ),
        )
    }
}
