//! What differs between a configuration and the server's published settings (`om-gateway
//! doctor`): each key the server publishes, the two values as text, and where the gateway's
//! value came from.

use super::provenance::Origin;
use super::published::{
    is_openmetadata_jwks, PublishedSettings, ADMIN_PRINCIPALS, ALLOWED_DOMAINS, CLAIMS_MAPPING,
    ENFORCE_DOMAIN, PRINCIPAL_CLAIMS, PRINCIPAL_DOMAIN, PUBLIC_KEY_URLS, ROLES_FROM_PROVIDER,
};
use super::Config;

/// A key whose gateway value differs from the server's (`om-gateway doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub key: &'static str,
    pub gateway: String,
    pub server: String,
    /// Where the gateway's value came from: an explicit one is kept while following.
    pub origin: Origin,
    pub endpoint: &'static str,
}

/// Each published value that differs from `config`'s, with where the gateway's came from.
pub fn drift(config: &Config, published: &PublishedSettings) -> Vec<Drift> {
    let mut differences = Vec::new();
    let mut compare =
        |key: &'static str, endpoint: &'static str, gateway: String, server: String| {
            if gateway != server {
                differences.push(Drift {
                    key,
                    gateway,
                    server,
                    origin: config.provenance.origin(key),
                    endpoint,
                });
            }
        };
    let list = |items: &[String], lower: bool| {
        let mut items: Vec<String> = items
            .iter()
            .map(|item| {
                let item = item.trim();
                if lower {
                    item.to_ascii_lowercase()
                } else {
                    item.to_string()
                }
            })
            .filter(|item| !item.is_empty())
            .collect();
        items.sort();
        items.dedup();
        format!("[{}]", items.join(", "))
    };
    if let Some(p) = &published.principal_claims {
        // Kept in order: the first claim present wins.
        let server: Vec<String> = p
            .value
            .iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        compare(
            PRINCIPAL_CLAIMS,
            p.endpoint,
            format!("[{}]", config.auth.principal_claims.join(", ")),
            format!("[{}]", server.join(", ")),
        );
    }
    if let Some(p) = &published.principal_claims_mapping {
        let gateway: Vec<String> = config
            .auth
            .principal_claims_mapping
            .iter()
            .flat_map(|mapping| {
                [
                    format!("username:{}", mapping.username_claim),
                    format!("email:{}", mapping.email_claim),
                ]
            })
            .collect();
        let server: Vec<String> = p
            .value
            .iter()
            .map(|entry| {
                entry
                    .split(':')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .collect();
        compare(
            CLAIMS_MAPPING,
            p.endpoint,
            list(&gateway, false),
            list(&server, false),
        );
    }
    if let Some(p) = &published.public_key_urls {
        let gateway: Vec<String> = config
            .auth
            .key_sources
            .iter()
            .map(|source| source.url.clone())
            .filter(|url| !is_openmetadata_jwks(url))
            .collect();
        let server: Vec<String> = p
            .value
            .iter()
            .filter(|url| !is_openmetadata_jwks(url))
            .cloned()
            .collect();
        compare(
            PUBLIC_KEY_URLS,
            p.endpoint,
            list(&gateway, false),
            list(&server, false),
        );
    }
    let authorizer = &config.authorizer;
    if let Some(p) = &published.principal_domain {
        compare(
            PRINCIPAL_DOMAIN,
            p.endpoint,
            authorizer.principal_domain.clone(),
            p.value.trim().to_string(),
        );
    }
    if let Some(p) = &published.enforce_principal_domain {
        compare(
            ENFORCE_DOMAIN,
            p.endpoint,
            authorizer.enforce_principal_domain.to_string(),
            p.value.to_string(),
        );
    }
    if let Some(p) = &published.allowed_domains {
        compare(
            ALLOWED_DOMAINS,
            p.endpoint,
            list(&authorizer.allowed_domains, true),
            list(&p.value, true),
        );
    }
    if let Some(p) = &published.admin_principals {
        compare(
            ADMIN_PRINCIPALS,
            p.endpoint,
            list(&authorizer.admin_principals, true),
            list(&p.value, true),
        );
    }
    if let Some(p) = &published.use_roles_from_provider {
        compare(
            ROLES_FROM_PROVIDER,
            p.endpoint,
            authorizer.use_roles_from_provider.to_string(),
            p.value.to_string(),
        );
    }
    differences
}
