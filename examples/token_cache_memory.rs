//! Bytes per verified-token cache entry, measured: build 100,000 distinct principals the way a
//! miss does (`check_claims` on bench-shaped claims, signed by a fixture key), insert them into a
//! `TokenCache` sized like the bench config (`maxEntries: 100000`, `ttl: 5m`), and read `VmRSS`
//! from `/proc/self/status` before and after each step.
//!
//! ```sh
//! cargo run --release --example token_cache_memory            # 100,000 entries
//! cargo run --release --example token_cache_memory -- 50000   # another count
//! ```
//!
//! The figures are the same in a debug build (struct layouts and allocations do not change with
//! the optimisation level); only the run takes longer. Linux only (`/proc`).

use om_gateway::config::{Config, ConfigText, LoadInput};
use om_gateway::jwks::KeyStore;
use om_gateway::metrics::Metrics;
use om_gateway::verify::{check_claims, ClaimSettings, Principal, TokenCache, TokenDigest};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => 100_000,
    };
    let config = bench_config()?;
    let metrics = Arc::new(Metrics::new()?);
    let key_store = KeyStore::new(
        &config.auth.key_sources,
        &config.auth.key_files,
        config.jwks.clone(),
        metrics,
    )?;
    let key = key_store
        .keys_for_kid("bench-key")
        .into_iter()
        .next()
        .ok_or("the fixture key is not loaded")?;
    let settings = ClaimSettings::new(config.verify_settings().claims);
    let cache = TokenCache::new(
        config.token_cache.max_entries,
        config.token_cache.ttl,
        config.auth.clock_skew,
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    // The slots are allocated (and their pages touched) before the first reading, so neither
    // figure below includes them.
    let mut principals: Vec<Option<Arc<Principal>>> = vec![None; count];
    let start = rss_bytes()?;
    for (user, slot) in principals.iter_mut().enumerate() {
        let claims = serde_json::json!({
            "iss": "open-metadata.org",
            "sub": format!("user{user:05}"),
            "email": format!("user{user:05}@open-metadata.org"),
            "roles": ["DataSteward"],
            "isBot": false,
            "tokenType": "OM_USER",
            "iat": now,
            "exp": now + 3600,
            "jti": format!("bench-{user}"),
        });
        let serde_json::Value::Object(claims) = claims else {
            return Err("claims are an object".into());
        };
        *slot = Some(Arc::new(check_claims(&claims, &key, &settings)?));
    }
    let built = rss_bytes()?;
    for (user, slot) in principals.iter_mut().enumerate() {
        if let Some(principal) = slot.take() {
            cache.insert(TokenDigest::of(&format!("token-{user}")), principal);
        }
    }
    let entries = cache.entry_count();
    let cached = rss_bytes()?;
    let per_entry = |bytes: u64| bytes as f64 / count as f64;
    println!("entries cached        {entries} of {count}");
    println!(
        "principal (Arc+heap)  {:7.0} B/entry",
        per_entry(built.saturating_sub(start))
    );
    println!(
        "cache bookkeeping     {:7.0} B/entry",
        per_entry(cached.saturating_sub(built))
    );
    println!(
        "total                 {:7.0} B/entry",
        per_entry(cached.saturating_sub(start))
    );
    println!(
        "RSS                   {:.1} MiB before, {:.1} MiB with the cache full",
        start as f64 / 1048576.0,
        cached as f64 / 1048576.0
    );
    Ok(())
}

/// The bench config's verification settings, with the 2048-bit fixture key as `bench-key`.
fn bench_config() -> Result<Config, Box<dyn std::error::Error>> {
    let environment: HashMap<String, String> = HashMap::new();
    let yaml = format!(
        "upstream: {{ url: 'http://127.0.0.1:9' }}\n\
         authenticationConfiguration:\n\
         \x20 publicKeyFiles: [ {{ file: '{FIXTURES}/rsa-a.pub.pem', kid: bench-key }} ]\n\
         \x20 jwtPrincipalClaims: [ email, preferred_username, sub ]\n\
         authorizerConfiguration:\n\
         \x20 principalDomain: open-metadata.org\n\
         tokenCache: {{ maxEntries: 100000, ttl: 5m }}\n"
    );
    let config = om_gateway::config::load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "memory.yaml".into(),
            text: yaml,
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .map_err(|error| error.to_string())?;
    Ok(config)
}

/// `VmRSS` of this process, in bytes.
fn rss_bytes() -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kilobytes = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kilobytes * 1024)
}
