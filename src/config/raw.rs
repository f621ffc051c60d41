//! The configuration file as written: serde structs with camelCase keys, unknown keys rejected.
//!
//! Nothing here interprets a value; `validate.rs` turns a `RawConfig` into a typed `Config`.
//! Every field is optional so that defaults and environment overrides can fill the gaps. The
//! structs also serialise, so `provenance.rs` can list which keys an input set (no secret is ever
//! held here: the follow token is a file path, or an environment variable read in `validate.rs`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub upstream: Option<RawUpstream>,
    pub authentication_configuration: Option<RawAuthentication>,
    pub authorizer_configuration: Option<RawAuthorizer>,
    pub jwks: Option<RawJwks>,
    pub token_cache: Option<RawTokenCache>,
    pub forward_auth: Option<RawForwardAuth>,
    pub public_paths: Option<Vec<String>>,
    pub default_public_paths: Option<bool>,
    pub routes: Option<Vec<RawRoute>>,
    pub default_route: Option<RawDefaultRoute>,
    pub openmetadata: Option<RawOpenMetadata>,
    pub revocation_check: Option<RawRevocationCheck>,
    pub feed: Option<RawFeed>,
}

/// The opt-in check that OpenMetadata still accepts a verified token.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRevocationCheck {
    pub enabled: Option<bool>,
    pub recheck_interval: Option<String>,
    pub timeout: Option<String>,
    /// `open` (default) or `closed`.
    pub on_unavailable: Option<String>,
    pub max_entries: Option<u64>,
}

/// How the gateway relates to the OpenMetadata server it protects.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOpenMetadata {
    /// Trust the key OpenMetadata signs its bot and personal access tokens with (default true).
    pub trust_server_key: Option<bool>,
    /// `jwtTokenConfiguration.jwtissuer` (`JWT_ISSUER`).
    pub jwt_issuer: Option<String>,
    /// `jwtTokenConfiguration.keyId` (`JWT_KEY_ID`).
    pub key_id: Option<String>,
    /// `jwtTokenConfiguration.rsapublicKeyFilePath` (`RSA_PUBLIC_KEY_FILE_PATH`).
    pub public_key_file: Option<String>,
    /// Read the server's published security settings and follow them (default: on when no key
    /// source is configured explicitly).
    pub follow_server_config: Option<bool>,
    /// How often the server's settings are read again (default 60s).
    pub follow_interval: Option<String>,
    /// A credential for the admin-only `/api/v1/system/security/config`.
    pub follow_token: Option<RawFollowToken>,
}

/// `feed`: the activity feed's cookie keys, as files. Keys can also come from the environment
/// (`OM_GATEWAY_FEED_KEY`, `OM_GATEWAY_FEED_KEY_FILE` and their `PREVIOUS` twins), never inline.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFeed {
    pub key_file: Option<String>,
    pub previous_key_file: Option<String>,
    /// Set by `env.rs`, never from the file.
    #[serde(skip)]
    pub key_from_environment: Option<super::feed_key::EnvironmentKey>,
    #[serde(skip)]
    pub previous_key_from_environment: Option<super::feed_key::EnvironmentKey>,
}

/// `openmetadata.followToken`: where the bearer token for the admin endpoint is read from. The
/// token itself never sits in the configuration file (`OM_GATEWAY_FOLLOW_TOKEN` is the other way).
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawFollowToken {
    pub token_file: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub tls: Option<RawServerTls>,
    pub max_header_bytes: Option<u64>,
    pub request_timeout: Option<String>,
    pub shutdown_grace_period: Option<String>,
    pub log_format: Option<String>,
    pub header_read_timeout: Option<String>,
    pub max_uri_bytes: Option<u64>,
    pub max_connections: Option<u64>,
    pub access_log: Option<bool>,
    pub workers: Option<u64>,
    pub websocket_paths: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServerTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub reload_interval: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawUpstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub timeout: Option<String>,
    pub tls: Option<RawUpstreamTls>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle_per_host: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca_file: Option<String>,
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuthentication {
    pub provider: Option<String>,
    pub public_key_urls: Option<Vec<String>>,
    pub jwt_principal_claims: Option<Vec<String>>,
    pub jwt_principal_claims_mapping: Option<Vec<String>>,
    pub token_validation_algorithm: Option<String>,
    pub key_sources: Option<Vec<RawKeySource>>,
    pub public_key_files: Option<Vec<RawKeyFile>>,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub clock_skew: Option<String>,
    pub allow_tokens_without_expiry: Option<String>,
    pub roles_claim: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKeySource {
    pub url: String,
    pub issuers: Option<Vec<String>>,
    pub audiences: Option<Vec<String>>,
    pub ca_file: Option<String>,
}

/// `publicKeyFiles` entries: a bare path, or `{file, kid}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawKeyFile {
    Path(String),
    WithKid(RawKeyFileWithKid),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawKeyFileWithKid {
    pub file: String,
    pub kid: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAuthorizer {
    pub admin_principals: Option<Vec<String>>,
    pub principal_domain: Option<String>,
    pub enforce_principal_domain: Option<bool>,
    pub allowed_domains: Option<Vec<String>>,
    pub use_roles_from_provider: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawJwks {
    pub refresh_interval: Option<String>,
    pub min_refresh_interval: Option<String>,
    pub fetch_timeout: Option<String>,
    pub max_stale: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTokenCache {
    pub max_entries: Option<u64>,
    pub ttl: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawForwardAuth {
    pub path: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matcher: Option<RawMatch>,
    pub require: Option<RawRequire>,
    pub deny: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawDefaultRoute {
    pub require: Option<RawRequire>,
    pub deny: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMatch {
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    pub path_regex: Option<String>,
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRequire {
    pub is_bot: Option<bool>,
    pub token_types: Option<Vec<String>>,
    pub roles_any: Option<Vec<String>>,
    pub roles_all: Option<Vec<String>>,
    pub principals: Option<Vec<String>>,
    pub email_domains: Option<Vec<String>>,
    pub claims: Option<BTreeMap<String, RawClaimValue>>,
}

/// A `claims` requirement: one accepted value or a list of them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawClaimValue {
    Many(Vec<serde_json::Value>),
    One(serde_json::Value),
}
