//! The verified-token cache: SHA-256(token) → principal, so a token seen before costs a hash and
//! a lookup instead of an RSA verification. An entry is never served past `tokenCache.ttl` nor past
//! the token's `exp` (plus skew), and leaves at once when its signing key leaves its source.

use super::bearer::{DigestHashing, TokenDigest};
use super::claims::Principal;
use moka::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Clone)]
pub struct TokenCache {
    inner: Cache<TokenDigest, Arc<Principal>, DigestHashing>,
    clock_skew: u64,
}

impl TokenCache {
    /// One lifetime for every entry (`ttl`), and `get` refuses an entry whose token expired
    /// meanwhile: together an entry is never served past `ttl` nor past `exp` + skew. A per-entry
    /// expiry (moka's `expire_after`) would free an expired entry sooner, but its timer-wheel node
    /// costs ~50 bytes on every entry (examples/token_cache_memory.rs).
    pub fn new(max_entries: u64, ttl: Duration, clock_skew: Duration) -> TokenCache {
        let inner = Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl)
            .support_invalidation_closures()
            .build_with_hasher(DigestHashing);
        TokenCache {
            inner,
            clock_skew: clock_skew.as_secs(),
        }
    }

    /// A cached principal whose token has not expired meanwhile.
    pub fn get(&self, digest: &TokenDigest) -> Option<Arc<Principal>> {
        let principal = self.inner.get(digest)?;
        if let Some(exp) = principal.expires_at {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            if now > exp.saturating_add(self.clock_skew) {
                self.inner.invalidate(digest);
                return None;
            }
        }
        Some(principal)
    }

    pub fn insert(&self, digest: TokenDigest, principal: Arc<Principal>) {
        self.inner.insert(digest, principal);
    }

    pub fn invalidate(&self, digest: &TokenDigest) {
        self.inner.invalidate(digest);
    }

    /// Drop every entry verified by one of these keys.
    pub fn evict_signed_by(&self, thumbprints: &[String]) {
        let thumbprints = thumbprints.to_vec();
        // Only fails when invalidation closures are not enabled, which `new` always does.
        let _ = self.inner.invalidate_entries_if(move |_, principal| {
            thumbprints
                .iter()
                .any(|thumbprint| **thumbprint == *principal.key_thumbprint)
        });
    }

    pub fn entry_count(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}
