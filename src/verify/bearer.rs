//! Bearer extraction and token fingerprints.
//!
//! Exactly one `Authorization` header, scheme `Bearer` (any case), a non-empty token. The token's
//! SHA-256 keys the verified-token cache (collision-resistant: a different token can never hit
//! another's entry) and its first 8 hex digits are the fingerprint logs may carry.

use super::AuthError;

/// Largest token considered at all; OpenMetadata's are under 2 KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The token from the request's single `Authorization: Bearer` header.
pub fn bearer_token(headers: &http::HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AuthError::TokenMissing);
    };
    if values.next().is_some() {
        return Err(AuthError::MultipleAuthorization);
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("Authorization is not ASCII"))?
        .trim();
    if value.is_empty() {
        return Err(AuthError::TokenMissing);
    }
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::TokenMissing);
    }
    if token.len() > MAX_TOKEN_BYTES || token.contains(' ') {
        return Err(AuthError::Malformed("token too long or contains spaces"));
    }
    Ok(token)
}

/// SHA-256 of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

/// A digest is already uniformly distributed and no client can choose it (that would take a
/// SHA-256 preimage), so its first eight bytes are its hash: maps keyed by digests use
/// `DigestHashing` instead of hashing 32 bytes again with SipHash on every lookup.
impl std::hash::Hash for TokenDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(first));
    }
}

/// The `BuildHasher` for maps keyed by `TokenDigest` (the token cache, the revocation answers):
/// the value written by `TokenDigest::hash` passes through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHashing;

/// See `DigestHashing`. Anything but one `write_u64` (not expected: only digests are keys) is
/// folded in with FNV-1a, so that it still hashes.
#[derive(Debug, Default)]
pub struct DigestHasher(u64);

impl std::hash::BuildHasher for DigestHashing {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        TokenDigest(bytes)
    }

    /// First 8 hex digits: enough to correlate log lines, useless to an attacker.
    pub fn fingerprint(&self) -> String {
        let mut text = String::with_capacity(8);
        // Runs on every request; a lookup table instead of four `format!` calls.
        for byte in self.0.iter().take(4) {
            for nibble in [byte >> 4, byte & 0x0f] {
                text.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        text
    }
}

/// The fingerprint of a token, for logs and `inspect`.
pub fn fingerprint(token: &str) -> String {
    TokenDigest::of(token).fingerprint()
}
