//! Signing keys: where they come from (`source`), how they are fetched (`fetch`), how documents
//! become keys (`parse`), the `KeyStore` that merges them by kid and keeps them fresh, and which
//! keys still verify tokens for whom (`usage`: the drain view after a rotation).
//!
//! Leaves token handling to `verify`: the store only answers "which keys might have signed a
//! token with this kid" and "go and look again".

pub mod fetch;
pub mod parse;
pub mod store;
pub mod usage;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod usage_tests;

pub use parse::{KeyFamily, ParsedKey};
pub use store::{KeyStore, KeyStoreError, SourceStatus, VerifyingKey};

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySourceConfig {
    pub url: String,
    /// Empty: unbound (OpenMetadata's behaviour: any key vouches for any issuer).
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileConfig {
    pub path: PathBuf,
    pub kid: Option<String>,
    /// Empty: unbound. OpenMetadata's own public key file is bound to its issuer.
    pub issuers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct JwksConfig {
    pub refresh_interval: Duration,
    pub min_refresh_interval: Duration,
    pub fetch_timeout: Duration,
    pub max_stale: Duration,
}
