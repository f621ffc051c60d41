//! `om-gateway check`: validate, then print the effective configuration as YAML, followed by
//! a comment naming where each value came from. When the gateway would follow OpenMetadata's
//! published settings, they are read once and layered in, as the running gateway would.

use super::{report_config_error, ConfigArgs, EXIT_OK};
use crate::config::duration::format_duration;
use crate::config::{Config, ExpiryPolicy, LogFormat};
use crate::policy::{PathMatch, RouteRule};
use serde_json::{json, Value};

pub fn check(args: ConfigArgs) -> i32 {
    match args.load() {
        Ok(config) => {
            let (config, note) = with_server_settings(config);
            print!("{}", effective_yaml(&config));
            println!("{note}");
            print!("{}", provenance_comment(&config));
            EXIT_OK
        }
        Err(error) => report_config_error(&error),
    }
}

/// The configuration as a running gateway would have it once it read the server's settings,
/// and a comment line saying what happened. A server that cannot be read is reported, never an
/// error of the configuration (the gateway would serve with the file's values meanwhile).
fn with_server_settings(config: Config) -> (Config, String) {
    if !config.follow.enabled {
        return (
            config,
            "# Following OpenMetadata's published settings: off (openmetadata.followServerConfig)."
                .into(),
        );
    }
    let Ok(runtime) = super::runtime() else {
        return (
            config,
            "# OpenMetadata's published settings were not read (no runtime).".into(),
        );
    };
    let upstream = redact_url(&config.upstream.url.to_string());
    match runtime.block_on(crate::follow::read_once(&config)) {
        Ok(snapshot) => match config.with_published(&snapshot.settings) {
            Ok(layered) => {
                let mut note = format!(
                    "# OpenMetadata's published settings read from {upstream} ({}) and applied.",
                    snapshot.endpoints.join(", ")
                );
                if let Some(reason) = snapshot.admin_skipped {
                    note.push_str(&format!(
                        "\n# The admin-only /api/v1/system/security/config was not read: {reason}."
                    ));
                }
                (layered, note)
            }
            Err(error) => (
                config,
                format!(
                    "# OpenMetadata's published settings were not applied: {}",
                    error.to_string().replace('\n', "; ")
                ),
            ),
        },
        Err(error) => (
            config,
            format!("# OpenMetadata's published settings were not applied: {error}"),
        ),
    }
}

/// `# key: origin` for every value some input set; the rest are defaults.
fn provenance_comment(config: &Config) -> String {
    let mut text = String::from(
        "# Where each value came from (file, env, openmetadata.yaml, server, default):\n",
    );
    for (key, origin) in config.provenance.iter() {
        text.push_str(&format!("#   {key}: {origin}\n"));
    }
    text.push_str("#   every other key: default\n");
    text
}

/// The configuration after defaults and overrides, in the file's own shape.
pub fn effective_yaml(config: &Config) -> String {
    let mut yaml = serde_saphyr::to_string(&effective_value(config))
        .unwrap_or_else(|error| format!("# cannot render: {error}\n"));
    yaml.push_str(&feed_key_comment(config));
    yaml
}

/// Where the feed cookie keys come from, as a comment (their values are never printed).
fn feed_key_comment(config: &Config) -> String {
    let describe =
        |key: &crate::config::FeedKey| format!("{} bytes from {}", key.bytes().len(), key.origin);
    match (&config.feed.key, &config.feed.previous_key) {
        (None, _) => "# feed cookie key: none configured, a random key per process (feed cookies are valid on one replica only)\n".into(),
        (Some(key), None) => format!("# feed cookie key: {}\n", describe(key)),
        (Some(key), Some(previous)) => format!(
            "# feed cookie key: {}; previous key, still accepted: {}\n",
            describe(key),
            describe(previous)
        ),
    }
}

/// Credentials in URLs (`user:pass@host`) are the only secrets a config can hold.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://<redacted>@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn effective_value(config: &Config) -> Value {
    let auth = &config.auth;
    json!({
        "server": {
            "listen": config.startup.listen.to_string(),
            "adminListen": config.startup.admin_listen.to_string(),
            "tls": config.startup.tls.as_ref().map(|tls| json!({"certFile": tls.cert_file, "keyFile": tls.key_file, "reloadInterval": format_duration(tls.reload_interval)})),
            "maxHeaderBytes": config.startup.max_header_bytes,
            "requestTimeout": format_duration(config.server.request_timeout),
            "shutdownGracePeriod": format_duration(config.startup.shutdown_grace_period),
            "logFormat": match config.startup.log_format { LogFormat::Json => "json", LogFormat::Text => "text" },
            "headerReadTimeout": format_duration(config.startup.header_read_timeout),
            "maxUriBytes": config.server.max_uri_bytes,
            "maxConnections": config.startup.max_connections,
            "accessLog": config.server.access_log,
            "workers": config.startup.workers,
            "websocketPaths": config.server.websocket_paths.iter().map(|rule| rule.source.clone()).collect::<Vec<_>>(),
        },
        "upstream": {
            "url": redact_url(&config.upstream.url.to_string()),
            "connectTimeout": format_duration(config.upstream.connect_timeout),
            "timeout": format_duration(config.upstream.timeout),
            "tls": {"caFile": config.upstream.ca_file, "insecureSkipVerify": config.upstream.insecure_skip_verify},
            "poolIdleTimeout": format_duration(config.upstream.pool_idle_timeout),
            "poolMaxIdlePerHost": config.upstream.pool_max_idle_per_host,
        },
        "authenticationConfiguration": {
            "provider": auth.provider,
            "keySources": auth.key_sources.iter().map(|source| json!({
                "url": redact_url(&source.url), "issuers": source.issuers, "audiences": source.audiences, "caFile": source.ca_file,
            })).collect::<Vec<_>>(),
            "publicKeyFiles": auth.key_files.iter().map(|file| json!({"file": file.path, "kid": file.kid, "issuers": file.issuers})).collect::<Vec<_>>(),
            "jwtPrincipalClaims": auth.principal_claims,
            "jwtPrincipalClaimsMapping": auth.principal_claims_mapping.iter().flat_map(|m| [format!("username:{}", m.username_claim), format!("email:{}", m.email_claim)]).collect::<Vec<_>>(),
            "tokenValidationAlgorithm": format!("{:?}", auth.token_validation_algorithm),
            "issuers": auth.issuers,
            "audiences": auth.audiences,
            "clockSkew": format_duration(auth.clock_skew),
            "allowTokensWithoutExpiry": match auth.allow_tokens_without_expiry {
                ExpiryPolicy::Bots => "bots", ExpiryPolicy::All => "all", ExpiryPolicy::None => "none",
            },
            "rolesClaim": auth.roles_claim,
        },
        "authorizerConfiguration": {
            "adminPrincipals": config.authorizer.admin_principals,
            "principalDomain": config.authorizer.principal_domain,
            "enforcePrincipalDomain": config.authorizer.enforce_principal_domain,
            "allowedDomains": config.authorizer.allowed_domains,
            "useRolesFromProvider": config.authorizer.use_roles_from_provider,
        },
        "revocationCheck": {
            "enabled": config.revocation.enabled,
            "recheckInterval": format_duration(config.revocation.recheck_interval),
            "timeout": format_duration(config.revocation.timeout),
            "onUnavailable": if config.revocation.fail_open { "open" } else { "closed" },
            "maxEntries": config.revocation.max_entries,
        },
        "openmetadata": {
            "trustServerKey": config.openmetadata.trust_server_key,
            "jwtIssuer": config.openmetadata.issuer,
            "keyId": config.openmetadata.key_id,
            "publicKeyFile": config.openmetadata.public_key_file,
            "followServerConfig": config.follow.enabled,
            "followInterval": format_duration(config.follow.interval),
            // A token from OM_GATEWAY_FOLLOW_TOKEN is never printed; the provenance comment
            // names the variable.
            "followToken": match &config.follow.token {
                Some(crate::config::FollowToken::File(path)) => json!({"tokenFile": path}),
                _ => Value::Null,
            },
        },
        "jwks": {
            "refreshInterval": format_duration(config.jwks.refresh_interval),
            "minRefreshInterval": format_duration(config.jwks.min_refresh_interval),
            "fetchTimeout": format_duration(config.jwks.fetch_timeout),
            "maxStale": format_duration(config.jwks.max_stale),
        },
        "tokenCache": {"maxEntries": config.token_cache.max_entries, "ttl": format_duration(config.token_cache.ttl)},
        "forwardAuth": {"path": config.forward_auth_path},
        "defaultPublicPaths": config.default_public_paths,
        "publicPaths": config.public_paths.iter().map(|rule| rule.source.clone()).collect::<Vec<_>>(),
        "routes": config.routes.iter().map(route_value).collect::<Vec<_>>(),
        "defaultRoute": route_value(&config.default_route),
        "feed": {
            "keyFile": config.feed.key.as_ref().and_then(|key| key.file.as_ref()),
            "previousKeyFile": config.feed.previous_key.as_ref().and_then(|key| key.file.as_ref()),
        },
    })
}

fn route_value(route: &RouteRule) -> Value {
    let mut matcher = serde_json::Map::new();
    match &route.path {
        PathMatch::Exact(path) => {
            matcher.insert("path".into(), json!(path));
        }
        PathMatch::Prefix(prefix) => {
            matcher.insert("pathPrefix".into(), json!(prefix));
        }
        PathMatch::Regex(regex) => {
            matcher.insert("pathRegex".into(), json!(regex.as_str()));
        }
        PathMatch::Any | PathMatch::WebUi => {}
    }
    if let Some(methods) = &route.methods {
        matcher.insert(
            "methods".into(),
            json!(methods.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
        );
    }
    let require = &route.require;
    let mut requirement = serde_json::Map::new();
    if let Some(is_bot) = require.is_bot {
        requirement.insert("isBot".into(), json!(is_bot));
    }
    for (key, values) in [
        ("tokenTypes", &require.token_types),
        ("rolesAny", &require.roles_any),
        ("rolesAll", &require.roles_all),
        ("principals", &require.principals),
        ("emailDomains", &require.email_domains),
    ] {
        if !values.is_empty() {
            requirement.insert(key.into(), json!(values));
        }
    }
    if !require.claims.is_empty() {
        requirement.insert(
            "claims".into(),
            require
                .claims
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect(),
        );
    }
    json!({"name": route.name, "match": matcher, "require": requirement, "deny": route.deny})
}
