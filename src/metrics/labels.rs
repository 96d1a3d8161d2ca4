//! The label sets of idm-sync's metrics. Each label's values come from a closed set (connector
//! and mapping names from the configuration, operations, outcomes, matched routes): never a
//! user id, a name, a raw path or a secret, so no request can grow a series without bound.

use prometheus_client::encoding::EncodeLabelSet;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SystemLabels {
    pub system: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub system: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub system: String,
    pub mapping: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunEndLabels {
    pub system: String,
    pub mapping: String,
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabels {
    pub system: String,
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PauseLabels {
    pub system: String,
    pub reason: String,
}

/// One HTTP exchange: `route` is the router's matched template (`/openidm/managed/{object_type}/{id}`),
/// `unmatched` for a path no route serves; `method` is `other` beyond the standard ones.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}
