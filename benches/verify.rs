//! Token verification: a cache hit (SHA-256 + lookup) against a full RS256 check (the miss path),
//! for 2048- and 4096-bit keys, and the cost of inserting into the cache.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use om_gateway::verify::{
    check_claims, decode_unverified, ClaimSettings, Principal, TokenCache, TokenDigest,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn verify(c: &mut Criterion) {
    let config = common::key_config();
    let authenticator = common::authenticator(&config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("verify");
    for (bits, file, kid) in [
        (2048, "rsa-a.pem", "rsa-2048"),
        (4096, "rsa-4096.pem", "rsa-4096"),
    ] {
        let token = common::bot_token(file, kid, 1);
        // Prime the cache, and prove the token is accepted at all.
        runtime
            .block_on(authenticator.authenticate_token(&token))
            .expect("bench token verifies");
        group.bench_with_input(BenchmarkId::new("cache_hit", bits), &token, |b, token| {
            b.iter(|| {
                runtime
                    .block_on(authenticator.authenticate_token(black_box(token)))
                    .map(|a| a.cache_hit)
            })
        });
        group.bench_with_input(
            BenchmarkId::new("miss_full_check", bits),
            &token,
            |b, token| b.iter(|| runtime.block_on(authenticator.verify(black_box(token)))),
        );
    }
    group.finish();

    // A miss also pays one insert (and moka's eviction bookkeeping once full).
    let token = common::bot_token("rsa-a.pem", "rsa-2048", 2);
    let principal: Arc<Principal> = Arc::new(
        runtime
            .block_on(authenticator.verify(&token))
            .expect("verifies"),
    );
    let cache = TokenCache::new(100_000, Duration::from_secs(300), Duration::from_secs(30));
    let mut counter = 0u64;
    c.bench_function("verify/cache_insert", |b| {
        b.iter(|| {
            counter += 1;
            cache.insert(
                TokenDigest::of(&counter.to_string()),
                black_box(principal.clone()),
            )
        })
    });
    // The miss path in parts, to see what besides the RSA verification costs.
    let token = common::bot_token("rsa-a.pem", "rsa-2048", 3);
    let key = authenticator
        .key_store()
        .keys_for_kid("rsa-2048")
        .into_iter()
        .next()
        .expect("fixture key");
    let settings = ClaimSettings::new(config.verify_settings().claims);
    let mut group = c.benchmark_group("verify/miss_parts");
    group.bench_function("decode_unverified", |b| {
        b.iter(|| decode_unverified(black_box(&token)).map(|t| t.algorithm))
    });
    let unverified = decode_unverified(&token).expect("decodes");
    group.bench_function("check_claims", |b| {
        b.iter(|| check_claims(black_box(&unverified.claims), &key, &settings))
    });
    let parsed = key.key.rs256.as_ref().expect("pre-parsed RS256 key");
    group.bench_function("rs256_signature_2048", |b| {
        b.iter(|| {
            let signature = URL_SAFE_NO_PAD
                .decode(black_box(unverified.signature))
                .expect("base64url");
            parsed.verify_sig(unverified.signing_input.as_bytes(), &signature)
        })
    });
    group.finish();

    c.bench_function("verify/sha256_digest_711_bytes", |b| {
        let token = "x".repeat(711);
        b.iter(|| TokenDigest::of(black_box(&token)))
    });
}

criterion_group! { name = benches; config = common::criterion(); targets = verify }
criterion_main!(benches);
