//! Claim checks and the principal, as OpenMetadata's JwtFilter reads them: its own claims
//! (`isBot`, `tokenType`, `roles`, `email`, the principal claims) case-insensitively; registered
//! claims (`exp`, `nbf`, `iat`, `iss`, `aud`) exactly.

use super::shared::SharedValues;
use super::token::audiences_of;
use super::AuthError;
use crate::config::{Config, ExpiryPolicy};
use crate::jwks::VerifyingKey;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Who a verified token speaks for.
///
/// Kept compact, as up to `tokenCache.maxEntries` of these live in the cache: values most
/// principals repeat (`token_type`, `roles`, `issuer`, `kid`, `key_thumbprint`) are shared `Arc`s
/// (`SharedValues`), `key_source` is the key's own, and only the user's name and email are copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user name: the principal claim's value before any `@`.
    pub name: String,
    pub email: Option<Box<str>>,
    pub is_bot: bool,
    pub token_type: Option<Arc<str>>,
    pub roles: Arc<[String]>,
    pub issuer: Option<Arc<str>>,
    /// `exp` in Unix seconds; `None` for tokens without expiry.
    pub expires_at: Option<u64>,
    pub kid: Option<Arc<str>>,
    pub key_source: Arc<str>,
    pub key_thumbprint: Arc<str>,
    /// Only the claims some route's `claims` requirement names (lower-cased), to keep cache entries small.
    pub extra_claims: Vec<(String, Value)>,
}

impl Principal {
    /// A claim kept for route requirements.
    pub fn claim(&self, lower_name: &str) -> Option<&Value> {
        self.extra_claims
            .iter()
            .find(|(name, _)| name == lower_name)
            .map(|(_, value)| value)
    }
}

/// What claim checking needs from the configuration, prepared once.
#[derive(Debug, Clone)]
pub struct ClaimSettings {
    pub default_algorithm: jsonwebtoken::Algorithm,
    issuers: Vec<String>,
    audiences: Vec<String>,
    clock_skew: u64,
    expiry_policy: ExpiryPolicy,
    principal_claims: Vec<String>,
    principal_claims_mapping: Vec<(String, String)>,
    roles_claim: String,
    enforce_principal_domain: bool,
    principal_domain: String,
    allowed_domains: Vec<String>,
    extra_claims: BTreeSet<String>,
    /// Shared copies of the values principals repeat; one table per configuration generation.
    shared: Arc<SharedValues>,
}

impl ClaimSettings {
    pub fn from_config(config: &Config) -> ClaimSettings {
        let auth = &config.auth;
        let extra_claims = config
            .routes
            .iter()
            .chain(std::iter::once(&config.default_route))
            .flat_map(|route| route.require.claims.iter().map(|(name, _)| name.clone()))
            .collect();
        ClaimSettings {
            default_algorithm: auth.token_validation_algorithm,
            issuers: auth.issuers.clone(),
            audiences: auth.audiences.clone(),
            clock_skew: auth.clock_skew.as_secs(),
            expiry_policy: auth.allow_tokens_without_expiry,
            principal_claims: auth.principal_claims.clone(),
            principal_claims_mapping: auth.principal_claims_mapping.clone(),
            roles_claim: auth.roles_claim.clone(),
            enforce_principal_domain: config.authorizer.enforce_principal_domain,
            principal_domain: config.authorizer.principal_domain.to_ascii_lowercase(),
            allowed_domains: config
                .authorizer
                .allowed_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            extra_claims,
            shared: Arc::new(SharedValues::default()),
        }
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Look up one of OpenMetadata's own claims, ignoring case as the server does.
fn claim_ci<'a>(claims: &'a Map<String, Value>, lower_name: &str) -> Option<&'a Value> {
    claims.get(lower_name).or_else(|| {
        claims
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(lower_name))
            .map(|(_, value)| value)
    })
}

fn string_claim(claims: &Map<String, Value>, lower_name: &str) -> Option<String> {
    string_claim_ref(claims, lower_name).map(str::to_string)
}

/// A non-blank string claim, trimmed.
fn string_claim_ref<'a>(claims: &'a Map<String, Value>, lower_name: &str) -> Option<&'a str> {
    match claim_ci(claims, lower_name)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim()),
        _ => None,
    }
}

/// A numeric date claim: absent/null → `Ok(None)`; anything but a number → error.
fn date_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, AuthError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .map(Some)
            .ok_or(AuthError::BadClaim(name)),
        Some(_) => Err(AuthError::BadClaim(name)),
    }
}

/// Check every claim of a token whose signature `key` verified, and build its principal.
pub fn check_claims(
    claims: &Map<String, Value>,
    key: &Arc<VerifyingKey>,
    settings: &ClaimSettings,
) -> Result<Principal, AuthError> {
    let now = now_seconds();
    let skew = settings.clock_skew;
    let is_bot = match claim_ci(claims, "isbot") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(AuthError::BadClaim("isBot")),
    };
    let expires_at = date_claim(claims, "exp")?;
    match expires_at {
        Some(exp) if now > exp.saturating_add(skew) => return Err(AuthError::Expired),
        Some(_) => {}
        None => match settings.expiry_policy {
            ExpiryPolicy::All => {}
            ExpiryPolicy::Bots if is_bot => {}
            _ => return Err(AuthError::NoExpiry),
        },
    }
    if date_claim(claims, "nbf")?.is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(AuthError::NotYetValid);
    }
    if date_claim(claims, "iat")?.is_some_and(|iat| iat > now.saturating_add(skew)) {
        return Err(AuthError::IssuedInFuture);
    }
    let issuer = match claims.get("iss") {
        None | Some(Value::Null) => None,
        Some(Value::String(iss)) => Some(iss.as_str()),
        Some(_) => return Err(AuthError::BadClaim("iss")),
    };
    if !settings.issuers.is_empty()
        && !issuer.is_some_and(|iss| settings.issuers.iter().any(|accepted| accepted == iss))
    {
        return Err(AuthError::IssuerRejected(
            issuer.unwrap_or_default().chars().take(64).collect(),
        ));
    }
    if !settings.audiences.is_empty()
        && !audiences_of(claims)
            .iter()
            .any(|aud| settings.audiences.iter().any(|a| a == aud))
    {
        return Err(AuthError::AudienceRejected);
    }
    let (name, email) = principal_of(claims, settings)?;
    if settings.enforce_principal_domain && !is_bot {
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let allowed = domain.is_some_and(|domain| {
            domain == settings.principal_domain || settings.allowed_domains.contains(&domain)
        });
        if !allowed {
            return Err(AuthError::DomainMismatch);
        }
    }
    let roles = match claim_ci(claims, &settings.roles_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(role)) => role
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        _ => Vec::new(),
    };
    let extra_claims = settings
        .extra_claims
        .iter()
        .filter_map(|name| claim_ci(claims, name).map(|value| (name.clone(), value.clone())))
        .collect();
    let token_type = string_claim_ref(claims, "tokentype");
    let mut shared = settings.shared.sharer();
    Ok(Principal {
        name,
        email: email.map(String::into_boxed_str),
        is_bot,
        token_type: token_type.map(|text| shared.string(text)),
        roles: shared.roles(roles),
        issuer: issuer.map(|text| shared.string(text)),
        expires_at,
        kid: key.key.kid.as_deref().map(|kid| shared.string(kid)),
        key_source: key.binding.url.clone(),
        key_thumbprint: shared.string(&key.key.thumbprint),
        extra_claims,
    })
}

/// The user name and email, by `jwtPrincipalClaimsMapping` when set, else the first
/// `jwtPrincipalClaims` present (the part before `@` is the name).
fn principal_of(
    claims: &Map<String, Value>,
    settings: &ClaimSettings,
) -> Result<(String, Option<String>), AuthError> {
    if !settings.principal_claims_mapping.is_empty() {
        let mapped = |field: &str| {
            settings
                .principal_claims_mapping
                .iter()
                .find(|(name, _)| name == field)
                .and_then(|(_, claim)| string_claim(claims, claim))
        };
        let name = mapped("username").ok_or(AuthError::NoPrincipal)?;
        let email = mapped("email").or_else(|| string_claim(claims, "email"));
        return Ok((name, email));
    }
    let value = settings
        .principal_claims
        .iter()
        .find_map(|claim| string_claim(claims, claim))
        .ok_or(AuthError::NoPrincipal)?;
    let name = value.split('@').next().unwrap_or(&value).to_string();
    if name.is_empty() {
        return Err(AuthError::NoPrincipal);
    }
    let email =
        string_claim(claims, "email").or_else(|| value.contains('@').then(|| value.clone()));
    Ok((name, email))
}
