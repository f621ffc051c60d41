//! Where each configuration value came from: the gateway's file, an environment variable,
//! OpenMetadata's openmetadata.yaml, the running server (`follow`), or the built-in default.
//!
//! Keys are the gateway file's own key paths (`authorizerConfiguration.principalDomain`); lists
//! are one key (`routes`, `authenticationConfiguration.publicKeyUrls`). `om-gateway check`
//! prints them, and the server's published settings are layered in only where the operator set
//! nothing explicitly (`Origin::is_explicit`).

use super::raw::RawConfig;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// The input a value was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File,
    /// The environment variable that set it.
    Env(&'static str),
    OpenMetadataYaml,
    /// The server endpoint that published it.
    Server(&'static str),
}

impl Origin {
    /// Set by the operator in the gateway's own file or environment: the server never overrides
    /// these. openmetadata.yaml is the server's seed configuration, which the server's database
    /// supersedes in OpenMetadata 2.x, so its values yield to the server's published ones.
    pub fn is_explicit(&self) -> bool {
        matches!(self, Origin::File | Origin::Env(_))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => write!(f, "default"),
            Origin::File => write!(f, "file"),
            Origin::Env(variable) => write!(f, "env {variable}"),
            Origin::OpenMetadataYaml => write!(f, "openmetadata.yaml"),
            Origin::Server(endpoint) => write!(f, "server {endpoint}"),
        }
    }
}

/// Key path → origin; a key not listed has its default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    keys: BTreeMap<String, Origin>,
}

impl Provenance {
    pub fn origin(&self, key: &str) -> Origin {
        self.keys.get(key).cloned().unwrap_or(Origin::Default)
    }

    pub fn set(&mut self, key: &str, origin: Origin) {
        self.keys.insert(key.to_string(), origin);
    }

    /// Every key some input set, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.keys.iter().map(|(key, origin)| (key.as_str(), origin))
    }

    /// Mark every key `raw` sets as coming from `origin`.
    pub(super) fn record_set_keys(&mut self, raw: &RawConfig, origin: &Origin) {
        for key in set_keys(raw) {
            self.keys.insert(key, origin.clone());
        }
    }
}

/// The key paths a raw configuration sets: leaves of its JSON form that are not null, where a
/// list counts as one leaf.
pub(super) fn set_keys(raw: &RawConfig) -> Vec<String> {
    let mut keys = Vec::new();
    if let Ok(value) = serde_json::to_value(raw) {
        collect(&value, "", &mut keys);
    }
    keys
}

fn collect(value: &Value, path: &str, keys: &mut Vec<String>) {
    match value {
        Value::Null => {}
        Value::Object(fields) => {
            for (name, child) in fields {
                let child_path = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                collect(child, &child_path, keys);
            }
        }
        _ if !path.is_empty() => keys.push(path.to_string()),
        _ => {}
    }
}
