//! Compiled only under `#[cfg(test)]` (declared in this directory's mod.rs): tests may unwrap.
//! Unit tests for verification details the integration tests do not isolate: the RS256 path on
//! keys parsed once at load time, and fingerprints.

use super::shared::{SharedValues, MAX_SHARED_BYTES, MAX_SHARED_VALUES};
use super::{fingerprint, AuthError, Authenticator, Principal, TokenCache, TokenDigest};
use crate::jwks::KeyStore;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn authenticator() -> Authenticator {
    let environment: HashMap<String, String> = HashMap::new();
    let yaml = format!(
        "upstream: {{ url: 'http://127.0.0.1:9' }}\n\
         authenticationConfiguration:\n\
         \x20 publicKeyFiles:\n\
         \x20   - {{ file: '{KEYS}/rsa-a.pub.pem', kid: a }}\n\
         \x20   - {{ file: '{KEYS}/rsa-4096.pub.pem', kid: big }}\n"
    );
    let config = crate::config::load(crate::config::LoadInput {
        gateway_file: Some(crate::config::ConfigText {
            name: "t.yaml".into(),
            text: yaml,
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .unwrap();
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    let store = KeyStore::new(
        &config.auth.key_sources,
        &config.auth.key_files,
        config.jwks.clone(),
        metrics.clone(),
    )
    .unwrap();
    Authenticator::new(config.verify_settings(), store, metrics)
}

fn token(private_key: &str, kid: &str, alg: jsonwebtoken::Algorithm) -> String {
    let pem = std::fs::read(format!("{KEYS}/{private_key}")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.into());
    let claims = serde_json::json!({
        "iss": "open-metadata.org", "sub": "ingestion-bot", "isBot": true,
        "email": "ingestion-bot@open-metadata.org", "exp": 4102444800u64,
    });
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// Flip one bit in the middle of the signature (still valid base64url).
fn flip_signature(token: &str) -> String {
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let mut chars: Vec<char> = signature.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = if chars[middle] == 'A' { 'B' } else { 'A' };
    format!("{rest}.{}", chars.into_iter().collect::<String>())
}

#[tokio::test]
async fn rs256_on_keys_parsed_at_load_accepts_good_and_refuses_bad_signatures() {
    let authenticator = authenticator();
    let rs256 = jsonwebtoken::Algorithm::RS256;
    let good_2048 = token("rsa-a.pem", "a", rs256);
    let good_4096 = token("rsa-4096.pem", "big", rs256);
    let cases: Vec<(&str, String, Result<(), AuthError>)> = vec![
        ("2048-bit key", good_2048.clone(), Ok(())),
        ("4096-bit key", good_4096.clone(), Ok(())),
        (
            "flipped bit, 2048",
            flip_signature(&good_2048),
            Err(AuthError::BadSignature),
        ),
        (
            "flipped bit, 4096",
            flip_signature(&good_4096),
            Err(AuthError::BadSignature),
        ),
        // Signed by the 2048-bit key but naming the 4096-bit key's kid.
        (
            "wrong key for kid",
            token("rsa-a.pem", "big", rs256),
            Err(AuthError::BadSignature),
        ),
        (
            "signed by another key",
            token("rsa-b.pem", "a", rs256),
            Err(AuthError::BadSignature),
        ),
    ];
    for (name, token, expected) in cases {
        let got = authenticator.verify(&token).await.map(|_| ());
        assert_eq!(got, expected, "{name}");
    }
    for key in authenticator.key_store().all_keys() {
        assert!(
            key.key.rs256.is_some(),
            "RSA keys carry a pre-parsed RS256 key"
        );
    }
}

#[tokio::test]
async fn a_cached_token_is_a_hit_with_the_same_fingerprint() {
    let authenticator = authenticator();
    let token = token("rsa-a.pem", "a", jsonwebtoken::Algorithm::RS256);
    let first = authenticator.authenticate_token(&token).await.unwrap();
    let second = authenticator.authenticate_token(&token).await.unwrap();
    assert!(!first.cache_hit);
    assert!(second.cache_hit);
    assert_eq!(first.fingerprint, fingerprint(&token));
    assert_eq!(second.fingerprint, first.fingerprint);
    // A refused token is never cached.
    let bad = flip_signature(&token);
    for _ in 0..2 {
        assert_eq!(
            authenticator.authenticate_token(&bad).await.unwrap_err(),
            AuthError::BadSignature
        );
    }
}

#[test]
fn fingerprints_are_the_first_four_digest_bytes_in_lower_hex() {
    fn check(bytes: [u8; 4], expected: &str) {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&bytes);
        digest[4] = 0xff; // never part of the fingerprint
        assert_eq!(TokenDigest(digest).fingerprint(), expected);
    }
    check([0, 0, 0, 0], "00000000");
    check([0x01, 0x23, 0xab, 0xcd], "0123abcd");
    check([0xff, 0xf0, 0x0f, 0x10], "fff00f10");
}

/// A principal verified by a test key, expiring at `expires_at`.
fn cached_principal(expires_at: Option<u64>) -> Arc<Principal> {
    Arc::new(Principal {
        issued_by_openmetadata: false,
        server_uses_token_roles: false,
        name: "alice".into(),
        email: None,
        is_bot: false,
        token_type: None,
        roles: Arc::from([]),
        issuer: None,
        expires_at,
        kid: None,
        key_source: Arc::from("test"),
        key_thumbprint: "t".into(),
        extra_claims: Vec::new(),
    })
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Issue 7: one `time_to_live` for all entries, so `get` alone keeps an entry from being served
/// past its token's `exp` (+ skew); and `tokenCache.ttl` bounds every entry, with or without exp.
#[test]
fn cached_tokens_are_never_served_past_their_exp_nor_the_cache_ttl() {
    const SKEW: u64 = 30;
    let now = now_seconds();
    let long = Duration::from_secs(300);
    let short = Duration::from_millis(100);
    // (case, tokenCache.ttl, exp, wait before reading, served?)
    let cases: Vec<(&str, Duration, Option<u64>, Duration, bool)> = vec![
        ("exp ahead", long, Some(now + 3600), Duration::ZERO, true),
        ("no exp, within ttl", long, None, Duration::ZERO, true),
        (
            "exp passed, within skew",
            long,
            Some(now - SKEW + 5),
            Duration::ZERO,
            true,
        ),
        (
            "exp passed beyond skew",
            long,
            Some(now - SKEW - 5),
            Duration::ZERO,
            false,
        ),
        (
            "exp far ahead, ttl over",
            short,
            Some(now + 3600),
            short * 3,
            false,
        ),
        ("no exp, ttl over", short, None, short * 3, false),
    ];
    for (case, ttl, exp, wait, served) in cases {
        let cache = TokenCache::new(100, ttl, Duration::from_secs(SKEW));
        let digest = TokenDigest::of(case);
        cache.insert(digest, cached_principal(exp));
        std::thread::sleep(wait);
        assert_eq!(cache.get(&digest).is_some(), served, "{case}");
        // A refused entry stays refused (the exp check also removes it).
        assert_eq!(cache.get(&digest).is_some(), served, "{case}, read again");
    }
}

/// Issue 7: principals share repeated values instead of copying them.
#[test]
fn equal_values_share_one_allocation_and_the_table_stays_bounded() {
    let shared = SharedValues::default();
    let first = shared.sharer().string("open-metadata.org");
    let second = shared.sharer().string("open-metadata.org");
    assert!(Arc::ptr_eq(&first, &second));
    let roles = shared.sharer().roles(vec!["DataSteward".into()]);
    let again = shared.sharer().roles(vec!["DataSteward".into()]);
    assert!(Arc::ptr_eq(&roles, &again));
    assert_eq!(shared.len(), 2);

    // Too long to share: equal, but its own copy, and not kept.
    let long = "x".repeat(MAX_SHARED_BYTES + 1);
    let long_copy = shared.sharer().string(&long);
    assert_eq!(&*long_copy, long.as_str());
    assert!(!Arc::ptr_eq(&long_copy, &shared.sharer().string(&long)));
    assert_eq!(shared.len(), 2);

    // Full: the table starts over, values handed out before stay intact.
    for value in 0..MAX_SHARED_VALUES * 2 {
        let text = value.to_string();
        assert_eq!(&*shared.sharer().string(&text), text.as_str());
        assert!(shared.len() <= MAX_SHARED_VALUES);
    }
    assert_eq!(&*first, "open-metadata.org");
    assert_eq!(&*roles, ["DataSteward".to_string()].as_slice());
}

/// The cache hashes a digest by its first eight bytes only; two digests that share them are
/// still two entries, each answered with its own principal (equality is all 32 bytes).
#[test]
fn digests_sharing_their_hash_bytes_stay_distinct_entries() {
    let cache = TokenCache::new(100, Duration::from_secs(60), Duration::from_secs(60));
    let first = TokenDigest([7u8; 32]);
    let mut second_bytes = [7u8; 32];
    second_bytes[31] = 8;
    let second = TokenDigest(second_bytes);
    let mut bob = (*cached_principal(None)).clone();
    bob.name = "bob".into();
    cache.insert(first, cached_principal(None));
    assert!(cache.get(&second).is_none(), "a different digest is a miss");
    cache.insert(second, Arc::new(bob));
    assert_eq!(
        cache.get(&first).map(|p| p.name.clone()).as_deref(),
        Some("alice")
    );
    assert_eq!(
        cache.get(&second).map(|p| p.name.clone()).as_deref(),
        Some("bob")
    );
    cache.invalidate(&first);
    assert!(cache.get(&first).is_none());
    assert_eq!(
        cache.get(&second).map(|p| p.name.clone()).as_deref(),
        Some("bob")
    );
}
