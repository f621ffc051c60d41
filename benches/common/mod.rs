//! Shared setup for the criterion benches: configuration from YAML text, tokens signed with the
//! test fixture keys (RSA-2048 `rsa-a`, RSA-4096 `rsa-4096`), an authenticator over those keys.

#![allow(dead_code)]

use om_gateway::config::{Config, ConfigText, LoadInput};
use om_gateway::jwks::KeyStore;
use om_gateway::metrics::Metrics;
use om_gateway::verify::Authenticator;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys");

/// Short runs: `cargo bench` over all three files stays around a minute and a half.
pub fn criterion() -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

pub fn config(yaml: &str) -> Config {
    let environment: HashMap<String, String> = HashMap::new();
    om_gateway::config::load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "bench.yaml".into(),
            text: yaml.into(),
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .unwrap_or_else(|error| panic!("bench config: {error}"))
}

/// A gateway trusting the two fixture keys by kid.
pub fn key_config() -> Config {
    config(&format!(
        "upstream: {{ url: 'http://127.0.0.1:9' }}\n\
         authenticationConfiguration:\n\
         \x20 publicKeyFiles:\n\
         \x20   - {{ file: '{FIXTURES}/rsa-a.pub.pem', kid: rsa-2048 }}\n\
         \x20   - {{ file: '{FIXTURES}/rsa-4096.pub.pem', kid: rsa-4096 }}\n"
    ))
}

pub fn authenticator(config: &Config) -> Authenticator {
    let metrics = Arc::new(Metrics::new().expect("metrics register"));
    let key_store = KeyStore::new(
        &config.auth.key_sources,
        &config.auth.key_files,
        config.jwks.clone(),
        metrics.clone(),
    )
    .unwrap_or_else(|error| panic!("key store: {error}"));
    Authenticator::new(config.verify_settings(), key_store, metrics)
}

/// An OpenMetadata bot token (the bench harness's shape) signed by a fixture key.
pub fn bot_token(private_key_file: &str, kid: &str, jti: u64) -> String {
    let pem = std::fs::read(format!("{FIXTURES}/{private_key_file}")).expect("fixture key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("RSA PEM");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = serde_json::json!({
        "iss": "open-metadata.org",
        "sub": "ingestion-bot",
        "roles": ["IngestionBotRole"],
        "email": "ingestion-bot@open-metadata.org",
        "isBot": true,
        "tokenType": "BOT",
        "iat": now,
        "exp": 4102444800u64,
        "jti": format!("bench-{jti}"),
    });
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}
