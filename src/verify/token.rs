//! Token structure and signatures: split the compact JWS, read its header and claims once, pick
//! the keys that may have signed it, and verify.
//!
//! Header parameters `jku`, `x5u`, `jwk` and `x5c` are never read: a token cannot tell the
//! gateway where to find the key that vouches for it.

use super::claims::ClaimSettings;
use super::AuthError;
use crate::jwks::parse::{decode_base64_lenient, parse_algorithm};
use crate::jwks::{KeyStore, VerifyingKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::sync::Arc;

/// A token whose structure has been read but whose signature is not yet checked.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    /// `base64(header).base64(claims)`: what the signature covers.
    pub signing_input: &'a str,
    pub signature: &'a str,
    /// The signature's bytes, decoded once here (every RS256 candidate key checks these).
    pub signature_bytes: Vec<u8>,
}

/// Parse the token's three parts. Fails on anything but a compact JWS with an accepted `alg`.
pub fn decode_unverified(token: &str) -> Result<UnverifiedToken<'_>, AuthError> {
    let mut parts = token.splitn(4, '.');
    let (Some(header_part), Some(claims_part), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("expected three dot-separated parts"));
    };
    let signing_input = token
        .get(..header_part.len() + 1 + claims_part.len())
        .ok_or(AuthError::Malformed("parts"))?;
    let header =
        decode_part(header_part).ok_or(AuthError::Malformed("header is not base64url JSON"))?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(AuthError::Malformed("header has no alg"))?;
    let algorithm =
        parse_algorithm(alg).ok_or_else(|| AuthError::AlgorithmRejected(truncate(alg)))?;
    // RFC 7515 §4.1.11: a recipient that does not understand every extension `crit` names must
    // reject the token. The gateway understands none (and `crit` may never be empty).
    if header.contains_key("crit") {
        return Err(AuthError::CriticalHeader);
    }
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(kid)) if kid.len() <= 256 => Some(kid.clone()),
        Some(_) => return Err(AuthError::Malformed("kid is not a short string")),
    };
    let claims =
        decode_part(claims_part).ok_or(AuthError::Malformed("payload is not base64url JSON"))?;
    let signature_bytes = match URL_SAFE_NO_PAD.decode(signature) {
        Ok(bytes) if !bytes.is_empty() => bytes,
        _ => return Err(AuthError::Malformed("signature is not base64url")),
    };
    Ok(UnverifiedToken {
        algorithm,
        kid,
        header,
        claims,
        signing_input,
        signature,
        signature_bytes,
    })
}

fn decode_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .or_else(|| decode_base64_lenient(part).ok())?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(32).collect()
}

/// Find the key that signed `token`: by kid, refetching once on an unknown kid, then the
/// kid-less keys; only keys allowed for this `alg` and bound to this token's iss/aud.
pub async fn find_verifying_key(
    token: &UnverifiedToken<'_>,
    key_store: &Arc<KeyStore>,
    settings: &ClaimSettings,
) -> Result<Arc<VerifyingKey>, AuthError> {
    let issuer = token.claims.get("iss").and_then(Value::as_str);
    let mut candidates = match &token.kid {
        Some(kid) => {
            let audiences = audiences_of(&token.claims);
            let mut keys = key_store.keys_for_kid(kid);
            // A kid known only to sources that may not vouch for this issuer is as good as
            // unknown: look again at the sources that may (same single-flight, same floor).
            if !keys
                .iter()
                .any(|key| key.permits_claims(issuer, &audiences))
            {
                key_store.refetch_for_unknown_kid(issuer).await;
                keys = key_store.keys_for_kid(kid);
                if keys.is_empty() {
                    // Counted only when no source publishes this kid any more (drain view).
                    key_store.record_unknown_kid(kid);
                }
            }
            keys
        }
        None => Vec::new(),
    };
    if candidates.is_empty() {
        candidates = key_store.kidless_keys();
    }
    if candidates.is_empty() {
        if key_store.key_count() == 0 {
            return Err(AuthError::NoKeysLoaded);
        }
        return Err(AuthError::UnknownKid(
            token
                .kid
                .clone()
                .map(|k| truncate(&k))
                .unwrap_or_else(|| "(none)".into()),
        ));
    }
    let audiences = audiences_of(&token.claims);
    let mut outcome = AuthError::BadSignature;
    for key in candidates {
        if !key.permits_algorithm(token.algorithm, settings.default_algorithm) {
            outcome = AuthError::AlgorithmRejected(format!("{:?}", token.algorithm));
            continue;
        }
        if !key.permits_claims(issuer, &audiences) {
            outcome = AuthError::KeyNotBound(key.key.kid.clone().unwrap_or_default());
            continue;
        }
        let verified = match (&key.key.rs256, token.algorithm) {
            // Same check as jsonwebtoken's RS256 (PKCS#1 v1.5, SHA-256, 2048–8192 bits), on the
            // key parsed once at load time.
            (Some(parsed), Algorithm::RS256) => parsed
                .verify_sig(token.signing_input.as_bytes(), &token.signature_bytes)
                .is_ok(),
            _ => matches!(
                jsonwebtoken::crypto::verify(
                    token.signature,
                    token.signing_input.as_bytes(),
                    &key.key.decoding_key,
                    token.algorithm,
                ),
                Ok(true)
            ),
        };
        if verified {
            return Ok(key);
        }
        outcome = AuthError::BadSignature;
    }
    Err(outcome)
}

/// `aud` as a list, whether the token wrote a string or an array.
pub fn audiences_of(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(audience)) => vec![audience.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
