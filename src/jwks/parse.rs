//! Key documents → verification keys. Accepts RFC 7517 JWK sets, OpenMetadata's JWKS form (`n`
//! and `e` base64url *with* `=` padding, modulus with a leading zero byte), Google's v1 form
//! (kid → PEM certificate) and PEM files (public key, PKCS#1 key or certificate).
//!
//! A broken key is skipped with a reason; a broken document is an error. Nothing here panics on
//! hostile input: every index is checked and every size bounded.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Documents with more keys than this are rejected whole.
pub const MAX_KEYS: usize = 100;
/// RSA keys shorter than this never verify anything.
pub const MIN_RSA_BITS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
}

/// A key ready to verify, before it is tied to a source.
#[derive(Clone)]
pub struct ParsedKey {
    pub kid: Option<String>,
    /// The `alg` the document states; `None` means "only tokenValidationAlgorithm" for RSA.
    pub algorithm: Option<Algorithm>,
    pub family: KeyFamily,
    pub decoding_key: DecodingKey,
    /// RSA keys parsed once for RS256, the common case: verifying through `decoding_key`
    /// rebuilds the key (and its Montgomery constants) on every token.
    pub rs256: Option<aws_lc_rs::signature::ParsedPublicKey>,
    /// Big-endian RSA modulus without leading zeros, to recognise known keys.
    pub modulus: Option<Vec<u8>>,
    pub bits: usize,
    /// First 16 hex digits of SHA-256 over the key material: tells keys with one kid apart.
    pub thumbprint: String,
}

impl std::fmt::Debug for ParsedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("family", &self.family)
            .field("bits", &self.bits)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("neither a JWK set ({{\"keys\": [...]}}) nor a kid → PEM certificate map")]
    UnknownShape,
    #[error("{0} keys, more than the {MAX_KEYS} allowed")]
    TooManyKeys(usize),
    #[error("no PEM block found")]
    NoPem,
    #[error("unsupported PEM content: {0}")]
    BadPem(String),
}

/// Why one key was not taken (a document skips it and says why; a PEM file fails with it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyRejected(pub String);

impl From<String> for KeyRejected {
    fn from(reason: String) -> KeyRejected {
        KeyRejected(reason)
    }
}

impl From<&str> for KeyRejected {
    fn from(reason: &str) -> KeyRejected {
        KeyRejected(reason.to_string())
    }
}

/// The keys of one document, and why others were skipped.
#[derive(Debug, Default)]
pub struct ParsedDocument {
    pub keys: Vec<ParsedKey>,
    pub skipped: Vec<String>,
}

/// Parse a key endpoint's response body.
pub fn parse_key_document(body: &[u8]) -> Result<ParsedDocument, ParseError> {
    let document: Value =
        serde_json::from_slice(body).map_err(|error| ParseError::NotJson(error.to_string()))?;
    let Value::Object(object) = &document else {
        return Err(ParseError::UnknownShape);
    };
    let mut parsed = ParsedDocument::default();
    if let Some(keys) = object.get("keys") {
        let Value::Array(keys) = keys else {
            return Err(ParseError::UnknownShape);
        };
        if keys.len() > MAX_KEYS {
            return Err(ParseError::TooManyKeys(keys.len()));
        }
        for (position, jwk) in keys.iter().enumerate() {
            match parse_jwk(jwk) {
                Ok(Some(key)) => parsed.keys.push(key),
                Ok(None) => {}
                Err(reason) => parsed.skipped.push(format!("keys[{position}]: {reason}")),
            }
        }
        return Ok(parsed);
    }
    // Google's oauth2/v1/certs: {"<kid>": "-----BEGIN CERTIFICATE-----..."}.
    if object.is_empty()
        || !object
            .values()
            .all(|value| value.as_str().is_some_and(|s| s.contains("-----BEGIN")))
    {
        return Err(ParseError::UnknownShape);
    }
    if object.len() > MAX_KEYS {
        return Err(ParseError::TooManyKeys(object.len()));
    }
    for (kid, pem) in object {
        match parse_pem(
            pem.as_str().unwrap_or_default().as_bytes(),
            Some(kid.clone()),
        ) {
            Ok(key) => parsed.keys.push(key),
            Err(reason) => parsed.skipped.push(format!("{kid}: {reason}")),
        }
    }
    Ok(parsed)
}

/// One JWK. `Ok(None)` is a key deliberately ignored (`use: enc`, not for verification).
pub fn parse_jwk(jwk: &Value) -> Result<Option<ParsedKey>, KeyRejected> {
    let field = |name: &str| jwk.get(name).and_then(Value::as_str);
    if field("use").is_some_and(|usage| usage != "sig") {
        return Ok(None);
    }
    if let Some(Value::Array(operations)) = jwk.get("key_ops") {
        if !operations.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(None);
        }
    }
    let kid = field("kid").map(str::to_string);
    let algorithm = match field("alg") {
        None => None,
        Some(text) => {
            Some(parse_algorithm(text).ok_or_else(|| format!("alg `{text}` is not accepted"))?)
        }
    };
    match field("kty") {
        Some("RSA") => {
            let modulus = strip_leading_zeros(decode_base64_lenient(
                field("n").ok_or("RSA key without n")?,
            )?);
            let exponent = strip_leading_zeros(decode_base64_lenient(
                field("e").ok_or("RSA key without e")?,
            )?);
            if algorithm.is_some_and(|alg| {
                !matches!(alg, Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512)
            }) {
                return Err("RSA key with a non-RSA alg".into());
            }
            rsa_key(kid, algorithm, modulus, exponent).map(Some)
        }
        Some("EC") => {
            let family = match field("crv") {
                Some("P-256") => KeyFamily::EcP256,
                Some("P-384") => KeyFamily::EcP384,
                other => return Err(format!("EC curve {other:?} is not accepted").into()),
            };
            let x = field("x").ok_or("EC key without x")?;
            let y = field("y").ok_or("EC key without y")?;
            let expected = if family == KeyFamily::EcP256 {
                Algorithm::ES256
            } else {
                Algorithm::ES384
            };
            if algorithm.is_some_and(|alg| alg != expected) {
                return Err("EC key whose alg does not match its curve".into());
            }
            let width = if family == KeyFamily::EcP256 { 32 } else { 48 };
            let (x, y) = (decode_base64_lenient(x)?, decode_base64_lenient(y)?);
            if x.len() != width || y.len() != width {
                return Err("EC coordinates of the wrong length".into());
            }
            check_ec_point(family, &x, &y)?;
            let decoding_key = DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(&x),
                &URL_SAFE_NO_PAD.encode(&y),
            )
            .map_err(|error| format!("EC key rejected: {error}"))?;
            Ok(Some(ParsedKey {
                kid,
                algorithm: Some(expected),
                family,
                decoding_key,
                rs256: None,
                modulus: None,
                bits: width * 8,
                thumbprint: thumbprint(&[&x, &y]),
            }))
        }
        other => Err(format!("kty {other:?} is not accepted").into()),
    }
}

/// Refuse a point that is not on its curve now, with a reason, rather than at every verification.
fn check_ec_point(family: KeyFamily, x: &[u8], y: &[u8]) -> Result<(), KeyRejected> {
    use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED};
    let algorithm = match family {
        KeyFamily::EcP384 => &ECDSA_P384_SHA384_FIXED,
        _ => &ECDSA_P256_SHA256_FIXED,
    };
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(4u8); // uncompressed
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    ParsedPublicKey::new(algorithm, &point)
        .map(|_| ())
        .map_err(|_| KeyRejected("EC point is not on its curve".into()))
}

/// The algorithms a token or key may name. Never `none`, never HMAC.
pub fn parse_algorithm(text: &str) -> Option<Algorithm> {
    match text {
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        _ => None,
    }
}

fn rsa_key(
    kid: Option<String>,
    algorithm: Option<Algorithm>,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
) -> Result<ParsedKey, KeyRejected> {
    // An empty modulus (`"n": ""` or all zeros) is 0 bits; computing it as `len * 8 - 8`
    // underflowed: a panic in debug builds, killing that source's refresh task
    // (fuzz/regressions/jwks/empty-rsa-modulus.json).
    let bits = modulus.first().map_or(0, |first| {
        modulus.len() * 8 - first.leading_zeros() as usize
    });
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA modulus of {bits} bits, under {MIN_RSA_BITS}").into());
    }
    if bits > 16_384 || exponent.is_empty() || exponent.len() > 8 {
        return Err("RSA key of unreasonable size".into());
    }
    Ok(ParsedKey {
        kid,
        algorithm,
        family: KeyFamily::Rsa,
        decoding_key: DecodingKey::from_rsa_raw_components(&modulus, &exponent),
        rs256: aws_lc_rs::signature::RsaPublicKeyComponents {
            n: &modulus,
            e: &exponent,
        }
        .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
        .ok(),
        thumbprint: thumbprint(&[&modulus, &exponent]),
        modulus: Some(modulus),
        bits,
    })
}

/// base64url with or without `=` padding (OpenMetadata pads), tolerating the standard alphabet.
pub fn decode_base64_lenient(text: &str) -> Result<Vec<u8>, KeyRejected> {
    let trimmed = text.trim().trim_end_matches('=');
    if trimmed.len() > 4096 {
        return Err("base64 value too long".into());
    }
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD.decode(pad(trimmed.replace(['-', '_'], "+"))))
        .map_err(|_| KeyRejected::from("broken base64"))
}

fn pad(mut text: String) -> String {
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    text
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

/// A PEM public key (SPKI or PKCS#1) or certificate.
pub fn parse_pem(pem: &[u8], kid: Option<String>) -> Result<ParsedKey, ParseError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| ParseError::NoPem)?;
    let bad = |message: &str| ParseError::BadPem(message.to_string());
    match block.label.as_str() {
        "CERTIFICATE" => {
            let (_, certificate) = x509_parser::parse_x509_certificate(&block.contents)
                .map_err(|_| bad("unreadable certificate"))?;
            key_from_spki(certificate.public_key(), kid)
        }
        "PUBLIC KEY" => {
            use x509_parser::prelude::FromDer;
            let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents)
                .map_err(|_| bad("unreadable public key"))?;
            key_from_spki(&spki, kid)
        }
        "RSA PUBLIC KEY" => {
            let decoding_key =
                DecodingKey::from_rsa_pem(pem).map_err(|_| bad("unreadable RSA public key"))?;
            Ok(ParsedKey {
                kid,
                algorithm: None,
                family: KeyFamily::Rsa,
                decoding_key,
                rs256: None,
                modulus: None,
                bits: 0,
                thumbprint: thumbprint(&[&block.contents]),
            })
        }
        other => Err(ParseError::BadPem(format!(
            "a `{other}` block (private keys are never read)"
        ))),
    }
}

fn key_from_spki(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    kid: Option<String>,
) -> Result<ParsedKey, ParseError> {
    use x509_parser::public_key::PublicKey;
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => rsa_key(
            kid,
            None,
            strip_leading_zeros(rsa.modulus.to_vec()),
            strip_leading_zeros(rsa.exponent.to_vec()),
        )
        .map_err(|rejected| ParseError::BadPem(rejected.0)),
        Ok(PublicKey::EC(point)) => {
            let data = point.data();
            let (family, width, algorithm) = match data.len() {
                65 => (KeyFamily::EcP256, 32, Algorithm::ES256),
                97 => (KeyFamily::EcP384, 48, Algorithm::ES384),
                _ => return Err(ParseError::BadPem("EC key on an unsupported curve".into())),
            };
            let x = data.get(1..1 + width).unwrap_or_default();
            let y = data.get(1 + width..).unwrap_or_default();
            check_ec_point(family, x, y).map_err(|rejected| ParseError::BadPem(rejected.0))?;
            let decoding_key = DecodingKey::from_ec_components(
                &URL_SAFE_NO_PAD.encode(x),
                &URL_SAFE_NO_PAD.encode(y),
            )
            .map_err(|error| ParseError::BadPem(error.to_string()))?;
            Ok(ParsedKey {
                kid,
                algorithm: Some(algorithm),
                family,
                decoding_key,
                rs256: None,
                modulus: None,
                bits: width * 8,
                thumbprint: thumbprint(&[x, y]),
            })
        }
        _ => Err(ParseError::BadPem("unsupported public key type".into())),
    }
}

/// Read a `publicKeyFiles` entry: a JWKS file, a PEM key, or a DER SubjectPublicKeyInfo (the
/// `public_key.der` OpenMetadata's `jwtTokenConfiguration.rsapublicKeyFilePath` names).
pub fn parse_key_file(contents: &[u8], kid: Option<String>) -> Result<ParsedDocument, ParseError> {
    // A DER SEQUENCE: PEM and JSON files start with text.
    if contents.first() == Some(&0x30) {
        use x509_parser::prelude::FromDer;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(contents)
            .map_err(|_| ParseError::BadPem("unreadable DER public key".into()))?;
        return Ok(ParsedDocument {
            keys: vec![key_from_spki(&spki, kid)?],
            skipped: Vec::new(),
        });
    }
    if contents.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let mut document = parse_key_document(contents)?;
        if let Some(kid) = kid {
            for key in &mut document.keys {
                key.kid.get_or_insert_with(|| kid.clone());
            }
        }
        return Ok(document);
    }
    Ok(ParsedDocument {
        keys: vec![parse_pem(contents, kid)?],
        skipped: Vec::new(),
    })
}

fn thumbprint(parts: &[&[u8]]) -> String {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
