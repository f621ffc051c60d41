//! The running OpenMetadata server's published security settings, layered into a `Config`.
//!
//! OpenMetadata 2.x keeps its authentication and authorizer settings in its database
//! (`SecurityConfigurationManager.getCurrentAuthConfig`/`getCurrentAuthzConfig`); openmetadata.yaml
//! only seeds them. `follow` reads what the server publishes and hands it here as
//! `PublishedSettings`; `Config::with_published` fills each value in where the operator set
//! nothing in the gateway's file or environment, binds the SSO key sources to the published
//! `authority` and `clientId`, and builds the result through the same validation as a load.
//! `drift.rs` compares them with a configuration instead.

use super::provenance::Origin;
use super::raw::RawKeySource;
use super::{Config, ConfigError, ConfigProblem};

pub use super::drift::{drift, Drift};

/// Public: `ConfigResource.getAuthConfig` copies an allow-list of the current authentication
/// configuration (provider, clientId, authority, callbackUrl, jwtPrincipalClaims,
/// jwtPrincipalClaimsMapping, ...).
pub const AUTH_ENDPOINT: &str = "/api/v1/system/config/auth";
/// Public: `ConfigResource.getAuthorizerConfig` copies only `principalDomain`, and from the
/// server's startup configuration (openmetadata.yaml), not from its database.
pub const AUTHORIZER_ENDPOINT: &str = "/api/v1/system/config/authorizer";
/// Admin only (`SystemResource.getSecurityConfig`, `authorizer.authorizeAdmin`): the whole
/// current `SecurityConfiguration`, `{authenticationConfiguration, authorizerConfiguration}`.
pub const SECURITY_ENDPOINT: &str = "/api/v1/system/security/config";
/// OpenMetadata's own JWKS (`ConfigResource.getJWKSResponse`).
const OPENMETADATA_JWKS_PATH: &str = "/api/v1/system/config/jwks";

/// One published value and the endpoint that published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published<T> {
    pub value: T,
    pub endpoint: &'static str,
}

/// What the server published; `None`: not published (absent, or not in that endpoint's
/// allow-list). The public `/authorizer` answer carries empty lists for the keys it does not
/// copy, so `follow` reads only `principalDomain` from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedSettings {
    pub principal_claims: Option<Published<Vec<String>>>,
    pub principal_claims_mapping: Option<Published<Vec<String>>>,
    pub principal_domain: Option<Published<String>>,
    pub public_key_urls: Option<Published<Vec<String>>>,
    pub enforce_principal_domain: Option<Published<bool>>,
    pub allowed_domains: Option<Published<Vec<String>>>,
    pub admin_principals: Option<Published<Vec<String>>>,
    pub use_roles_from_provider: Option<Published<bool>>,
    /// The SSO provider's authority (issuer) and the UI's client id: the audience its tokens carry.
    pub authority: Option<Published<String>>,
    pub client_id: Option<Published<String>>,
}

pub(super) const PRINCIPAL_CLAIMS: &str = "authenticationConfiguration.jwtPrincipalClaims";
pub(super) const CLAIMS_MAPPING: &str = "authenticationConfiguration.jwtPrincipalClaimsMapping";
pub(super) const PUBLIC_KEY_URLS: &str = "authenticationConfiguration.publicKeyUrls";
const KEY_BINDING: &str = "authenticationConfiguration.publicKeyUrls.binding";
pub(super) const PRINCIPAL_DOMAIN: &str = "authorizerConfiguration.principalDomain";
pub(super) const ENFORCE_DOMAIN: &str = "authorizerConfiguration.enforcePrincipalDomain";
pub(super) const ALLOWED_DOMAINS: &str = "authorizerConfiguration.allowedDomains";
pub(super) const ADMIN_PRINCIPALS: &str = "authorizerConfiguration.adminPrincipals";
pub(super) const ROLES_FROM_PROVIDER: &str = "authorizerConfiguration.useRolesFromProvider";

impl PublishedSettings {
    /// True when nothing was published.
    pub fn is_empty(&self) -> bool {
        *self == PublishedSettings::default()
    }

    /// Check the values themselves (shapes the gateway could not use); every problem names the
    /// endpoint and the key.
    fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut add = |endpoint: &str, key: String, message: String| {
            problems.push(ConfigProblem {
                file: Some(format!("server {endpoint}")),
                line: None,
                column: None,
                key,
                message,
            })
        };
        let mut each = |published: &Option<Published<Vec<String>>>,
                        key: &str,
                        check: fn(&str) -> Result<(), &'static str>| {
            if let Some(published) = published {
                for (position, item) in published.value.iter().enumerate() {
                    if let Err(message) = check(item) {
                        add(
                            published.endpoint,
                            format!("{key}[{position}]"),
                            format!("`{}`: {message}", printable(item)),
                        );
                    }
                }
            }
        };
        each(&self.principal_claims, PRINCIPAL_CLAIMS, check_word);
        each(&self.principal_claims_mapping, CLAIMS_MAPPING, check_word);
        each(&self.public_key_urls, PUBLIC_KEY_URLS, check_url);
        each(&self.allowed_domains, ALLOWED_DOMAINS, check_domain);
        each(&self.admin_principals, ADMIN_PRINCIPALS, check_word);
        let mut one = |published: &Option<Published<String>>,
                       key: &str,
                       check: fn(&str) -> Result<(), &'static str>| {
            if let Some(published) = published {
                if let Err(message) = check(&published.value) {
                    problems.push(ConfigProblem {
                        file: Some(format!("server {}", published.endpoint)),
                        line: None,
                        column: None,
                        key: key.to_string(),
                        message: format!("`{}`: {message}", printable(&published.value)),
                    });
                }
            }
        };
        one(&self.principal_domain, PRINCIPAL_DOMAIN, check_domain);
        one(
            &self.authority,
            "authenticationConfiguration.authority",
            check_url,
        );
        one(
            &self.client_id,
            "authenticationConfiguration.clientId",
            check_word,
        );
        problems
    }
}

impl Config {
    /// This configuration with the server's `published` settings layered in where the operator
    /// set nothing explicitly, built and validated exactly as a load builds it. Startup
    /// settings, the files read and the follow settings stay this configuration's.
    pub fn with_published(&self, published: &PublishedSettings) -> Result<Config, ConfigError> {
        let problems = published.problems();
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let layers = &self.layers;
        let mut raw = layers.raw.clone();
        let mut provenance = layers.provenance.clone();
        let mut named: Vec<(String, &'static str)> = Vec::new();
        {
            let mut take = |key: &'static str, endpoint: &'static str| -> bool {
                if provenance.origin(key).is_explicit() {
                    return false;
                }
                provenance.set(key, Origin::Server(endpoint));
                named.push((format!("server {endpoint}"), key));
                true
            };
            let authentication = raw
                .authentication_configuration
                .get_or_insert_with(Default::default);
            if let Some(p) = &published.principal_claims {
                if take(PRINCIPAL_CLAIMS, p.endpoint) {
                    authentication.jwt_principal_claims = Some(p.value.clone());
                }
            }
            if let Some(p) = &published.principal_claims_mapping {
                if take(CLAIMS_MAPPING, p.endpoint) {
                    authentication.jwt_principal_claims_mapping = Some(p.value.clone());
                }
            }
            if let Some(p) = &published.public_key_urls {
                if take(PUBLIC_KEY_URLS, p.endpoint) {
                    // The server lists its own JWKS at the address it sees itself under
                    // (often http://localhost:8585/...); the gateway already trusts that key at
                    // `upstream.url`, bound to OpenMetadata's issuer (`trust_openmetadata_key`).
                    authentication.public_key_urls = Some(
                        p.value
                            .iter()
                            .filter(|url| !is_openmetadata_jwks(url))
                            .cloned()
                            .collect(),
                    );
                }
            }
            let authorizer = raw
                .authorizer_configuration
                .get_or_insert_with(Default::default);
            if let Some(p) = &published.principal_domain {
                if take(PRINCIPAL_DOMAIN, p.endpoint) {
                    authorizer.principal_domain = Some(p.value.clone());
                }
            }
            if let Some(p) = &published.enforce_principal_domain {
                if take(ENFORCE_DOMAIN, p.endpoint) {
                    authorizer.enforce_principal_domain = Some(p.value);
                }
            }
            if let Some(p) = &published.allowed_domains {
                if take(ALLOWED_DOMAINS, p.endpoint) {
                    authorizer.allowed_domains = Some(p.value.clone());
                }
            }
            if let Some(p) = &published.admin_principals {
                if take(ADMIN_PRINCIPALS, p.endpoint) {
                    authorizer.admin_principals = Some(p.value.clone());
                }
            }
            if let Some(p) = &published.use_roles_from_provider {
                if take(ROLES_FROM_PROVIDER, p.endpoint) {
                    authorizer.use_roles_from_provider = Some(p.value);
                }
            }
        }
        if let Some(endpoint) = bind_sso_sources(&mut raw, &provenance, published, self) {
            provenance.set(KEY_BINDING, Origin::Server(endpoint));
        }
        let mut config = super::validate::rebuild(layers, raw, provenance, named)?;
        config.startup = self.startup.clone();
        config.source_file = self.source_file.clone();
        config.openmetadata_file = self.openmetadata_file.clone();
        config.follow = self.follow.clone();
        Ok(config)
    }
}

/// Bind every key URL the operator did not list explicitly to the published `authority` (as
/// issuer) and `clientId` (as audience), so a token another client of the same identity
/// provider obtained cannot pass here (the server itself does not check this). OpenMetadata's
/// own JWKS, when listed, is bound to OpenMetadata's issuer instead. Returns the endpoint the
/// binding came from, when one was made.
fn bind_sso_sources(
    raw: &mut super::raw::RawConfig,
    provenance: &super::Provenance,
    published: &PublishedSettings,
    base: &Config,
) -> Option<&'static str> {
    if provenance.origin(PUBLIC_KEY_URLS).is_explicit() {
        return None;
    }
    let issuers = published
        .authority
        .as_ref()
        .map(|authority| issuers_for_authority(&authority.value))
        .unwrap_or_default();
    let audiences: Vec<String> = published
        .client_id
        .iter()
        .map(|client_id| client_id.value.trim().to_string())
        .collect();
    if issuers.is_empty() && audiences.is_empty() {
        return None;
    }
    let endpoint = published
        .authority
        .as_ref()
        .or(published.client_id.as_ref())
        .map(|published| published.endpoint)?;
    let authentication = raw
        .authentication_configuration
        .get_or_insert_with(Default::default);
    let urls = authentication.public_key_urls.take().unwrap_or_default();
    let key_sources = authentication.key_sources.get_or_insert_with(Vec::new);
    for url in urls {
        if key_sources.iter().any(|source| source.url == url) {
            continue; // an explicit keySources entry keeps the binding the operator gave it
        }
        let (issuers, audiences) = if is_openmetadata_jwks(&url) {
            (vec![base.openmetadata.issuer.clone()], Vec::new())
        } else {
            (issuers.clone(), audiences.clone())
        };
        key_sources.push(RawKeySource {
            url,
            issuers: Some(issuers),
            audiences: Some(audiences).filter(|audiences| !audiences.is_empty()),
            ca_file: None,
        });
    }
    Some(endpoint)
}

/// The `iss` values a provider's tokens carry for an OpenMetadata `authority`: the authority
/// itself with and without a trailing slash (Auth0 issues `https://tenant.auth0.com/`), Google's
/// two spellings, and Azure AD's v2.0 and v1 issuers for the tenant in the authority's path.
pub fn issuers_for_authority(authority: &str) -> Vec<String> {
    let trimmed = authority.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Vec::new();
    }
    let mut issuers = vec![trimmed.to_string(), format!("{trimmed}/")];
    let host = trimmed
        .split_once("://")
        .map_or(trimmed, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if host == "accounts.google.com" {
        issuers.push("https://accounts.google.com".into());
        issuers.push("accounts.google.com".into());
    }
    if host == "login.microsoftonline.com" {
        let tenant = trimmed
            .split_once("://")
            .map_or("", |(_, rest)| rest)
            .split('/')
            .nth(1)
            .unwrap_or("");
        if !tenant.is_empty() {
            issuers.push(format!("https://login.microsoftonline.com/{tenant}/v2.0"));
            issuers.push(format!("https://sts.windows.net/{tenant}/"));
        }
    }
    issuers.dedup();
    issuers
}

/// Is `url` an OpenMetadata server's own JWKS (whatever host it is written with)?
pub fn is_openmetadata_jwks(url: &str) -> bool {
    url.parse::<http::Uri>()
        .is_ok_and(|uri| uri.path().trim_end_matches('/') == OPENMETADATA_JWKS_PATH)
}

/// A claim name, principal or client id: non-empty, no whitespace or control characters.
fn check_word(value: &str) -> Result<(), &'static str> {
    if value.trim().is_empty() {
        return Err("is empty");
    }
    if value
        .trim()
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err("holds whitespace or a control character");
    }
    Ok(())
}

/// A domain as `principalDomain` and `allowedDomains` compare them (the part after `@`).
fn check_domain(value: &str) -> Result<(), &'static str> {
    check_word(value)?;
    if value.contains(['@', '/', ',']) {
        return Err("is not a domain");
    }
    Ok(())
}

fn check_url(value: &str) -> Result<(), &'static str> {
    match value.trim().parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some() =>
        {
            Ok(())
        }
        _ => Err("is not an http(s) URL"),
    }
}

/// A value as it may appear in a message: control characters escaped, at most 200 characters.
fn printable(value: &str) -> String {
    value
        .chars()
        .take(200)
        .flat_map(char::escape_default)
        .collect()
}
