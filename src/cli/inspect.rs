//! `om-gateway inspect`: explain the decision for one token: header, claims, the key that
//! verifies it (kid, source), the principal, the route, and allow or the exact 401/403.
//! The token itself is never printed; its fingerprint is.

use super::{report_config_error, ConfigArgs, EXIT_FAILURE, EXIT_INVALID, EXIT_OK};
use crate::error::{respond, Rejection};
use crate::judge::{Judge, Question, Verdict};
use crate::jwks::KeyStore;
use crate::metrics::Metrics;
use crate::proxy::feed::FeedSessions;
use crate::verify::{decode_unverified, fingerprint, Authenticator};
use clap::Args;
use std::io::Read;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The method of the request to judge (upper case, as on the wire).
    #[arg(long, default_value = "GET")]
    method: String,
    /// The path of the request to judge, optionally with its query (`/api/v1/push/feed?userId=…`).
    #[arg(long, default_value = "/api/v1/tables")]
    path: String,
    /// The token, or `-` (or nothing) to read it from standard input.
    token: Option<String>,
}

pub fn inspect(args: InspectArgs) -> i32 {
    let config = match args.config.load() {
        Ok(config) => config,
        Err(error) => return report_config_error(&error),
    };
    let token = match args.token.as_deref() {
        Some(token) if token != "-" => token.trim().to_string(),
        _ => {
            let mut text = String::new();
            if std::io::stdin().read_to_string(&mut text).is_err() {
                eprintln!("om-gateway inspect: cannot read the token from standard input");
                return EXIT_INVALID;
            }
            text.trim().trim_start_matches("Bearer ").trim().to_string()
        }
    };
    if token.is_empty() {
        eprintln!("om-gateway inspect: no token given (argument or standard input)");
        return EXIT_INVALID;
    }
    let Ok(runtime) = super::runtime() else {
        return EXIT_FAILURE;
    };
    runtime.block_on(async move {
        println!("token     fingerprint {} ({} bytes)", fingerprint(&token), token.len());
        match decode_unverified(&token) {
            Ok(unverified) => {
                println!("header    {}", serde_json::Value::Object(unverified.header.clone()));
                println!("claims    {}", serde_json::Value::Object(unverified.claims.clone()));
            }
            Err(error) => println!("structure {error}"),
        }
        let metrics = match Metrics::new() {
            Ok(metrics) => Arc::new(metrics),
            Err(error) => {
                eprintln!("om-gateway inspect: metrics: {error}");
                return EXIT_FAILURE;
            }
        };
        let key_store = match KeyStore::new(&config.auth.key_sources, &config.auth.key_files, config.jwks.clone(), metrics.clone()) {
            Ok(store) => store,
            Err(error) => {
                eprintln!("om-gateway inspect: {error}");
                return EXIT_INVALID;
            }
        };
        key_store.refresh_all_now().await;
        for source in key_store.status() {
            println!("source    {} {} ({} keys{})", source.url, source.state, source.keys,
                source.last_error.map(|e| format!(", {e}")).unwrap_or_default());
        }
        let authenticator = Authenticator::new(config.verify_settings(), key_store, metrics.clone());
        let feed = match FeedSessions::new() {
            Ok(feed) => Arc::new(feed),
            Err(_) => {
                eprintln!("om-gateway inspect: the system random number generator failed");
                return EXIT_FAILURE;
            }
        };
        let revocation = match crate::revocation::RevocationCheck::new(&config.revocation, &config.upstream, metrics.clone()) {
            Ok(check) => check,
            Err(error) => {
                eprintln!("om-gateway inspect: {error}");
                return EXIT_FAILURE;
            }
        };
        let judge = Judge::new(config.policy(), authenticator, feed, metrics).with_revocation_check(revocation);
        let domain = config.authorizer.principal_domain.clone();
        let deny = |rejection: &Rejection| {
            let response = respond(rejection, &domain);
            let body = serde_json::json!({"code": response.status().as_u16(), "message": rejection.message(&domain)});
            println!("decision  deny {} {body}", response.status().as_u16());
            EXIT_FAILURE
        };
        let mut headers = http::HeaderMap::new();
        match http::HeaderValue::from_str(&format!("Bearer {token}")) {
            Ok(value) => {
                headers.insert(http::header::AUTHORIZATION, value);
            }
            Err(_) => {
                eprintln!("om-gateway inspect: the token holds characters no header can carry");
                return EXIT_INVALID;
            }
        }
        // `--method` is typed by a person, not sent on the wire: `delete` means DELETE here. A
        // method no request could carry is a bad argument (exit 2).
        let method = args.method.to_ascii_uppercase();
        if http::Method::from_bytes(method.as_bytes()).is_err() {
            eprintln!("om-gateway inspect: --method `{}` is not an HTTP method", args.method);
            return EXIT_INVALID;
        }
        let question = match Question::for_inspect(&method, &args.path, &headers) {
            Ok(question) => question,
            Err(rejection) => return deny(&rejection),
        };
        // The explanation: what the token says and which key verifies it. The decision below
        // is the judge's, the same one the proxy and forward-auth make.
        match judge.authenticator().verify(&token).await {
            Ok(principal) => {
                println!("key       kid {} from {} (thumbprint {})", principal.kid.as_deref().unwrap_or("(none)"), principal.key_source, principal.key_thumbprint);
                println!(
                    "principal {} (email {}, isBot {}, tokenType {}, roles [{}], exp {}{})",
                    principal.name,
                    principal.email.as_deref().unwrap_or("-"),
                    principal.is_bot,
                    principal.token_type.as_deref().unwrap_or("-"),
                    principal.roles.join(", "),
                    principal.expires_at.map(|e| e.to_string()).unwrap_or_else(|| "none".into()),
                    if principal.issued_by_openmetadata { ", issued by OpenMetadata" } else { "" },
                );
            }
            Err(error) => println!("token     not accepted: {error}"),
        }
        let readings: Vec<&str> = question.path.iter().collect();
        if readings.len() > 1 {
            println!("path      read as {}", readings.join(" | "));
        }
        match judge.decide(&question).await {
            Verdict::Allow(allowed) => {
                println!("route     {} for {} {}", allowed.route, question.method, question.path.forwarded());
                match &allowed.principal {
                    None if allowed.reason == "public_path" => {
                        println!("route     public path {}: no token needed", question.path.forwarded());
                        println!("decision  allow");
                    }
                    None => println!("decision  allow ({})", allowed.reason),
                    Some(principal) => {
                        let mut identity = http::HeaderMap::new();
                        crate::proxy::headers::set_identity_headers(&mut identity, principal);
                        println!("decision  allow; headers sent upstream:");
                        for (name, value) in &identity {
                            println!("          {name}: {}", value.to_str().unwrap_or("(binary)"));
                        }
                    }
                }
                EXIT_OK
            }
            Verdict::Deny(refused) => {
                println!("route     {} for {} {}", refused.route, question.method, question.path.forwarded());
                deny(&refused.rejection)
            }
        }
    })
}
