//! What the follower shows: the state of its reads and the values it applied, for `/readyz`
//! (`Follower::status_json`) and the log line naming what changed.

use crate::config::published::PublishedSettings;
use crate::config::Config;
use std::time::{SystemTime, UNIX_EPOCH};

/// What `/readyz` and `doctor` show.
#[derive(Debug, Clone, Default)]
pub(super) struct Status {
    pub(super) attempts: u64,
    pub(super) last_attempt: Option<SystemTime>,
    pub(super) last_success: Option<SystemTime>,
    pub(super) last_error: Option<String>,
    pub(super) consecutive_failures: u64,
    /// Endpoint → the last read's result word.
    pub(super) endpoints: Vec<(&'static str, &'static str)>,
}

/// The follower's state for `/readyz`: never a credential, never a whole document.
pub(super) fn to_json(
    base: &Config,
    status: &Status,
    applied: &PublishedSettings,
    has_etag: impl Fn(&str) -> bool,
) -> serde_json::Value {
    let follow = &base.follow;
    let word = if !follow.enabled {
        "disabled"
    } else if status.last_error.is_some() {
        "failing"
    } else if status.last_success.is_some() {
        "ok"
    } else {
        "loading"
    };
    serde_json::json!({
        "enabled": follow.enabled,
        "state": word,
        "upstream": super::redact_userinfo(&super::base_url(&base.upstream), &base.upstream),
        "interval": crate::config::duration::format_duration(follow.interval),
        "credential": follow.token.as_ref().map(|token| token.describe()),
        "attempts": status.attempts,
        "lastAttempt": status.last_attempt.map(unix_seconds),
        "lastSuccess": status.last_success.map(unix_seconds),
        "lastError": status.last_error,
        "consecutiveFailures": status.consecutive_failures,
        "endpoints": status.endpoints.iter().map(|(endpoint, result)| serde_json::json!({
            "path": endpoint, "lastResult": result,
            "etag": has_etag(endpoint),
        })).collect::<Vec<_>>(),
        "applied": applied_json(applied),
    })
}

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The published values in effect, by key, with the endpoint each came from.
pub(super) fn applied_json(settings: &PublishedSettings) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    let mut put = |key: &str, value: serde_json::Value, endpoint: &str| {
        map.insert(
            key.to_string(),
            serde_json::json!({"value": value, "endpoint": endpoint}),
        );
    };
    macro_rules! each {
        ($($field:ident => $key:literal),*) => {
            $(if let Some(published) = &settings.$field {
                put($key, serde_json::json!(published.value), published.endpoint);
            })*
        };
    }
    each!(
        principal_claims => "authenticationConfiguration.jwtPrincipalClaims",
        principal_claims_mapping => "authenticationConfiguration.jwtPrincipalClaimsMapping",
        public_key_urls => "authenticationConfiguration.publicKeyUrls",
        authority => "authenticationConfiguration.authority",
        client_id => "authenticationConfiguration.clientId",
        principal_domain => "authorizerConfiguration.principalDomain",
        enforce_principal_domain => "authorizerConfiguration.enforcePrincipalDomain",
        allowed_domains => "authorizerConfiguration.allowedDomains",
        admin_principals => "authorizerConfiguration.adminPrincipals",
        use_roles_from_provider => "authorizerConfiguration.useRolesFromProvider"
    );
    serde_json::Value::Object(map)
}

/// The keys whose published value changed, for the log line.
pub(super) fn changed_keys(before: &PublishedSettings, after: &PublishedSettings) -> Vec<String> {
    let (before, after) = (applied_json(before), applied_json(after));
    let keys: std::collections::BTreeSet<&String> = before
        .as_object()
        .into_iter()
        .chain(after.as_object())
        .flat_map(|map| map.keys())
        .collect();
    keys.into_iter()
        .filter(|key| before.get(key.as_str()) != after.get(key.as_str()))
        .cloned()
        .collect()
}
