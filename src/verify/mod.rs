//! Authentication: `Authorization: Bearer <token>` → a checked `Principal`.
//!
//! Owns bearer extraction, signature verification against the `KeyStore`, every claim check
//! (exp/nbf/iat with skew, iss/aud, key bindings, principal domain) and the verified-token cache.
//! Leaves route decisions to `policy` and HTTP wording to `error`.

mod bearer;
mod cache;
mod claims;
mod shared;
mod token;

#[cfg(test)]
mod tests;

pub use bearer::{bearer_token, fingerprint, DigestHashing, TokenDigest};
pub use cache::TokenCache;
pub use claims::{
    check_claims, domain_of, ClaimRules, ClaimSettings, OpenMetadataIdentity, Principal,
    PrincipalMapping,
};
pub use token::{decode_unverified, UnverifiedToken};

use crate::jwks::KeyStore;
use crate::metrics::Metrics;
use std::sync::Arc;

/// Why a token was not accepted. Carries what failed (kid, alg, claim), never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    TokenMissing,
    #[error("more than one Authorization header")]
    MultipleAuthorization,
    #[error("Authorization scheme is not Bearer")]
    NotBearer,
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(&'static str),
    #[error("algorithm `{0}` is not accepted")]
    AlgorithmRejected(String),
    #[error("no trusted key has kid `{0}`")]
    UnknownKid(String),
    #[error("no key could be loaded from any source")]
    NoKeysLoaded,
    #[error("signature does not verify with any trusted key")]
    BadSignature,
    #[error("key `{0}` is not bound to this token's issuer or audience")]
    KeyNotBound(String),
    #[error("token has expired")]
    Expired,
    #[error("token has no expiry and this gateway requires one")]
    NoExpiry,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("issuer `{0}` is not accepted")]
    IssuerRejected(String),
    #[error("audience is not accepted")]
    AudienceRejected,
    #[error("claim `{0}` has the wrong type")]
    BadClaim(&'static str),
    #[error("token names no principal (none of the principal claims is present)")]
    NoPrincipal,
    #[error("email domain does not match the principal domain")]
    DomainMismatch,
    #[error("claim `{0}` appears twice, in different cases")]
    AmbiguousClaim(String),
    #[error("the `{0}` claim named by jwtPrincipalClaimsMapping is not present or invalid")]
    MappedClaimMissing(&'static str),
    #[error("the principal claim holds no `@` and no principal domain is configured")]
    NoPrincipalDomain,
    #[error("a claim the gateway forwards holds a control character (or a role holds `,`)")]
    Unforwardable,
    #[error("the token's `crit` header names extensions the gateway does not understand")]
    CriticalHeader,
    #[error("OpenMetadata no longer accepts this token (revoked, replaced, logged out or its session ended)")]
    Revoked,
}

impl AuthError {
    /// A bounded label for `om_gateway_auth_decisions_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::TokenMissing => "token_missing",
            AuthError::MultipleAuthorization => "multiple_authorization",
            AuthError::NotBearer => "not_bearer",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgorithmRejected(_) => "algorithm_rejected",
            AuthError::UnknownKid(_) => "unknown_kid",
            AuthError::NoKeysLoaded => "no_keys",
            AuthError::BadSignature => "bad_signature",
            AuthError::KeyNotBound(_) => "key_not_bound",
            AuthError::Expired => "expired",
            AuthError::NoExpiry => "no_expiry",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::IssuerRejected(_) => "issuer_rejected",
            AuthError::AudienceRejected => "audience_rejected",
            AuthError::BadClaim(_) => "bad_claim",
            AuthError::NoPrincipal => "no_principal",
            AuthError::DomainMismatch => "domain_mismatch",
            AuthError::AmbiguousClaim(_) => "ambiguous_claim",
            AuthError::MappedClaimMissing(_) => "mapped_claim_missing",
            AuthError::NoPrincipalDomain => "no_principal_domain",
            AuthError::Unforwardable => "unforwardable_claim",
            AuthError::CriticalHeader => "critical_header",
            AuthError::Revoked => "revoked",
        }
    }
}

/// What an `Authenticator` needs from the configuration; `config` builds it.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    pub claims: ClaimRules,
    pub cache_max_entries: u64,
    pub cache_ttl: std::time::Duration,
}

/// A verified request identity and the token's fingerprint for logs.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Arc<Principal>,
    pub fingerprint: String,
    /// SHA-256 of the token, computed once per request (the cache key; the revocation check's
    /// key too).
    pub digest: TokenDigest,
    pub cache_hit: bool,
}

/// Verifies tokens for one configuration generation.
pub struct Authenticator {
    settings: claims::ClaimSettings,
    key_store: Arc<KeyStore>,
    cache: Arc<TokenCache>,
    /// Resolved once: `with_label_values` hashes the labels and takes a lock on every call.
    cache_hits: prometheus::IntCounter,
    cache_misses: prometheus::IntCounter,
}

impl Authenticator {
    pub fn new(
        settings: VerifySettings,
        key_store: Arc<KeyStore>,
        metrics: Arc<Metrics>,
    ) -> Authenticator {
        let cache = TokenCache::new(
            settings.cache_max_entries,
            settings.cache_ttl,
            settings.claims.clock_skew,
        );
        let cache = Arc::new(cache);
        // Weak: the key store outlives reloads, and must not keep a replaced generation's cache
        // (up to maxEntries principals) alive.
        let evict = Arc::downgrade(&cache);
        key_store.on_keys_removed(Box::new(move |thumbprints| {
            if let Some(cache) = evict.upgrade() {
                cache.evict_signed_by(thumbprints)
            }
        }));
        let counter = |result: &str| {
            metrics
                .token_cache_requests_total
                .with_label_values(&[result])
        };
        Authenticator {
            settings: claims::ClaimSettings::new(settings.claims),
            key_store,
            cache,
            cache_hits: counter("hit"),
            cache_misses: counter("miss"),
        }
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        &self.key_store
    }

    /// Authenticate a request by its headers.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Authenticated, AuthError> {
        let token = bearer_token(headers)?;
        self.authenticate_token(token).await
    }

    /// Authenticate a raw token (also used by `inspect`).
    pub async fn authenticate_token(&self, token: &str) -> Result<Authenticated, AuthError> {
        let authenticated = self.authenticate_uncounted(token).await?;
        // The drain view (`/keys`, `om-gateway keys`): which key verified it, for whom.
        let principal = &authenticated.principal;
        self.key_store.record_use(
            principal.kid.as_deref(),
            &principal.key_source,
            &principal.name,
            !authenticated.cache_hit,
        );
        Ok(authenticated)
    }

    /// The cache, else the full check.
    async fn authenticate_uncounted(&self, token: &str) -> Result<Authenticated, AuthError> {
        let digest = TokenDigest::of(token);
        if let Some(principal) = self.cache.get(&digest) {
            self.cache_hits.inc();
            return Ok(Authenticated {
                principal,
                fingerprint: digest.fingerprint(),
                digest,
                cache_hit: true,
            });
        }
        self.cache_misses.inc();
        let generation = self.key_store.removal_generation();
        let principal = Arc::new(self.verify(token).await?);
        self.cache.insert(digest, principal.clone());
        // The signing key may have left its source while we verified, after the cache was
        // purged of its tokens: then do not let this entry outlive the key.
        if self.key_store.removal_generation() != generation {
            self.cache.invalidate(&digest);
        }
        Ok(Authenticated {
            principal,
            fingerprint: digest.fingerprint(),
            digest,
            cache_hit: false,
        })
    }

    /// The full check, without the cache.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let unverified = decode_unverified(token)?;
        let key = token::find_verifying_key(&unverified, &self.key_store, &self.settings).await?;
        claims::check_claims(&unverified.claims, &key, &self.settings)
    }
}

/// Who may present a token without `exp` (OpenMetadata bot tokens carry `"exp": null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryPolicy {
    Bots,
    All,
    None,
}
