//! The fuzz targets, each an oracle as well as a crash detector: beyond "does not panic",
//! every target asserts what the gateway promises about its output.
//!
//! Compiled twice: into the libFuzzer binaries under `fuzz/` (run by `.ci/fuzz.sh`), and into the
//! integration tests (`tests/it/fuzz_replay.rs`), which replay every committed seed and crash
//! regression on each `cargo test`, so a fixed crash stays fixed without a fuzzer installed.

use om_gateway::config::{load, ConfigText, LoadInput};
use om_gateway::jwks::parse::{
    parse_key_document, parse_key_file, KeyFamily, MAX_KEYS, MIN_RSA_BITS,
};
use om_gateway::jwks::store::KeyBinding;
use om_gateway::jwks::VerifyingKey;
use om_gateway::policy::normalize_path;
use om_gateway::proxy::original_url::path_of_original_url;
use om_gateway::verify::{bearer_token, check_claims, decode_unverified, ClaimSettings};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Token parsing: the `Authorization` header as bytes, then the token text itself, then (when
/// it parses) its claims through the same claim checks a verified token gets.
pub fn token(data: &[u8]) {
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        if let Ok(token) = bearer_token(&headers) {
            assert!(!token.is_empty(), "bearer_token returned an empty token");
            assert!(
                !token.contains(' '),
                "bearer_token returned a token with a space"
            );
            token_text(token);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        token_text(text);
    }
}

fn token_text(text: &str) {
    let Ok(token) = decode_unverified(text) else {
        return;
    };
    let algorithm = format!("{:?}", token.algorithm);
    assert!(
        algorithm.starts_with("RS") || algorithm.starts_with("ES") || algorithm.starts_with("PS"),
        "decode_unverified accepted algorithm {algorithm}"
    );
    assert!(
        text.starts_with(token.signing_input),
        "signing input is not a prefix"
    );
    assert!(
        text.ends_with(token.signature),
        "signature is not the suffix"
    );
    let (key, settings) = claim_fixture();
    if let Ok(principal) = check_claims(&token.claims, key, settings) {
        assert!(
            !principal.name.is_empty(),
            "accepted a token with an empty principal"
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some(exp) = principal.expires_at {
            // The default clockSkew is 30 s; anything older than that must have been refused.
            assert!(
                exp.saturating_add(30) >= now,
                "accepted a token that expired at {exp}"
            );
        }
    }
}

/// Default settings and a fixture key: what `check_claims` sees after a signature verified.
pub fn claim_fixture() -> (&'static Arc<VerifyingKey>, &'static ClaimSettings) {
    static FIXTURE: OnceLock<(Arc<VerifyingKey>, ClaimSettings)> = OnceLock::new();
    let (key, settings) = FIXTURE.get_or_init(|| {
        let environment: HashMap<String, String> = HashMap::new();
        let config = load(LoadInput {
            gateway_file: None,
            openmetadata_file: None,
            environment: &environment,
        })
        .expect("the default configuration loads");
        let pem = include_bytes!("../../tests/fixtures/keys/rsa-a.pub.pem");
        let parsed = om_gateway::jwks::parse::parse_pem(pem, Some("fuzz".into()))
            .expect("fixture key parses");
        let key = Arc::new(VerifyingKey {
            key: parsed,
            binding: Arc::new(KeyBinding::default()),
            fetched_at: SystemTime::now(),
        });
        (key, ClaimSettings::new(config.verify_settings().claims))
    });
    (key, settings)
}

/// Key documents: a key endpoint's body, and a `publicKeyFiles` entry with and without a kid.
pub fn jwks(data: &[u8]) {
    for parsed in [
        parse_key_document(data),
        parse_key_file(data, None),
        parse_key_file(data, Some("fuzz-kid".into())),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            parsed.keys.len() <= MAX_KEYS,
            "more than MAX_KEYS keys accepted"
        );
        for key in &parsed.keys {
            if key.family == KeyFamily::Rsa {
                assert!(
                    key.bits >= MIN_RSA_BITS,
                    "accepted a {}-bit RSA key",
                    key.bits
                );
            }
        }
    }
    // A JSON value that is not an object (the OpenMetadata form is one) must never be a key set.
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if !value.is_object() {
            assert!(
                parse_key_document(data).is_err(),
                "a non-object parsed as keys"
            );
        }
    }
}

/// Configuration: arbitrary text as the gateway file, then as an openmetadata.yaml.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let environment: HashMap<String, String> = HashMap::new();
    let as_file = |name: &str| {
        Some(ConfigText {
            name: name.into(),
            text: text.into(),
        })
    };
    let results = [
        load(LoadInput {
            gateway_file: as_file("gateway.yaml"),
            openmetadata_file: None,
            environment: &environment,
        }),
        load(LoadInput {
            gateway_file: None,
            openmetadata_file: as_file("openmetadata.yaml"),
            environment: &environment,
        }),
    ];
    for result in results {
        if let Err(error) = result {
            assert!(
                !error.problems.is_empty(),
                "a config error with no problem in it"
            );
            let _ = error.to_string();
        }
    }
}

/// Path normalisation: the output is canonical (no `//`, `.` or `..` segment), absolute, and a
/// fixed point; anything refused is refused with a typed error, never a panic.
pub fn path(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normal) = normalize_path(raw) else {
        return;
    };
    assert_path_is_canonical(&normal);
    let again = normalize_path(&normal).expect("a normal form normalises again");
    assert_eq!(again, normal, "normalisation is not idempotent for {raw:?}");
}

/// What every normalised path must look like.
pub fn assert_path_is_canonical(normal: &str) {
    assert!(normal.starts_with('/'), "{normal:?} is not absolute");
    assert!(!normal.contains("//"), "{normal:?} contains //");
    for segment in normal.split('/') {
        assert!(
            segment != "." && segment != "..",
            "{normal:?} keeps a dot segment"
        );
    }
    assert!(
        !normal.contains('\0') && !normal.contains('\\'),
        "{normal:?}"
    );
}

/// `X-Original-URL` (forward-auth) against the `url` crate, a WHATWG URL parser (what browsers
/// and most proxies implement): wherever the gateway accepts a URL, that parser reads it as an
/// http(s) URL with a host and no userinfo, and puts the authority's end where the gateway does
/// (the same path and query, compared through its own reading of the path alone, so its
/// rewriting of dot segments and escapes applies to both sides alike).
pub fn original_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(path_and_query) = path_of_original_url(text) else {
        return;
    };
    assert!(
        path_and_query.starts_with('/'),
        "{text:?}: {path_and_query:?}"
    );
    assert!(
        text.contains(path_and_query),
        "{text:?}: {path_and_query:?}"
    );
    let parsed = match url::Url::parse(text) {
        Ok(parsed) => parsed,
        // Punycode the IDNA step refuses (`xn--` labels): a host both sides still end at the
        // same place (no `/`, `?`, `#`, `@` or `:` in it), which the gateway never judges by.
        Err(url::ParseError::IdnaError) => return,
        Err(error) => panic!("accepted {text:?}, which a WHATWG parser refuses: {error}"),
    };
    assert!(
        matches!(parsed.scheme(), "http" | "https"),
        "{text:?}: scheme {}",
        parsed.scheme()
    );
    assert!(parsed.host().is_some(), "{text:?}: no host");
    assert_eq!(parsed.username(), "", "{text:?}: userinfo");
    assert_eq!(parsed.password(), None, "{text:?}: userinfo");
    let alone = url::Url::parse(&format!("http://h{path_and_query}"))
        .unwrap_or_else(|error| panic!("{path_and_query:?} alone: {error}"));
    assert_eq!(parsed.path(), alone.path(), "{text:?}: another path");
    assert_eq!(parsed.query(), alone.query(), "{text:?}: another query");
    let rest = text.split_once("://").map_or("", |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some(url::Host::Domain(domain)) = parsed.host() {
        let ours = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        assert_eq!(domain, ours.to_ascii_lowercase(), "{text:?}: another host");
    }
}
