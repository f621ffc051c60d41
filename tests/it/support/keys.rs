//! Fixture keys (tests/fixtures/keys, generated with openssl) and the documents and tokens made
//! from them.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use om_gateway::cli::{mint_token, TokenRequest};
use serde_json::{json, Value};
use std::path::PathBuf;

pub fn fixture(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A key pair from the fixtures.
#[derive(Clone)]
pub struct TestKey {
    pub name: &'static str,
    pub kid: String,
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
}

impl TestKey {
    pub fn load(name: &'static str, kid: &str) -> TestKey {
        TestKey {
            name,
            kid: kid.into(),
            private_pem: std::fs::read(fixture(&format!("keys/{name}.pem")))
                .expect("fixture private key"),
            public_pem: std::fs::read(fixture(&format!("keys/{name}.pub.pem")))
                .expect("fixture public key"),
        }
    }

    /// RSA 2048 key "a".
    pub fn rsa_a() -> TestKey {
        TestKey::load("rsa-a", "key-a")
    }

    /// RSA 2048 key "b".
    pub fn rsa_b() -> TestKey {
        TestKey::load("rsa-b", "key-b")
    }

    pub fn with_kid(mut self, kid: &str) -> TestKey {
        self.kid = kid.into();
        self
    }

    pub fn public_pem_path(&self) -> PathBuf {
        fixture(&format!("keys/{}.pub.pem", self.name))
    }

    pub fn modulus(&self) -> Vec<u8> {
        om_gateway::jwks::parse::parse_pem(&self.public_pem, None)
            .expect("fixture parses")
            .modulus
            .expect("RSA key")
    }

    /// An RFC 7517 JWK with `alg: RS256`.
    pub fn jwk(&self) -> Value {
        json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
               "n": URL_SAFE_NO_PAD.encode(self.modulus()), "e": "AQAB"})
    }

    /// The JWK as OpenMetadata writes it: padded base64url, modulus with a leading zero byte.
    pub fn openmetadata_jwk(&self) -> Value {
        let mut padded = vec![0u8];
        padded.extend_from_slice(&self.modulus());
        json!({"kty": "RSA", "kid": self.kid, "n": URL_SAFE.encode(&padded), "e": "AQAB", "alg": "RS256", "use": "sig"})
    }

    pub fn tokens(&self) -> Tokens {
        Tokens { key: self.clone() }
    }
}

/// A JWK set from JWKs.
pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// Token minting with OpenMetadata's claim shapes.
pub struct Tokens {
    pub key: TestKey,
}

impl Tokens {
    pub fn request(&self) -> TokenRequest {
        TokenRequest {
            private_key_pem: self.key.private_pem.clone(),
            algorithm: jsonwebtoken::Algorithm::RS256,
            kid: Some(self.key.kid.clone()),
            subject: "alice".into(),
            email: Some("alice@open-metadata.org".into()),
            is_bot: false,
            token_type: Some("PERSONAL_ACCESS".into()),
            roles: vec!["DataConsumer".into()],
            expires_in: Some(3600),
            issuer: "open-metadata.org".into(),
            extra_claims: Vec::new(),
        }
    }

    pub fn mint(&self, request: &TokenRequest) -> String {
        mint_token(request).expect("token signs")
    }

    /// A personal access token for alice, valid an hour.
    pub fn personal(&self) -> String {
        self.mint(&self.request())
    }

    /// Shaped exactly like OpenMetadata's ingestion-bot token: `"exp": null`, isBot, tokenType BOT.
    pub fn ingestion_bot(&self) -> String {
        self.mint(&TokenRequest {
            subject: "ingestion-bot".into(),
            email: Some("ingestion-bot@open-metadata.org".into()),
            is_bot: true,
            token_type: Some("BOT".into()),
            roles: vec!["IngestionBotRole".into()],
            expires_in: None,
            ..self.request()
        })
    }

    pub fn expired(&self) -> String {
        self.mint(&TokenRequest {
            expires_in: Some(-600),
            ..self.request()
        })
    }
}

/// Build a compact JWS from arbitrary header and claims JSON, signed by `key` (or with a given
/// signature), for hostile-token tests.
pub fn raw_token(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}
