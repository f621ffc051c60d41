//! Compiled only under `#[cfg(test)]` (declared in this directory's mod.rs): tests may unwrap.
//! Key documents in every accepted form and every broken one, and the refresh schedule.

use super::parse::{
    parse_key_document, parse_key_file, KeyFamily, ParseError, ParsedDocument, MAX_KEYS,
};
use super::store::{backoff_after_failure, interval_after_success};
use super::JwksConfig;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use std::time::Duration;

const RSA_A_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-a.pub.pem");
const RSA_A_CERT: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-a.cert.pem");
const RSA_1024_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/rsa-1024.pub.pem");
const EC_P256_PUBLIC: &[u8] = include_bytes!("../../tests/fixtures/keys/ec-p256.pub.pem");
const EC_P256_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/keys/ec-p256.pem");
const OPENMETADATA_DEFAULT_JWKS: &[u8] =
    include_bytes!("../../tests/fixtures/openmetadata-default-jwks.json");

/// What parsing one document should give.
#[derive(Debug)]
enum Expect {
    /// This many usable keys and this many skipped ones.
    Keys { usable: usize, skipped: usize },
    /// The whole document is refused.
    Refused(ParseError),
    /// The document is refused as not JSON.
    NotJson,
}

fn check(name: &str, body: &[u8], expected: Expect) -> ParsedDocument {
    let outcome = parse_key_document(body);
    match (&expected, outcome) {
        (Expect::Keys { usable, skipped }, Ok(document)) => {
            assert_eq!(
                (document.keys.len(), document.skipped.len()),
                (*usable, *skipped),
                "{name}: usable and skipped keys (skipped: {:?})",
                document.skipped
            );
            document
        }
        (Expect::Refused(error), Err(actual)) => {
            assert_eq!(&actual, error, "{name}");
            ParsedDocument::default()
        }
        (Expect::NotJson, Err(ParseError::NotJson(_))) => ParsedDocument::default(),
        (expected, actual) => panic!("{name}: expected {expected:?}, got {actual:?}"),
    }
}

fn rsa_a_modulus() -> Vec<u8> {
    super::parse::parse_pem(RSA_A_PUBLIC, None)
        .unwrap()
        .modulus
        .unwrap()
}

fn rsa_jwk(n: &str) -> Value {
    json!({"kty": "RSA", "kid": "a", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"})
}

fn document(keys: Vec<Value>) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

/// The uncompressed P-256 point of the fixture key: the last 65 bytes of its SPKI DER.
fn ec_coordinates() -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(EC_P256_PUBLIC).unwrap();
    let base64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(base64).unwrap();
    let point = &der[der.len() - 65..];
    assert_eq!(point[0], 4, "uncompressed point");
    (point[1..33].to_vec(), point[33..].to_vec())
}

fn ec_jwk(x: &[u8], y: &[u8]) -> Value {
    json!({"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
           "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
}

#[test]
fn rsa_modulus_encodings_all_yield_the_same_key() {
    let modulus = rsa_a_modulus();
    let mut with_zero = vec![0u8];
    with_zero.extend_from_slice(&modulus);
    let forms = [
        ("base64url unpadded", URL_SAFE_NO_PAD.encode(&modulus)),
        ("base64url padded", URL_SAFE.encode(&modulus)),
        (
            "padded with a leading zero byte (OpenMetadata)",
            URL_SAFE.encode(&with_zero),
        ),
        (
            "unpadded with a leading zero byte",
            URL_SAFE_NO_PAD.encode(&with_zero),
        ),
        ("standard alphabet", STANDARD.encode(&modulus)),
        (
            "surrounding whitespace",
            format!(" {} ", URL_SAFE_NO_PAD.encode(&modulus)),
        ),
    ];
    let mut thumbprints = Vec::new();
    for (name, n) in forms {
        let parsed = check(
            name,
            &document(vec![rsa_jwk(&n)]),
            Expect::Keys {
                usable: 1,
                skipped: 0,
            },
        );
        let key = &parsed.keys[0];
        assert_eq!(key.bits, 2048, "{name}");
        assert_eq!(key.modulus.as_deref(), Some(&modulus[..]), "{name}");
        thumbprints.push(key.thumbprint.clone());
    }
    thumbprints.dedup();
    assert_eq!(thumbprints.len(), 1, "one key, one thumbprint");
}

#[test]
fn broken_and_unsupported_keys_are_skipped_not_fatal() {
    let good = rsa_jwk(&URL_SAFE_NO_PAD.encode(rsa_a_modulus()));
    let short = super::parse::parse_pem(RSA_1024_PUBLIC, None);
    assert!(
        matches!(&short, Err(ParseError::BadPem(reason)) if reason.contains("1024 bits")),
        "{short:?}"
    );
    let (x, y) = ec_coordinates();
    let mut short_x = x.clone();
    short_x.remove(0);
    let cases: Vec<(&str, Value)> = vec![
        ("broken base64 in n", rsa_jwk("!!not*base64!!")),
        ("n missing", json!({"kty": "RSA", "kid": "a", "e": "AQAB"})),
        (
            "unknown kty",
            json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0"}),
        ),
        ("no kty", json!({"kid": "x"})),
        (
            "HMAC alg",
            json!({"kty": "RSA", "kid": "a", "alg": "HS256", "n": URL_SAFE_NO_PAD.encode(rsa_a_modulus()), "e": "AQAB"}),
        ),
        (
            "alg none",
            json!({"kty": "RSA", "kid": "a", "alg": "none", "n": URL_SAFE_NO_PAD.encode(rsa_a_modulus()), "e": "AQAB"}),
        ),
        (
            "RSA key claiming ES256",
            json!({"kty": "RSA", "kid": "a", "alg": "ES256", "n": URL_SAFE_NO_PAD.encode(rsa_a_modulus()), "e": "AQAB"}),
        ),
        (
            "RSA modulus under 2048 bits",
            json!({"kty": "RSA", "kid": "s", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128]), "e": "AQAB"}),
        ),
        ("EC x one byte short", ec_jwk(&short_x, &y)),
        (
            "EC y one byte long",
            ec_jwk(&x, &[y.clone(), vec![1]].concat()),
        ),
        (
            "EC unknown curve",
            json!({"kty": "EC", "crv": "P-521", "kid": "e", "x": "AA", "y": "AA"}),
        ),
        (
            "EC alg for another curve",
            json!({"kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES384", "x": URL_SAFE_NO_PAD.encode(&x), "y": URL_SAFE_NO_PAD.encode(&y)}),
        ),
        ("EC point not on the curve", ec_jwk(&[7u8; 32], &[9u8; 32])),
    ];
    for (name, broken) in cases {
        let parsed = check(
            name,
            &document(vec![broken, good.clone()]),
            Expect::Keys {
                usable: 1,
                skipped: 1,
            },
        );
        assert!(
            parsed.skipped[0].starts_with("keys[0]: "),
            "{name}: {:?}",
            parsed.skipped
        );
    }
}

#[test]
fn keys_not_for_verification_are_ignored_silently() {
    let n = URL_SAFE_NO_PAD.encode(rsa_a_modulus());
    let cases = [
        (
            "use enc",
            json!({"kty": "RSA", "kid": "a", "use": "enc", "n": n, "e": "AQAB"}),
        ),
        (
            "key_ops without verify",
            json!({"kty": "RSA", "kid": "a", "key_ops": ["encrypt"], "n": n, "e": "AQAB"}),
        ),
    ];
    for (name, jwk) in cases {
        check(
            name,
            &document(vec![jwk]),
            Expect::Keys {
                usable: 0,
                skipped: 0,
            },
        );
    }
    let verify_ops = json!({"kty": "RSA", "kid": "a", "key_ops": ["verify"], "n": n, "e": "AQAB"});
    check(
        "key_ops with verify",
        &document(vec![verify_ops]),
        Expect::Keys {
            usable: 1,
            skipped: 0,
        },
    );
}

#[test]
fn documents_are_refused_whole_when_their_shape_is_wrong() {
    let good = rsa_jwk(&URL_SAFE_NO_PAD.encode(rsa_a_modulus()));
    check(
        "exactly MAX_KEYS keys",
        &document(vec![good.clone(); MAX_KEYS]),
        Expect::Keys {
            usable: MAX_KEYS,
            skipped: 0,
        },
    );
    check(
        "one key over MAX_KEYS",
        &document(vec![good.clone(); MAX_KEYS + 1]),
        Expect::Refused(ParseError::TooManyKeys(MAX_KEYS + 1)),
    );
    let many_certificates: serde_json::Map<String, Value> = (0..=MAX_KEYS)
        .map(|i| (format!("k{i}"), json!("-----BEGIN CERTIFICATE-----")))
        .collect();
    check(
        "Google form over MAX_KEYS",
        Value::Object(many_certificates).to_string().as_bytes(),
        Expect::Refused(ParseError::TooManyKeys(MAX_KEYS + 1)),
    );
    check(
        "an HTML error page",
        b"<html><body>502 Bad Gateway</body></html>",
        Expect::NotJson,
    );
    check(
        "truncated JSON",
        br#"{"keys": [{"kty": "RSA""#,
        Expect::NotJson,
    );
    check("empty body", b"", Expect::NotJson);
    check(
        "a JSON array",
        b"[]",
        Expect::Refused(ParseError::UnknownShape),
    );
    check(
        "keys not an array",
        br#"{"keys": "x"}"#,
        Expect::Refused(ParseError::UnknownShape),
    );
    check(
        "empty object",
        b"{}",
        Expect::Refused(ParseError::UnknownShape),
    );
    check(
        "an object of non-PEM strings",
        br#"{"status": "ok"}"#,
        Expect::Refused(ParseError::UnknownShape),
    );
    check(
        "an empty key set is a valid document",
        br#"{"keys": []}"#,
        Expect::Keys {
            usable: 0,
            skipped: 0,
        },
    );
}

#[test]
fn openmetadata_default_jwks_parses_to_its_one_rsa_key() {
    let parsed = check(
        "OpenMetadata's default JWKS",
        OPENMETADATA_DEFAULT_JWKS,
        Expect::Keys {
            usable: 1,
            skipped: 0,
        },
    );
    let key = &parsed.keys[0];
    assert_eq!(
        key.kid.as_deref(),
        Some("Gb389a-9f76-gdjs-a92j-0242bk94356")
    );
    assert_eq!(key.family, KeyFamily::Rsa);
    assert_eq!(key.bits, 2048);
    assert_eq!(key.algorithm, Some(Algorithm::RS256));
    assert!(crate::cli::is_openmetadata_default_key(key));
    let other = super::parse::parse_pem(RSA_A_PUBLIC, None).unwrap();
    assert!(!crate::cli::is_openmetadata_default_key(&other));
}

#[test]
fn google_v1_certificate_form_and_ec_jwk() {
    let certificate = std::str::from_utf8(RSA_A_CERT).unwrap();
    let parsed = check(
        "Google v1 kid → PEM certificate",
        json!({ "google-kid-1": certificate })
            .to_string()
            .as_bytes(),
        Expect::Keys {
            usable: 1,
            skipped: 0,
        },
    );
    let key = &parsed.keys[0];
    assert_eq!(key.kid.as_deref(), Some("google-kid-1"));
    assert_eq!(key.modulus.as_deref(), Some(&rsa_a_modulus()[..]));
    assert_eq!(key.algorithm, None, "certificates state no alg");

    check(
        "Google form with one broken certificate",
        json!({ "good": certificate, "bad": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" })
            .to_string()
            .as_bytes(),
        Expect::Keys {
            usable: 1,
            skipped: 1,
        },
    );

    let (x, y) = ec_coordinates();
    let parsed = check(
        "EC P-256 JWK",
        &document(vec![ec_jwk(&x, &y)]),
        Expect::Keys {
            usable: 1,
            skipped: 0,
        },
    );
    assert_eq!(parsed.keys[0].family, KeyFamily::EcP256);
    assert_eq!(parsed.keys[0].algorithm, Some(Algorithm::ES256));
    let from_pem = super::parse::parse_pem(EC_P256_PUBLIC, None).unwrap();
    assert_eq!(from_pem.thumbprint, parsed.keys[0].thumbprint);
}

#[test]
fn key_files_pem_with_and_without_kid_and_jwks() {
    let without = parse_key_file(RSA_A_PUBLIC, None).unwrap();
    assert_eq!(without.keys.len(), 1);
    assert_eq!(without.keys[0].kid, None);
    let with = parse_key_file(RSA_A_PUBLIC, Some("file-kid".into())).unwrap();
    assert_eq!(with.keys[0].kid.as_deref(), Some("file-kid"));
    let certificate = parse_key_file(RSA_A_CERT, Some("c".into())).unwrap();
    assert_eq!(certificate.keys[0].thumbprint, with.keys[0].thumbprint);

    let kidless_jwk =
        json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(rsa_a_modulus()), "e": "AQAB"});
    let named_jwk = rsa_jwk(&URL_SAFE_NO_PAD.encode(rsa_a_modulus()));
    let jwks = document(vec![kidless_jwk, named_jwk]);
    let file = parse_key_file(&jwks, Some("fallback".into())).unwrap();
    let kids: Vec<_> = file.keys.iter().map(|k| k.kid.as_deref()).collect();
    assert_eq!(
        kids,
        [Some("fallback"), Some("a")],
        "the file's kid fills only missing kids"
    );

    let private = parse_key_file(EC_P256_PRIVATE, None);
    assert!(
        matches!(&private, Err(ParseError::BadPem(reason)) if reason.contains("private keys are never read")),
        "{private:?}"
    );
    assert_eq!(
        parse_key_file(b"hello", None).err(),
        Some(ParseError::NoPem)
    );
}

fn jwks_config(refresh: u64, floor: u64) -> JwksConfig {
    JwksConfig {
        refresh_interval: Duration::from_millis(refresh),
        min_refresh_interval: Duration::from_millis(floor),
        fetch_timeout: Duration::from_secs(5),
        max_stale: Duration::from_secs(86_400),
    }
}

#[test]
fn refresh_interval_is_the_shorter_of_refresh_interval_and_max_age_above_the_floor() {
    // (case, refreshInterval ms, minRefreshInterval ms, max-age, expected range ms)
    let cases = [
        (
            "no max-age: refreshInterval, jittered",
            600_000,
            30_000,
            None,
            (540_000, 600_000),
        ),
        (
            "shorter max-age wins",
            600_000,
            30_000,
            Some(60),
            (54_000, 60_000),
        ),
        (
            "longer max-age is capped",
            600_000,
            30_000,
            Some(86_400),
            (540_000, 600_000),
        ),
        (
            "max-age under the floor",
            600_000,
            30_000,
            Some(5),
            (30_000, 30_000),
        ),
        (
            "no-cache (max-age 0)",
            600_000,
            30_000,
            Some(0),
            (30_000, 30_000),
        ),
    ];
    for (name, refresh, floor, max_age, (low, high)) in cases {
        let config = jwks_config(refresh, floor);
        for _ in 0..20 {
            let interval = interval_after_success(max_age.map(Duration::from_secs), &config);
            assert!(
                interval >= Duration::from_millis(low) && interval <= Duration::from_millis(high),
                "{name}: {interval:?} not in {low}..={high} ms"
            );
        }
    }
}

#[test]
fn failure_backoff_doubles_from_the_floor_up_to_the_refresh_interval() {
    let config = jwks_config(600_000, 30_000);
    let cases = [
        (1, 30_000),
        (2, 60_000),
        (3, 120_000),
        (5, 480_000),
        (6, 600_000),
        (40, 600_000),
        (u32::MAX, 600_000),
    ];
    for (failures, expected) in cases {
        assert_eq!(
            backoff_after_failure(failures, &config),
            Duration::from_millis(expected),
            "after {failures} failures"
        );
    }
    let tiny = jwks_config(1_000, 0);
    assert_eq!(
        backoff_after_failure(1, &tiny),
        Duration::from_millis(100),
        "a zero floor still waits 100 ms"
    );
}
