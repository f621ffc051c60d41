//! Claim checks and the principal, as OpenMetadata's server reads them.
//!
//! Mirrors `openmetadata-service/.../security/JwtFilter.java` (claims in a case-insensitive map,
//! `isBot`, roles, the checks after the signature) and `SecurityUtil.java`
//! (`findUserNameFromClaims`, `findEmailFromClaims`, `validateDomainEnforcement`,
//! `isOpenMetadataIssuedToken`). OpenMetadata's own claims and the principal claims are looked up
//! case-insensitively, as the server's `TreeMap(String.CASE_INSENSITIVE_ORDER)` does; registered
//! claims (`exp`, `nbf`, `iat`, `iss`, `aud`) exactly. Where the gateway is stricter than the
//! server (nbf/iat, iss/aud lists, tokens without `exp`, values it cannot forward), README's
//! "Deliberately stricter than the server" lists it with its switch.

use super::shared::SharedValues;
use super::token::audiences_of;
use super::{AuthError, ExpiryPolicy};
use crate::jwks::VerifyingKey;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who a verified token speaks for.
///
/// Kept compact, as up to `tokenCache.maxEntries` of these live in the cache: values most
/// principals repeat (`token_type`, `roles`, `issuer`, `kid`, `key_thumbprint`) are shared `Arc`s
/// (`SharedValues`), `key_source` is the key's own, and only the user's name and email are copied.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The user name as the server derives it: the principal claim's value before the first `@`,
    /// lower-cased.
    pub name: String,
    /// The email as the server derives it (lower-cased); `name@principalDomain` when the claim
    /// holds no `@`.
    pub email: Option<Box<str>>,
    pub is_bot: bool,
    pub token_type: Option<Arc<str>>,
    /// The token's roles claim (a JSON array of strings); what route rules match against.
    pub roles: Arc<[String]>,
    /// Whether the server itself takes `roles` from this token (`useRolesFromProvider`, non-bots
    /// only); otherwise it reads the user's roles from its database.
    pub server_uses_token_roles: bool,
    /// Minted by OpenMetadata itself (its key id and issuer): exempt from domain enforcement.
    pub issued_by_openmetadata: bool,
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

    /// The domain of the email: the text after the first `@` up to the next one, as the server's
    /// `email.split("@")[1]` reads it.
    pub fn email_domain(&self) -> Option<&str> {
        self.email.as_deref().and_then(domain_of)
    }
}

/// `jwtPrincipalClaimsMapping` once validated: the claim holding the user name and the one
/// holding the email (`SecurityUtil.validatePrincipalClaimsMapping` requires both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalMapping {
    pub username_claim: String,
    pub email_claim: String,
}

/// The identity OpenMetadata signs its own tokens with (`jwtTokenConfiguration`): tokens
/// carrying both its key id and its issuer are exempt from domain enforcement, as on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMetadataIdentity {
    pub issuer: String,
    pub key_id: String,
}

/// What claim checking needs from the configuration; `config` builds it, nothing here reads
/// `Config`.
#[derive(Debug, Clone)]
pub struct ClaimRules {
    pub default_algorithm: jsonwebtoken::Algorithm,
    /// When non-empty, `iss` must be one of these (a gateway addition).
    pub issuers: Vec<String>,
    /// When non-empty, `aud` must contain one of these (a gateway addition).
    pub audiences: Vec<String>,
    pub clock_skew: Duration,
    pub expiry_policy: ExpiryPolicy,
    /// `jwtPrincipalClaims`, in order.
    pub principal_claims: Vec<String>,
    pub principal_mapping: Option<PrincipalMapping>,
    pub roles_claim: String,
    pub use_roles_from_provider: bool,
    pub principal_domain: String,
    pub enforce_principal_domain: bool,
    pub allowed_domains: Vec<String>,
    pub openmetadata: Option<OpenMetadataIdentity>,
    /// Claims some route's `claims` requirement names (lower-cased).
    pub extra_claims: BTreeSet<String>,
}

/// `ClaimRules` prepared once per configuration generation.
#[derive(Debug, Clone)]
pub struct ClaimSettings {
    pub default_algorithm: jsonwebtoken::Algorithm,
    rules: ClaimRules,
    /// `allowedDomains` when non-empty, else `principalDomain`; lower-cased.
    expected_domains: Vec<String>,
    /// Shared copies of the values principals repeat; one table per configuration generation.
    shared: Arc<SharedValues>,
}

impl ClaimSettings {
    pub fn new(rules: ClaimRules) -> ClaimSettings {
        // SecurityUtil.validateDomainEnforcement: allowedDomains replaces principalDomain.
        // An empty principalDomain expects nothing (the server's `Set.of()`), not an empty domain.
        let configured = if rules.allowed_domains.is_empty() {
            std::slice::from_ref(&rules.principal_domain)
        } else {
            rules.allowed_domains.as_slice()
        };
        let expected_domains = configured
            .iter()
            .filter(|domain| !domain.is_empty())
            .map(|domain| domain.to_lowercase())
            .collect();
        ClaimSettings {
            default_algorithm: rules.default_algorithm,
            expected_domains,
            rules,
            shared: Arc::new(SharedValues::default()),
        }
    }

    pub fn rules(&self) -> &ClaimRules {
        &self.rules
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The domain part of an email as the server's `split("@")[1]` reads it: after the first `@`,
/// up to the next one. `None` without an `@` or when nothing follows it.
pub fn domain_of(email: &str) -> Option<&str> {
    let (_, rest) = email.split_once('@')?;
    let domain = rest.split('@').next().unwrap_or(rest);
    (!domain.is_empty()).then_some(domain)
}

/// Look up one of OpenMetadata's own claims ignoring case, as the server's case-insensitive claim
/// map does. Two claims that differ only in case are refused: the server would pick one of them
/// by hash order, so no answer here could be sure to match it.
fn claim_ci<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Value>, AuthError> {
    let mut found = None;
    for (key, value) in claims {
        if key.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(AuthError::AmbiguousClaim(truncate(name)));
            }
            found = Some(value);
        }
    }
    Ok(found)
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
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

/// `SecurityUtil.isBot`: only a JSON `true` makes a bot (`Claim.asBoolean()` is null for the
/// string `"true"`).
fn is_bot(claims: &Map<String, Value>) -> Result<bool, AuthError> {
    Ok(matches!(
        claim_ci(claims, "isbot")?,
        Some(Value::Bool(true))
    ))
}

/// Check every claim of a token whose signature `key` verified, and build its principal.
pub fn check_claims(
    claims: &Map<String, Value>,
    key: &Arc<VerifyingKey>,
    settings: &ClaimSettings,
) -> Result<Principal, AuthError> {
    let rules = &settings.rules;
    let now = now_seconds();
    let skew = rules.clock_skew.as_secs();
    let is_bot = is_bot(claims)?;
    let expires_at = date_claim(claims, "exp")?;
    match expires_at {
        Some(exp) if now > exp.saturating_add(skew) => return Err(AuthError::Expired),
        Some(_) => {}
        None => match rules.expiry_policy {
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
    if !rules.issuers.is_empty()
        && !issuer.is_some_and(|iss| rules.issuers.iter().any(|accepted| accepted == iss))
    {
        return Err(AuthError::IssuerRejected(truncate(
            issuer.unwrap_or_default(),
        )));
    }
    if !rules.audiences.is_empty()
        && !audiences_of(claims)
            .iter()
            .any(|aud| rules.audiences.iter().any(|a| a == aud))
    {
        return Err(AuthError::AudienceRejected);
    }
    let identity = identity_of(claims, is_bot, rules)?;
    let kid = key.key.kid.as_deref();
    // SecurityUtil.isOpenMetadataIssuedToken: its key id and its issuer, both configured.
    let issued_by_openmetadata = rules.openmetadata.as_ref().is_some_and(|om| {
        !om.issuer.is_empty()
            && !om.key_id.is_empty()
            && kid == Some(om.key_id.as_str())
            && issuer == Some(om.issuer.as_str())
    });
    // JwtFilter.checkValidationsForToken: enforcement skips OpenMetadata's own tokens, and
    // SecurityUtil.validateDomainEnforcement skips bots.
    if rules.enforce_principal_domain && !issued_by_openmetadata && !is_bot {
        let domain = identity.domain.as_deref().unwrap_or("").to_lowercase();
        if !settings.expected_domains.contains(&domain) {
            return Err(AuthError::DomainMismatch);
        }
    }
    let roles = roles_of(claims, &rules.roles_claim)?;
    let token_type = match claim_ci(claims, "tokentype")? {
        Some(Value::String(text)) => Some(text.as_str()),
        _ => None,
    };
    // Values that become identity headers must be forwardable as they are: a CR or LF (or any
    // other control character) would otherwise be dropped or split a header.
    for value in [identity.name.as_str(), identity.email.as_str()]
        .into_iter()
        .chain(token_type)
        .chain(roles.iter().map(String::as_str))
    {
        if !forwardable(value) {
            return Err(AuthError::Unforwardable);
        }
    }
    if roles.iter().any(|role| role.contains(',')) {
        return Err(AuthError::Unforwardable);
    }
    let extra_claims = rules
        .extra_claims
        .iter()
        .filter_map(|name| match claim_ci(claims, name) {
            Ok(Some(value)) => Some(Ok((name.clone(), value.clone()))),
            Ok(None) => None,
            Err(error) => Some(Err(error)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut shared = settings.shared.sharer();
    Ok(Principal {
        name: identity.name,
        email: Some(identity.email.into_boxed_str()),
        is_bot,
        token_type: token_type.map(|text| shared.string(text)),
        server_uses_token_roles: rules.use_roles_from_provider && !is_bot,
        roles: shared.roles(roles),
        issued_by_openmetadata,
        issuer: issuer.map(|text| shared.string(text)),
        expires_at,
        kid: kid.map(|kid| shared.string(kid)),
        key_source: key.binding.url.clone(),
        key_thumbprint: shared.string(&key.key.thumbprint),
        extra_claims,
    })
}

/// A header value the gateway can forward unchanged: no control characters.
fn forwardable(value: &str) -> bool {
    !value.chars().any(|c| c.is_control())
}

/// The name, email and domain the server derives.
struct Identity {
    name: String,
    email: String,
    /// What `validateDomainEnforcement` compares (`None`: the value holds no `@`).
    domain: Option<String>,
}

/// `SecurityUtil.findUserNameFromClaims`, `findEmailFromClaims` and the domain half of
/// `validateDomainEnforcement`: with a mapping (non-bots only) the mapped claims; otherwise the
/// first of `jwtPrincipalClaims` present. The name is the part before the first `@`, lower-cased;
/// the email is the value when it holds `@`, else `name@principalDomain`, lower-cased.
fn identity_of(
    claims: &Map<String, Value>,
    is_bot: bool,
    rules: &ClaimRules,
) -> Result<Identity, AuthError> {
    if let Some(mapping) = rules.principal_mapping.as_ref().filter(|_| !is_bot) {
        let username = string_value(claim_ci(claims, &mapping.username_claim)?)
            .filter(|value| !value.is_empty())
            .ok_or(AuthError::MappedClaimMissing("username"))?;
        let email = string_value(claim_ci(claims, &mapping.email_claim)?)
            .filter(|value| value.contains('@'))
            .ok_or(AuthError::MappedClaimMissing("email"))?;
        let name = username
            .split('@')
            .next()
            .unwrap_or(username)
            .to_lowercase();
        if name.is_empty() {
            return Err(AuthError::NoPrincipal);
        }
        return Ok(Identity {
            name,
            domain: domain_of(email).map(str::to_string),
            email: email.to_lowercase(),
        });
    }
    // getFirstMatchJwtClaim: the first claim *present*, whatever its value; the server does not
    // fall through to the next one when it is empty or not a string.
    let mut present = None;
    for claim in &rules.principal_claims {
        if let Some(value) = claim_ci(claims, claim)? {
            present = Some(value);
            break;
        }
    }
    let value = string_value(present)
        .filter(|value| !value.is_empty())
        .ok_or(AuthError::NoPrincipal)?;
    let name = value.split('@').next().unwrap_or(value).to_lowercase();
    if name.is_empty() {
        return Err(AuthError::NoPrincipal);
    }
    let email = if value.contains('@') {
        value.to_lowercase()
    } else if rules.principal_domain.is_empty() {
        return Err(AuthError::NoPrincipalDomain);
    } else {
        format!("{value}@{}", rules.principal_domain).to_lowercase()
    };
    Ok(Identity {
        name,
        domain: domain_of(value).map(str::to_string),
        email,
    })
}

/// `Claim.asString()`: the text of a JSON string, nothing for any other JSON type.
fn string_value(value: Option<&Value>) -> Option<&str> {
    match value? {
        Value::String(text) => Some(text.as_str()),
        _ => None,
    }
}

/// The roles claim, read only as a JSON array (`Claim.asList(String.class)`); its string items.
/// A string, number or object there gives no roles.
fn roles_of(claims: &Map<String, Value>, roles_claim: &str) -> Result<Vec<String>, AuthError> {
    Ok(match claim_ci(claims, roles_claim)? {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    })
}
