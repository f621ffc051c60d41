//! Environment variables: the gateway's own `OM_GATEWAY_*` and OpenMetadata's names, read
//! through a trait so tests pass a map instead of touching the process environment.

use super::feed_key::EnvironmentKey;
use super::raw::{
    RawAuthentication, RawAuthorizer, RawConfig, RawFeed, RawOpenMetadata, RawServer, RawUpstream,
};
use super::ConfigProblem;
use std::collections::HashMap;

/// Where variables come from.
pub trait Environment: Send + Sync {
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl Environment for HashMap<&'static str, &'static str> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|value| value.to_string())
    }
}

/// Every variable the gateway reads. Deployment manifests are checked against this list.
pub const KNOWN_VARIABLES: &[&str] = &[
    "OM_GATEWAY_CONFIG",
    "OM_GATEWAY_OPENMETADATA_CONFIG",
    "OM_GATEWAY_LISTEN",
    "OM_GATEWAY_ADMIN_LISTEN",
    "OM_GATEWAY_UPSTREAM_URL",
    "OM_GATEWAY_LOG",
    "OM_GATEWAY_LOG_FORMAT",
    "OM_GATEWAY_FEED_KEY",
    "OM_GATEWAY_FEED_KEY_FILE",
    "OM_GATEWAY_FEED_PREVIOUS_KEY",
    "OM_GATEWAY_FEED_PREVIOUS_KEY_FILE",
    "AUTHENTICATION_PROVIDER",
    "AUTHENTICATION_PUBLIC_KEYS",
    "AUTHENTICATION_JWT_PRINCIPAL_CLAIMS",
    "AUTHENTICATION_JWT_PRINCIPAL_CLAIMS_MAPPING",
    "AUTHORIZER_ADMIN_PRINCIPALS",
    "AUTHORIZER_PRINCIPAL_DOMAIN",
    "AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN",
    "AUTHORIZER_ALLOWED_DOMAINS",
    "AUTHORIZER_USE_ROLES_FROM_PROVIDER",
    "AUTHENTICATION_TOKEN_VALIDATION_ALGORITHM",
    "JWT_ISSUER",
    "JWT_KEY_ID",
    "RSA_PUBLIC_KEY_FILE_PATH",
    "OM_GATEWAY_FOLLOW_TOKEN",
];

/// The key each override variable sets, and whether an empty value still sets it (two lists may
/// be emptied on purpose). `provenance.rs` names these variables as a value's origin; a unit test
/// checks this table against `apply_overrides`.
pub const OVERRIDES: &[(&str, &str, bool)] = &[
    ("OM_GATEWAY_LISTEN", "server.listen", false),
    ("OM_GATEWAY_ADMIN_LISTEN", "server.adminListen", false),
    ("OM_GATEWAY_LOG_FORMAT", "server.logFormat", false),
    ("OM_GATEWAY_UPSTREAM_URL", "upstream.url", false),
    (
        "AUTHENTICATION_PROVIDER",
        "authenticationConfiguration.provider",
        false,
    ),
    (
        "AUTHENTICATION_PUBLIC_KEYS",
        "authenticationConfiguration.publicKeyUrls",
        false,
    ),
    (
        "AUTHENTICATION_JWT_PRINCIPAL_CLAIMS",
        "authenticationConfiguration.jwtPrincipalClaims",
        false,
    ),
    (
        "AUTHENTICATION_JWT_PRINCIPAL_CLAIMS_MAPPING",
        "authenticationConfiguration.jwtPrincipalClaimsMapping",
        true,
    ),
    (
        "AUTHENTICATION_TOKEN_VALIDATION_ALGORITHM",
        "authenticationConfiguration.tokenValidationAlgorithm",
        false,
    ),
    (
        "AUTHORIZER_ADMIN_PRINCIPALS",
        "authorizerConfiguration.adminPrincipals",
        false,
    ),
    (
        "AUTHORIZER_PRINCIPAL_DOMAIN",
        "authorizerConfiguration.principalDomain",
        false,
    ),
    (
        "AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN",
        "authorizerConfiguration.enforcePrincipalDomain",
        false,
    ),
    (
        "AUTHORIZER_ALLOWED_DOMAINS",
        "authorizerConfiguration.allowedDomains",
        true,
    ),
    (
        "AUTHORIZER_USE_ROLES_FROM_PROVIDER",
        "authorizerConfiguration.useRolesFromProvider",
        false,
    ),
    ("JWT_ISSUER", "openmetadata.jwtIssuer", false),
    ("JWT_KEY_ID", "openmetadata.keyId", false),
    (
        "RSA_PUBLIC_KEY_FILE_PATH",
        "openmetadata.publicKeyFile",
        false,
    ),
];

/// The variables of `OVERRIDES` set in `environment`, with the key each sets.
pub fn overridden_keys(environment: &dyn Environment) -> Vec<(&'static str, &'static str)> {
    OVERRIDES
        .iter()
        .filter(|(name, _, empty_counts)| {
            environment
                .var(name)
                .is_some_and(|value| *empty_counts || !value.trim().is_empty())
        })
        .map(|(name, key, _)| (*name, *key))
        .collect()
}

/// Parse a list the way OpenMetadata's docker images write them: `[a, b]`, or a plain `a,b`.
/// Quotes around items are removed; empty items dropped.
pub fn parse_list(value: &str) -> Vec<String> {
    let trimmed = value.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    inner
        .split(',')
        .map(|item| {
            item.trim()
                .trim_matches(|c| c == '"' || c == '\'')
                .trim()
                .to_string()
        })
        .filter(|item| !item.is_empty())
        .collect()
}

fn parse_bool(name: &str, value: &str, problems: &mut Vec<ConfigProblem>) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => {
            problems.push(ConfigProblem {
                file: Some("environment".into()),
                line: None,
                column: None,
                key: name.into(),
                message: format!("`{value}` is not a boolean; expected true or false"),
            });
            None
        }
    }
}

/// Overlay environment variables on the merged file configuration (environment wins).
pub fn apply_overrides(raw: &mut RawConfig, environment: &dyn Environment) -> Vec<ConfigProblem> {
    let mut problems = Vec::new();
    let nonempty = |name: &str| {
        environment
            .var(name)
            .filter(|value| !value.trim().is_empty())
    };

    let server = raw.server.get_or_insert_with(RawServer::default);
    if let Some(value) = nonempty("OM_GATEWAY_LISTEN") {
        server.listen = Some(value);
    }
    if let Some(value) = nonempty("OM_GATEWAY_ADMIN_LISTEN") {
        server.admin_listen = Some(value);
    }
    if let Some(value) = nonempty("OM_GATEWAY_LOG_FORMAT") {
        server.log_format = Some(value);
    }
    if let Some(value) = nonempty("OM_GATEWAY_UPSTREAM_URL") {
        raw.upstream.get_or_insert_with(RawUpstream::default).url = Some(value);
    }

    let authentication = raw
        .authentication_configuration
        .get_or_insert_with(RawAuthentication::default);
    if let Some(value) = nonempty("AUTHENTICATION_PROVIDER") {
        authentication.provider = Some(value);
    }
    if let Some(value) = nonempty("AUTHENTICATION_PUBLIC_KEYS") {
        authentication.public_key_urls = Some(parse_list(&value));
    }
    if let Some(value) = nonempty("AUTHENTICATION_JWT_PRINCIPAL_CLAIMS") {
        authentication.jwt_principal_claims = Some(parse_list(&value));
    }
    if let Some(value) = environment.var("AUTHENTICATION_JWT_PRINCIPAL_CLAIMS_MAPPING") {
        authentication.jwt_principal_claims_mapping = Some(parse_list(&value));
    }
    if let Some(value) = nonempty("AUTHENTICATION_TOKEN_VALIDATION_ALGORITHM") {
        authentication.token_validation_algorithm = Some(value.trim().to_string());
    }

    let authorizer = raw
        .authorizer_configuration
        .get_or_insert_with(RawAuthorizer::default);
    if let Some(value) = nonempty("AUTHORIZER_ADMIN_PRINCIPALS") {
        authorizer.admin_principals = Some(parse_list(&value));
    }
    if let Some(value) = nonempty("AUTHORIZER_PRINCIPAL_DOMAIN") {
        authorizer.principal_domain = Some(value.trim().to_string());
    }
    if let Some(value) = nonempty("AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN") {
        authorizer.enforce_principal_domain =
            parse_bool("AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN", &value, &mut problems);
    }
    if let Some(value) = environment.var("AUTHORIZER_ALLOWED_DOMAINS") {
        authorizer.allowed_domains = Some(parse_list(&value));
    }
    if let Some(value) = nonempty("AUTHORIZER_USE_ROLES_FROM_PROVIDER") {
        authorizer.use_roles_from_provider =
            parse_bool("AUTHORIZER_USE_ROLES_FROM_PROVIDER", &value, &mut problems);
    }

    // jwtTokenConfiguration's variables, as openmetadata.yaml substitutes them.
    let openmetadata = raw
        .openmetadata
        .get_or_insert_with(RawOpenMetadata::default);
    if let Some(value) = nonempty("JWT_ISSUER") {
        openmetadata.jwt_issuer = Some(value.trim().to_string());
    }
    if let Some(value) = nonempty("JWT_KEY_ID") {
        openmetadata.key_id = Some(value.trim().to_string());
    }
    if let Some(value) = nonempty("RSA_PUBLIC_KEY_FILE_PATH") {
        openmetadata.public_key_file = Some(value.trim().to_string());
    }

    let feed = raw.feed.get_or_insert_with(RawFeed::default);
    let (key, previous) = (
        feed_key_from_environment(
            environment,
            "OM_GATEWAY_FEED_KEY",
            "OM_GATEWAY_FEED_KEY_FILE",
            &mut problems,
        ),
        feed_key_from_environment(
            environment,
            "OM_GATEWAY_FEED_PREVIOUS_KEY",
            "OM_GATEWAY_FEED_PREVIOUS_KEY_FILE",
            &mut problems,
        ),
    );
    if key.is_some() {
        feed.key_file = None;
        feed.key_from_environment = key;
    }
    if previous.is_some() {
        feed.previous_key_file = None;
        feed.previous_key_from_environment = previous;
    }
    problems
}

/// A feed key given as a value (`value_variable`) or as a file (`file_variable`); both is an
/// error, since which one wins would be a guess.
fn feed_key_from_environment(
    environment: &dyn Environment,
    value_variable: &'static str,
    file_variable: &'static str,
    problems: &mut Vec<ConfigProblem>,
) -> Option<EnvironmentKey> {
    let nonempty = |name: &str| {
        environment
            .var(name)
            .filter(|value| !value.trim().is_empty())
    };
    match (nonempty(value_variable), nonempty(file_variable)) {
        (Some(_), Some(_)) => {
            problems.push(ConfigProblem {
                file: Some("environment".into()),
                line: None,
                column: None,
                key: file_variable.into(),
                message: format!("set {value_variable} or {file_variable}, not both"),
            });
            None
        }
        (Some(value), None) => Some(EnvironmentKey::Value {
            variable: value_variable,
            value,
        }),
        (None, Some(path)) => Some(EnvironmentKey::File {
            variable: file_variable,
            path: path.trim().to_string(),
        }),
        (None, None) => None,
    }
}
