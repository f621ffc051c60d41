//! Authorization: which paths are public, which route a request falls under, and whether an
//! authenticated principal meets that route's `require`.
//!
//! Owns path normalisation (`path.rs`) and route matching. Does no IO and never allocates per
//! request beyond the normalised path: rules are compiled once at config load.

pub mod path;

#[cfg(test)]
mod tests;

use crate::verify::Principal;
use std::collections::HashSet;

pub use path::{normalize_path, path_readings, PathError, PathReadings};

/// How a rule matches a normalised path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    Any,
    Exact(String),
    /// Segment-aware: `/api/v1/bots` matches itself and `/api/v1/bots/...`, never `/api/v1/botsx`.
    Prefix(String),
    /// Anchored at both ends when compiled.
    Regex(regex::Regex),
    /// Every path outside `/api/` and `/mcp`: the web UI's pages and assets (the default public
    /// set). OpenMetadata 2.x's MCP server under `/mcp` reads and writes entities, so it is
    /// protected like `/api`.
    WebUi,
}

/// One `publicPaths` entry, with the text it came from for messages.
#[derive(Debug, Clone)]
pub struct PathRule {
    pub pattern: PathMatch,
    pub source: String,
}

/// One compiled route.
#[derive(Debug, Clone)]
pub struct RouteRule {
    pub name: String,
    pub path: PathMatch,
    pub methods: Option<Vec<http::Method>>,
    pub require: Requirement,
    pub deny: bool,
}

/// What a principal must have on a route; empty fields impose nothing.
#[derive(Debug, Clone, Default)]
pub struct Requirement {
    pub is_bot: Option<bool>,
    pub token_types: Vec<String>,
    pub roles_any: Vec<String>,
    pub roles_all: Vec<String>,
    pub principals: Vec<String>,
    pub email_domains: Vec<String>,
    /// Lower-cased claim name → accepted values.
    pub claims: Vec<(String, Vec<serde_json::Value>)>,
}

/// A refusal: the route and the requirement that was not met, for the 403 body and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route `{route}` requires {unmet}")]
pub struct Denied {
    pub route: String,
    pub unmet: String,
    /// A bounded label for `om_gateway_auth_decisions_total{reason}`.
    pub reason: &'static str,
}

/// OpenMetadata's unauthenticated API endpoints: its JwtFilter's excluded paths and its sign-in servlets.
pub const DEFAULT_PUBLIC_API_PATHS: &[&str] = &[
    "/api/v1/system/config/jwks",
    "/api/v1/system/config/authorizer",
    "/api/v1/system/config/auth",
    "/api/v1/system/config/customUiThemePreference",
    "/api/v1/system/config/rdf",
    "/api/v1/system/health",
    "/api/v1/system/version",
    "/api/v1/users/signup",
    "/api/v1/users/registrationConfirmation",
    "/api/v1/users/resendRegistrationToken",
    "/api/v1/users/generatePasswordResetLink",
    "/api/v1/users/password/reset",
    "/api/v1/users/login",
    "/api/v1/users/refresh",
    // Sign-in servlets the server serves outside its JwtFilter: SSO login fails without them.
    "/api/v1/auth/login",
    "/api/v1/auth/callback",
    "/api/v1/auth/refresh",
    "/api/v1/auth/logout",
    "/api/v1/saml/login",
    "/api/v1/saml/acs",
    "/api/v1/saml/metadata",
    "/api/v1/saml/refresh",
    "/api/v1/saml/logout",
];

/// What OpenMetadata's MCP server answers without a token (its OAuth flow). The transport
/// (`OAuthHttpStatelessServerTransportProvider.doGet`/`doPost`) matches these paths exactly
/// before it authenticates anything else under `/mcp`; `/mcp/callback` is the SSO callback
/// servlet (`McpCallbackServlet`). The root `/.well-known/oauth-*` documents
/// (`OAuthWellKnownFilter`) are outside `/mcp`, hence public with the web UI.
pub const DEFAULT_PUBLIC_MCP_PATHS: &[&str] = &[
    "/mcp/.well-known/oauth-authorization-server",
    "/mcp/.well-known/oauth-protected-resource",
    "/mcp/authorize",
    "/mcp/token",
    "/mcp/register",
    "/mcp/revoke",
    "/mcp/login",
    "/mcp/callback",
];

/// `path` is `prefix` or lies beneath it.
fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The compiled policy of one configuration generation.
#[derive(Debug)]
pub struct Policy {
    public: Vec<PathRule>,
    routes: Vec<RouteRule>,
    default_route: RouteRule,
    admin_principals: HashSet<String>,
    forward_auth_path: String,
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => {
                prefix.is_empty()
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
            PathMatch::Regex(regex) => regex.is_match(path),
            PathMatch::WebUi => !is_under(path, "/api") && !is_under(path, "/mcp"),
        }
    }
}

impl RouteRule {
    /// Jersey serves `/x` and `/x/` from the same resource method, so a route that names `/x`
    /// (exactly or by regex) must also catch `/x/`: otherwise one trailing slash dodges it.
    fn matches(&self, method: &http::Method, path: &str) -> bool {
        let path_matches = self.path.matches(path)
            || (path.len() > 1
                && path
                    .strip_suffix('/')
                    .is_some_and(|trimmed| self.path.matches(trimmed)));
        // JAX-RS answers HEAD by running the @GET method, so a rule naming GET covers HEAD.
        path_matches
            && self.methods.as_ref().is_none_or(|methods| {
                methods.contains(method)
                    || (*method == http::Method::HEAD && methods.contains(&http::Method::GET))
            })
    }
}

/// What a `Policy` is compiled from; `config` builds it.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub default_public_paths: bool,
    pub public_paths: Vec<PathRule>,
    pub routes: Vec<RouteRule>,
    pub default_route: RouteRule,
    pub admin_principals: Vec<String>,
    pub forward_auth_path: String,
}

impl Policy {
    pub fn new(config: PolicySettings) -> Policy {
        let mut public = Vec::new();
        if config.default_public_paths {
            public.push(PathRule {
                pattern: PathMatch::WebUi,
                source: "(everything outside /api/ and /mcp)".into(),
            });
            public.extend(
                DEFAULT_PUBLIC_API_PATHS
                    .iter()
                    .chain(DEFAULT_PUBLIC_MCP_PATHS)
                    .map(|path| PathRule {
                        pattern: PathMatch::Exact(path.to_string()),
                        source: path.to_string(),
                    }),
            );
        }
        public.extend(config.public_paths);
        Policy {
            public,
            routes: config.routes,
            default_route: config.default_route,
            // DefaultAuthorizer compares admin principals with the lower-cased user name.
            admin_principals: config
                .admin_principals
                .iter()
                .map(|p| p.to_lowercase())
                .collect(),
            forward_auth_path: config.forward_auth_path,
        }
    }

    /// True when `path` (normalised) needs no token. The forward-auth endpoint is never public.
    pub fn is_public(&self, path: &str) -> bool {
        path != self.forward_auth_path && self.public.iter().any(|rule| rule.pattern.matches(path))
    }

    /// The first route that matches, else the default route.
    pub fn route_for(&self, method: &http::Method, path: &str) -> &RouteRule {
        self.routes
            .iter()
            .find(|route| route.matches(method, path))
            .unwrap_or(&self.default_route)
    }

    /// Decide whether `principal` may call `method path`; returns the route that allowed it.
    pub fn authorize(
        &self,
        principal: &Principal,
        method: &http::Method,
        path: &str,
    ) -> Result<&RouteRule, Denied> {
        let route = self.route_for(method, path);
        if route.deny {
            return Err(denied(
                route,
                "nothing: it denies every request".into(),
                "route_deny",
            ));
        }
        let is_admin = self
            .admin_principals
            .contains(&principal.name.to_ascii_lowercase());
        check_requirement(&route.require, principal, is_admin)
            .map_err(|(unmet, reason)| denied(route, unmet, reason))?;
        Ok(route)
    }
}

fn denied(route: &RouteRule, unmet: String, reason: &'static str) -> Denied {
    Denied {
        route: route.name.clone(),
        unmet,
        reason,
    }
}

/// Each unmet requirement yields a sentence for the 403 body and a bounded reason label.
fn check_requirement(
    require: &Requirement,
    principal: &Principal,
    is_admin: bool,
) -> Result<(), (String, &'static str)> {
    if let Some(want) = require.is_bot {
        if principal.is_bot != want {
            return Err((format!("isBot: {want}"), "require_is_bot"));
        }
    }
    // Compared exactly, as JwtFilter compares `tokenType` with `PERSONAL_ACCESS`.
    if !require.token_types.is_empty() {
        let has = principal.token_type.as_deref().unwrap_or("");
        if !require.token_types.iter().any(|wanted| wanted == has) {
            return Err((
                format!("tokenType one of [{}]", require.token_types.join(", ")),
                "require_token_type",
            ));
        }
    }
    let has_role = |role: &String| principal.roles.iter().any(|held| held == role);
    if !is_admin && !require.roles_any.is_empty() && !require.roles_any.iter().any(has_role) {
        return Err((
            format!("a role among [{}]", require.roles_any.join(", ")),
            "require_roles",
        ));
    }
    if !is_admin && !require.roles_all.iter().all(has_role) {
        return Err((
            format!("all roles [{}]", require.roles_all.join(", ")),
            "require_roles",
        ));
    }
    if !require.principals.is_empty()
        && !require
            .principals
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&principal.name))
    {
        return Err((
            format!("principal one of [{}]", require.principals.join(", ")),
            "require_principal",
        ));
    }
    if !require.email_domains.is_empty() {
        let domain = principal.email_domain();
        if !domain.is_some_and(|domain| {
            require
                .email_domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(domain))
        }) {
            return Err((
                format!("email domain one of [{}]", require.email_domains.join(", ")),
                "require_email_domain",
            ));
        }
    }
    for (name, accepted) in &require.claims {
        let value = principal.claim(name);
        let matches = |candidate: &serde_json::Value| {
            accepted
                .iter()
                .any(|wanted| claim_equals(candidate, wanted))
        };
        let ok = match value {
            Some(serde_json::Value::Array(items)) => items.iter().any(matches),
            Some(other) => matches(other),
            None => false,
        };
        if !ok {
            return Err((
                format!(
                    "claim `{name}` one of {}",
                    serde_json::Value::from(accepted.clone())
                ),
                "require_claim",
            ));
        }
    }
    Ok(())
}

/// Compare a token's claim with a configured value; YAML `true` matches JSON `true`, and a
/// configured string matches a number or boolean written the same way.
fn claim_equals(candidate: &serde_json::Value, wanted: &serde_json::Value) -> bool {
    match (candidate, wanted) {
        (serde_json::Value::String(left), serde_json::Value::String(right)) => left == right,
        (serde_json::Value::Bool(left), serde_json::Value::String(right)) => {
            right == if *left { "true" } else { "false" }
        }
        (serde_json::Value::Number(left), serde_json::Value::String(right)) => right
            .parse::<serde_json::Number>()
            .is_ok_and(|n| n == *left),
        (left, right) => left == right,
    }
}
