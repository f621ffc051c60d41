//! `om-gateway token`: mint a token shaped like OpenMetadata's, signed with a private key PEM.
//! For tests, demos and checking a deployment end to end; the gateway never signs anything else.

use super::{EXIT_INVALID, EXIT_OK};
use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    #[arg(long = "private-key", value_name = "PEM")]
    private_key: PathBuf,
    /// The kid to put in the header (must match the JWKS).
    #[arg(long)]
    kid: String,
    /// The subject (OpenMetadata user name).
    #[arg(long)]
    sub: String,
    /// The email claim (default: <sub>@open-metadata.org).
    #[arg(long)]
    email: Option<String>,
    /// Mark the token as a bot's (isBot: true).
    #[arg(long)]
    bot: bool,
    /// tokenType claim: BOT, PERSONAL_ACCESS, OM_USER... (default BOT with --bot, else PERSONAL_ACCESS).
    #[arg(long = "token-type")]
    token_type: Option<String>,
    /// Comma-separated roles.
    #[arg(long, value_delimiter = ',')]
    roles: Vec<String>,
    /// Lifetime such as 1h or 30m; `never` writes "exp": null; a leading `-` makes it already expired.
    #[arg(long, default_value = "1h", allow_hyphen_values = true)]
    expires: String,
    /// The iss claim.
    #[arg(long, default_value = "open-metadata.org")]
    issuer: String,
    /// RS256, RS384, RS512, ES256 or ES384.
    #[arg(long, default_value = "RS256")]
    alg: String,
}

/// Everything a token carries.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub private_key_pem: Vec<u8>,
    pub algorithm: Algorithm,
    pub kid: Option<String>,
    pub subject: String,
    pub email: Option<String>,
    pub is_bot: bool,
    pub token_type: Option<String>,
    pub roles: Vec<String>,
    /// Seconds from now (negative: in the past); `None` writes `"exp": null`.
    pub expires_in: Option<i64>,
    pub issuer: String,
    pub extra_claims: Vec<(String, Value)>,
}

/// Sign a token.
pub fn mint_token(request: &TokenRequest) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
    let mut claims = json!({
        "iss": request.issuer,
        "sub": request.subject,
        "roles": request.roles,
        "email": request.email.clone().unwrap_or_else(|| format!("{}@open-metadata.org", request.subject)),
        "isBot": request.is_bot,
        "iat": if request.expires_in.is_some_and(|e| e < 0) { now - 7200 } else { now },
        "exp": request.expires_in.map(|seconds| now + seconds),
    });
    if let (Some(token_type), Value::Object(map)) = (&request.token_type, &mut claims) {
        map.insert("tokenType".into(), Value::String(token_type.clone()));
    }
    if let Value::Object(map) = &mut claims {
        for (name, value) in &request.extra_claims {
            map.insert(name.clone(), value.clone());
        }
    }
    let key = match request.algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&request.private_key_pem)?,
        _ => EncodingKey::from_rsa_pem(&request.private_key_pem)?,
    };
    let mut header = Header::new(request.algorithm);
    header.kid = request.kid.clone();
    Ok(jsonwebtoken::encode(&header, &claims, &key)?)
}

/// Parse `1h`, `-30m`, `never`.
pub fn parse_expires(text: &str) -> Result<Option<i64>, String> {
    if text == "never" {
        return Ok(None);
    }
    let (sign, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let duration = crate::config::duration::parse_duration(magnitude).map_err(|error| error.0)?;
    Ok(Some(sign * duration.as_secs() as i64))
}

pub fn token(args: TokenArgs) -> i32 {
    let pem = match std::fs::read(&args.private_key) {
        Ok(pem) => pem,
        Err(error) => {
            eprintln!(
                "om-gateway token: --private-key {}: {error}",
                args.private_key.display()
            );
            return EXIT_INVALID;
        }
    };
    let expires_in = match parse_expires(&args.expires) {
        Ok(expires) => expires,
        Err(error) => {
            eprintln!("om-gateway token: --expires: {error}");
            return EXIT_INVALID;
        }
    };
    let Some(algorithm) = crate::jwks::parse::parse_algorithm(&args.alg) else {
        eprintln!(
            "om-gateway token: --alg: `{}` is not one of RS256, RS384, RS512, ES256, ES384",
            args.alg
        );
        return EXIT_INVALID;
    };
    let request = TokenRequest {
        private_key_pem: pem,
        algorithm,
        kid: Some(args.kid),
        token_type: args
            .token_type
            .or_else(|| Some(if args.bot { "BOT" } else { "PERSONAL_ACCESS" }.into())),
        subject: args.sub,
        email: args.email,
        is_bot: args.bot,
        roles: args.roles,
        expires_in,
        issuer: args.issuer,
        extra_claims: Vec::new(),
    };
    match mint_token(&request) {
        Ok(token) => {
            println!("{token}");
            EXIT_OK
        }
        Err(error) => {
            eprintln!(
                "om-gateway token: cannot sign with {}: {error}",
                args.private_key.display()
            );
            EXIT_INVALID
        }
    }
}
