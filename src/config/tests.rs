//! Compiled only under `#[cfg(test)]` (declared in this directory's mod.rs): tests may unwrap.
//! Configuration parsing as tables: input bytes and an environment map in, typed values or
//! located problems out. The process environment is never touched.

use super::duration::{format_duration, parse_duration};
use super::env::parse_list;
use super::openmetadata::substitute;
use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_yaml(yaml: &str, environment: &[(&str, &str)]) -> Result<Config, ConfigError> {
    load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "gateway.yaml".into(),
            text: yaml.into(),
        }),
        openmetadata_file: None,
        environment: &env(environment),
    })
}

#[test]
fn durations() {
    fn check(input: &str, expected: Result<u64, &str>) {
        match (parse_duration(input), expected) {
            (Ok(duration), Ok(millis)) => {
                assert_eq!(duration.as_millis() as u64, millis, "{input}")
            }
            (Err(message), Err(part)) => assert!(message.0.contains(part), "{input}: {message}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
    check("500ms", Ok(500));
    check("30s", Ok(30_000));
    check("10m", Ok(600_000));
    check("24h", Ok(86_400_000));
    check("1h30m", Ok(5_400_000));
    check("2d", Ok(172_800_000));
    check("0", Ok(0));
    check("10", Err("no unit"));
    check("10 minutes", Err("unknown unit"));
    check("", Err("empty"));
    check("m", Err("not a duration"));
    assert_eq!(format_duration(Duration::from_secs(600)), "10m");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
}

#[test]
fn openmetadata_list_forms() {
    fn check(input: &str, expected: &[&str]) {
        assert_eq!(parse_list(input), expected, "{input}");
    }
    check(
        "[http://a/jwks, http://b/certs]",
        &["http://a/jwks", "http://b/certs"],
    );
    check(
        "http://a/jwks,http://b/certs",
        &["http://a/jwks", "http://b/certs"],
    );
    check("[\"email\", 'sub']", &["email", "sub"]);
    check("[]", &[]);
    check("admin", &["admin"]);
}

#[test]
fn dropwizard_substitution() {
    let environment = env(&[("SET", "value"), ("EMPTY", "")]);
    fn check(environment: &HashMap<String, String>, input: &str, expected: &str) {
        assert_eq!(substitute(input, environment), expected, "{input}");
    }
    check(&environment, "a: ${SET:-fallback}", "a: value");
    check(&environment, "a: ${UNSET:-fallback}", "a: fallback");
    check(&environment, "a: ${UNSET:-[x, y]}", "a: [x, y]");
    check(&environment, "a: ${UNSET}", "a: ${UNSET}");
    check(&environment, "a: ${EMPTY:-fallback}", "a: ");
    check(&environment, "a: $${SET}", "a: ${SET}");
    check(&environment, "a: ${SET", "a: ${SET");
}

#[test]
fn environment_overrides_win_over_the_file() {
    let config = load_yaml(
        "authenticationConfiguration:\n  publicKeyUrls: [\"http://file/jwks\"]\nauthorizerConfiguration:\n  adminPrincipals: [root]\n",
        &[
            ("AUTHENTICATION_PUBLIC_KEYS", "[http://env-a/jwks, http://env-b/certs]"),
            ("AUTHENTICATION_JWT_PRINCIPAL_CLAIMS", "[preferred_username,email]"),
            ("AUTHORIZER_ADMIN_PRINCIPALS", "[admin, ops]"),
            ("AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN", "true"),
            ("AUTHORIZER_PRINCIPAL_DOMAIN", "example.com"),
            ("AUTHORIZER_ALLOWED_DOMAINS", "[partner.example]"),
            ("OM_GATEWAY_LISTEN", "127.0.0.1:18080"),
            ("OM_GATEWAY_UPSTREAM_URL", "http://openmetadata-server:8585"),
        ],
    )
    .unwrap();
    let urls: Vec<&str> = config
        .auth
        .key_sources
        .iter()
        .map(|s| s.url.as_str())
        .collect();
    // OpenMetadata's own key (the upstream's JWKS) is always trusted, as the server trusts it.
    assert_eq!(
        urls,
        [
            "http://env-a/jwks",
            "http://env-b/certs",
            "http://openmetadata-server:8585/api/v1/system/config/jwks"
        ]
    );
    assert_eq!(
        config.auth.principal_claims,
        ["preferred_username", "email"]
    );
    assert_eq!(config.authorizer.admin_principals, ["admin", "ops"]);
    assert!(config.authorizer.enforce_principal_domain);
    assert_eq!(config.authorizer.principal_domain, "example.com");
    assert_eq!(config.authorizer.allowed_domains, ["partner.example"]);
    assert_eq!(config.startup.listen.to_string(), "127.0.0.1:18080");
    assert_eq!(
        config.upstream.url.to_string(),
        "http://openmetadata-server:8585/"
    );
}

#[test]
fn defaults_trust_the_upstreams_own_jwks() {
    let config = load_yaml("", &[("OM_GATEWAY_UPSTREAM_URL", "http://om:8585")]).unwrap();
    assert_eq!(config.auth.key_sources.len(), 1);
    assert_eq!(
        config.auth.key_sources[0].url,
        "http://om:8585/api/v1/system/config/jwks"
    );
    assert_eq!(
        config.auth.key_sources[0].issuers,
        ["open-metadata.org"],
        "bound to OpenMetadata's issuer"
    );
    assert_eq!(config.startup.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.startup.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(config.auth.allow_tokens_without_expiry, ExpiryPolicy::Bots);
    assert_eq!(
        config.auth.principal_claims,
        ["email", "preferred_username", "sub"]
    );
    assert_eq!(config.jwks.min_refresh_interval, Duration::from_secs(30));
    assert_eq!(config.forward_auth_path, "/_gateway/auth");
}

#[test]
fn key_sources_bind_and_public_key_urls_merge() {
    let config = load_yaml(
        "authenticationConfiguration:\n  publicKeyUrls: [\"http://om/jwks\", \"https://google/certs\"]\n  keySources:\n    - { url: \"https://google/certs\", issuers: [accounts.google.com], audiences: [client-1] }\n",
        &[],
    )
    .unwrap();
    let sources = &config.auth.key_sources;
    assert_eq!(
        sources.len(),
        3,
        "the URL listed in both places is one source, plus OpenMetadata's own"
    );
    assert_eq!(sources[0].url, "https://google/certs");
    assert_eq!(sources[0].issuers, ["accounts.google.com"]);
    assert_eq!(sources[0].audiences, ["client-1"]);
    assert!(sources[1].issuers.is_empty());
}

#[test]
fn problems_are_all_reported_with_lines() {
    fn check(yaml: &str, expected: &[(&str, Option<usize>, &str)]) {
        let error = load_yaml(yaml, &[]).expect_err(yaml);
        let got: Vec<(&str, Option<usize>, &str)> = error
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line, p.message.as_str()))
            .collect();
        assert_eq!(got.len(), expected.len(), "{error}");
        for ((key, line, message), (want_key, want_line, want_part)) in got.iter().zip(expected) {
            assert_eq!(key, want_key, "{error}");
            assert_eq!(line, want_line, "{error}");
            assert!(message.contains(want_part), "{message} lacks {want_part}");
        }
    }
    check(
        "server:\n  logFormat: xml\n",
        &[("server.logFormat", Some(2), "json, text")],
    );
    check(
        "server:\n  workers: 0\n",
        &[("server.workers", Some(2), "between 1 and 256")],
    );
    check(
        "upstream:\n  url: ftp://x\n",
        &[("upstream.url", Some(2), "http(s) URL")],
    );
    check(
        "routes:\n  - name: a\n    match: { pathRegex: \"(\" }\n  - name: a\n    match: { path: nope, methods: [GOT] }\n",
        &[
            ("routes[0].match.pathRegex", Some(3), "invalid regex"),
            ("routes[1].name", Some(4), "earlier route"),
            ("routes[1].match.path", Some(5), "must start with"),
        ],
    );
    check(
        "authenticationConfiguration:\n  allowTokensWithoutExpiry: sometimes\n  tokenValidationAlgorithm: HS256\n",
        &[
            ("authenticationConfiguration.tokenValidationAlgorithm", Some(3), "RS256"),
            ("authenticationConfiguration.allowTokensWithoutExpiry", Some(2), "bots, all, none"),
        ],
    );
    check(
        "jwks:\n  refreshInterval: 10s\n  minRefreshInterval: 1m\n",
        &[("jwks.minRefreshInterval", Some(3), "must not exceed")],
    );
    check(
        "server:\n  websocketPaths:\n    - api/ws\n    - /api/v1/x/../ws/**\n    - /**\n",
        &[
            ("server.websocketPaths[0]", Some(3), "must start with `/`"),
            ("server.websocketPaths[1]", Some(4), "normalised form"),
            ("server.websocketPaths[2]", Some(5), "every path"),
        ],
    );
}

#[test]
fn websocket_paths_default_to_the_feed_and_a_list_replaces_them() {
    let sources = |yaml: &str| -> Vec<String> {
        load_yaml(yaml, &[])
            .unwrap()
            .server
            .websocket_paths
            .iter()
            .map(|rule| rule.source.clone())
            .collect()
    };
    assert_eq!(sources(""), ["/api/v1/push/feed/**"]);
    assert_eq!(
        sources("server:\n  websocketPaths: [ /api/v1/events/**, /ws ]\n"),
        ["/api/v1/events/**", "/ws"]
    );
    assert!(sources("server:\n  websocketPaths: []\n").is_empty());
    let config = load_yaml("", &[]).unwrap();
    let feed = &config.server.websocket_paths[0].pattern;
    assert!(feed.matches("/api/v1/push/feed") && feed.matches("/api/v1/push/feed/socket.io"));
    assert!(!feed.matches("/api/v1/push/feedx"));
    let printed = crate::cli::check::effective_yaml(&config);
    assert!(printed.contains("websocketPaths:"), "{printed}");
    assert!(printed.contains("/api/v1/push/feed/**"), "{printed}");
}

#[test]
fn structural_errors_name_the_unknown_key() {
    let error = load_yaml(
        "server:\n  listen: 0.0.0.0:8080\nroutes:\n  - match:\n      pathPrefx: /a\n",
        &[],
    )
    .unwrap_err();
    let problem = &error.problems[0];
    assert_eq!(problem.line, Some(5));
    assert_eq!(problem.key, "routes[0].match.pathPrefx");
    assert!(
        problem.message.contains("unknown field"),
        "{}",
        problem.message
    );
    let error = load_yaml("server:\n  maxHeaderBytes: lots\n", &[]).unwrap_err();
    assert_eq!(error.problems[0].line, Some(2));
}

#[test]
fn environment_problems_name_the_variable() {
    let error = load_yaml("", &[("AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN", "maybe")]).unwrap_err();
    assert_eq!(error.problems[0].key, "AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN");
    assert_eq!(error.problems[0].file.as_deref(), Some("environment"));
}

const OPENMETADATA_YAML: &str = r#"
server:
  applicationConnectors:
    - type: http
      port: ${SERVER_PORT:-8585}
authorizerConfiguration:
  className: ${AUTHORIZER_CLASS_NAME:-org.openmetadata.service.security.DefaultAuthorizer}
  adminPrincipals: ${AUTHORIZER_ADMIN_PRINCIPALS:-[admin]}
  principalDomain: ${AUTHORIZER_PRINCIPAL_DOMAIN:-"open-metadata.org"}
  enforcePrincipalDomain: ${AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN:-false}
  enableSecureSocketConnection : ${AUTHORIZER_ENABLE_SECURE_SOCKET:-false}
authenticationConfiguration:
  provider: ${AUTHENTICATION_PROVIDER:-basic}
  responseType: ${AUTHENTICATION_RESPONSE_TYPE:-id_token}
  publicKeyUrls: ${AUTHENTICATION_PUBLIC_KEYS:-[http://localhost:8585/api/v1/system/config/jwks]}
  authority: ${AUTHENTICATION_AUTHORITY:-https://accounts.google.com}
  clientId: ${AUTHENTICATION_CLIENT_ID:-""}
  jwtPrincipalClaims: ${AUTHENTICATION_JWT_PRINCIPAL_CLAIMS:-[email,preferred_username,sub]}
  jwtPrincipalClaimsMapping: ${AUTHENTICATION_JWT_PRINCIPAL_CLAIMS_MAPPING:-[]}
  enableSelfSignup : ${AUTHENTICATION_ENABLE_SELF_SIGNUP:-true}
"#;

#[test]
fn openmetadata_yaml_is_read_the_way_the_server_reads_it() {
    let read = |environment: &[(&str, &str)]| {
        load(LoadInput {
            gateway_file: None,
            openmetadata_file: Some(ConfigText {
                name: "openmetadata.yaml".into(),
                text: OPENMETADATA_YAML.into(),
            }),
            environment: &env(environment),
        })
    };
    let config = read(&[]).unwrap();
    assert_eq!(
        config.auth.key_sources[0].url,
        "http://localhost:8585/api/v1/system/config/jwks"
    );
    assert_eq!(config.auth.provider, "basic");
    assert_eq!(config.authorizer.admin_principals, ["admin"]);
    assert_eq!(config.authorizer.principal_domain, "open-metadata.org");
    assert!(!config.authorizer.enforce_principal_domain);
    assert_eq!(
        config.auth.principal_claims,
        ["email", "preferred_username", "sub"]
    );

    let config = read(&[
        ("AUTHENTICATION_PUBLIC_KEYS", "[https://www.googleapis.com/oauth2/v3/certs, http://om:8585/api/v1/system/config/jwks]"),
        ("AUTHORIZER_ENFORCE_PRINCIPAL_DOMAIN", "true"),
        ("AUTHENTICATION_JWT_PRINCIPAL_CLAIMS_MAPPING", "[username:preferred_username, email:email]"),
    ])
    .unwrap();
    // The two listed, and the upstream's own JWKS (http://localhost:8585 by default).
    assert_eq!(config.auth.key_sources.len(), 3);
    assert!(config.authorizer.enforce_principal_domain);
    assert_eq!(
        config.auth.principal_claims_mapping,
        Some(crate::verify::PrincipalMapping {
            username_claim: "preferred_username".into(),
            email_claim: "email".into(),
        })
    );
}

#[test]
fn the_example_configs_load() {
    for path in ["config/gateway.yaml", "config/openmetadata-preset.yaml"] {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let text = std::fs::read_to_string(&full).unwrap();
        let result = load(LoadInput {
            gateway_file: Some(ConfigText {
                name: path.into(),
                text,
            }),
            openmetadata_file: None,
            environment: &env(&[]),
        });
        assert!(
            result.is_ok(),
            "{path}: {}",
            result.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

#[test]
fn openmetadata_jwt_token_configuration_trusts_the_servers_own_key_file() {
    // The server's rsapublicKeyFilePath is DER (conf/public_key.der); make one from the fixture.
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keys/rsa-a.pub.pem"
    ))
    .unwrap();
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    let directory = tempfile::tempdir().unwrap();
    let der_path = directory.path().join("public_key.der");
    std::fs::write(&der_path, der).unwrap();
    let yaml = format!(
        "authorizerConfiguration:\n  useRolesFromProvider: ${{AUTHORIZER_USE_ROLES_FROM_PROVIDER:-false}}\n\
         jwtTokenConfiguration:\n  rsapublicKeyFilePath: ${{RSA_PUBLIC_KEY_FILE_PATH:-\"{}\"}}\n  jwtissuer: ${{JWT_ISSUER:-\"open-metadata.org\"}}\n  keyId: ${{JWT_KEY_ID:-\"Gb389a-9f76-gdjs-a92j-0242bk94356\"}}\n",
        der_path.display()
    );
    let read = |environment: &[(&str, &str)]| {
        load(LoadInput {
            gateway_file: None,
            openmetadata_file: Some(ConfigText {
                name: "openmetadata.yaml".into(),
                text: yaml.clone(),
            }),
            environment: &env(environment),
        })
        .unwrap()
    };
    let config = read(&[]);
    assert_eq!(
        config.openmetadata.key_id,
        "Gb389a-9f76-gdjs-a92j-0242bk94356"
    );
    assert_eq!(config.openmetadata.issuer, "open-metadata.org");
    assert!(!config.authorizer.use_roles_from_provider);
    let file = config
        .auth
        .key_files
        .iter()
        .find(|file| file.path == der_path)
        .expect("the server's public key file is a key file");
    assert_eq!(
        file.kid.as_deref(),
        Some("Gb389a-9f76-gdjs-a92j-0242bk94356")
    );
    assert_eq!(file.issuers, ["open-metadata.org"]);
    // The DER file parses into a key.
    let contents = std::fs::read(&der_path).unwrap();
    let document = crate::jwks::parse::parse_key_file(&contents, file.kid.clone()).unwrap();
    assert_eq!(document.keys.len(), 1);

    // The server's own variable names, as openmetadata.yaml substitutes them.
    let config = read(&[
        ("JWT_KEY_ID", "rotated-kid"),
        ("JWT_ISSUER", "om.example"),
        ("AUTHORIZER_USE_ROLES_FROM_PROVIDER", "true"),
    ]);
    assert_eq!(config.openmetadata.key_id, "rotated-kid");
    assert_eq!(config.openmetadata.issuer, "om.example");
    assert!(config.authorizer.use_roles_from_provider);
    let source = config
        .auth
        .key_sources
        .iter()
        .find(|source| source.url.ends_with("/api/v1/system/config/jwks"))
        .unwrap();
    assert_eq!(source.issuers, ["om.example"]);

    // A path that exists only in the server's container is skipped, not an error.
    let config = read(&[("RSA_PUBLIC_KEY_FILE_PATH", "/nonexistent/public_key.der")]);
    assert!(config.auth.key_files.is_empty());
}

#[test]
fn token_validation_algorithms_are_openmetadatas() {
    for (text, expected) in [
        ("RS256", jsonwebtoken::Algorithm::RS256),
        ("RS512", jsonwebtoken::Algorithm::RS512),
        ("ES256", jsonwebtoken::Algorithm::ES256),
        ("ES384", jsonwebtoken::Algorithm::ES384),
    ] {
        let config = load_yaml("", &[("AUTHENTICATION_TOKEN_VALIDATION_ALGORITHM", text)]).unwrap();
        assert_eq!(config.auth.token_validation_algorithm, expected, "{text}");
    }
    let error = load_yaml(
        "authenticationConfiguration:\n  tokenValidationAlgorithm: HS256\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        error.problems[0].key,
        "authenticationConfiguration.tokenValidationAlgorithm"
    );
    assert_eq!(error.problems[0].line, Some(2));
}

#[test]
fn the_claims_mapping_is_validated_as_the_server_validates_it() {
    for (entries, message) in [
        ("[username:preferred_username]", "needs both"),
        ("[email:email]", "needs both"),
        ("[username:a, email:b, team:c]", "only username and email"),
        (
            "[username-preferred_username, email:email]",
            "is not `name:claim`",
        ),
        ("[username:a:b, email:email]", "is not `name:claim`"),
    ] {
        let error = load_yaml(
            &format!("authenticationConfiguration:\n  jwtPrincipalClaimsMapping: {entries}\n"),
            &[],
        )
        .unwrap_err();
        assert!(error.to_string().contains(message), "{entries}: {error}");
        assert!(error.to_string().starts_with("gateway.yaml:2:"), "{error}");
    }
}

/// The feed cookie key, shared by replicas, from a file or the environment.
#[test]
fn the_feed_key_comes_from_a_file_or_the_environment_and_is_checked() {
    const HEX: &str = "8f2a6c1d9e0b47a3b5c6d7e8f9012345a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let bytes: Vec<u8> = (0..HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&HEX[i..i + 2], 16).unwrap())
        .collect();
    let directory = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = directory.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    use base64::Engine;
    let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
    let wrapped = format!("{}\n{}\n", &standard[..30], &standard[30..]);
    let hex_file = write("hex", &format!("{HEX}\n"));
    let wrapped_file = write("wrapped", &wrapped);
    let short_file = write("short", "c2hvcnQ=\n");
    let garbage_file = write("garbage", "not a key at all!\n");
    let missing_file = directory.path().join("missing").display().to_string();

    // (what, yaml, environment, Ok(key bytes, previous key bytes) | Err(file, key, message part))
    type Expected<'a> = Result<(Option<&'a [u8]>, Option<&'a [u8]>), (&'a str, &'a str, &'a str)>;
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, Expected<'a>);
    let cases: Vec<Case> = vec![
        (
            "none: a random key per process",
            String::new(),
            vec![],
            Ok((None, None)),
        ),
        (
            "hex file",
            format!("feed:\n  keyFile: {hex_file}\n"),
            vec![],
            Ok((Some(&bytes), None)),
        ),
        (
            "base64 file, wrapped over two lines",
            format!("feed:\n  keyFile: {wrapped_file}\n"),
            vec![],
            Ok((Some(&bytes), None)),
        ),
        (
            "variable, base64url without padding",
            String::new(),
            vec![("OM_GATEWAY_FEED_KEY", &url_safe)],
            Ok((Some(&bytes), None)),
        ),
        (
            "variable naming a file, and a previous key",
            String::new(),
            vec![
                ("OM_GATEWAY_FEED_KEY_FILE", &hex_file),
                ("OM_GATEWAY_FEED_PREVIOUS_KEY", &standard),
            ],
            Ok((Some(&bytes), Some(&bytes))),
        ),
        (
            "the environment wins over the file",
            format!("feed:\n  keyFile: {garbage_file}\n"),
            vec![("OM_GATEWAY_FEED_KEY", HEX)],
            Ok((Some(&bytes), None)),
        ),
        (
            "previous key file",
            format!("feed:\n  keyFile: {hex_file}\n  previousKeyFile: {wrapped_file}\n"),
            vec![],
            Ok((Some(&bytes), Some(&bytes))),
        ),
        (
            "too short",
            format!("server:\n  workers: 1\nfeed:\n  keyFile: {short_file}\n"),
            vec![],
            Err(("gateway.yaml:4:", "feed.keyFile", "at least 32 bytes")),
        ),
        (
            "neither hex nor base64",
            format!("feed:\n  keyFile: {garbage_file}\n"),
            vec![],
            Err(("gateway.yaml:2:", "feed.keyFile", "neither hex nor base64")),
        ),
        (
            "unreadable file",
            format!("feed:\n  keyFile: {missing_file}\n"),
            vec![],
            Err(("gateway.yaml:2:", "feed.keyFile", "cannot read")),
        ),
        (
            "short variable",
            String::new(),
            vec![("OM_GATEWAY_FEED_KEY", "abcd")],
            Err(("environment", "OM_GATEWAY_FEED_KEY", "at least 32 bytes")),
        ),
        (
            "a value and a file for the same key",
            String::new(),
            vec![
                ("OM_GATEWAY_FEED_KEY", HEX),
                ("OM_GATEWAY_FEED_KEY_FILE", &hex_file),
            ],
            Err(("environment", "OM_GATEWAY_FEED_KEY_FILE", "not both")),
        ),
        (
            "a previous key alone",
            String::new(),
            vec![("OM_GATEWAY_FEED_PREVIOUS_KEY", HEX)],
            Err((
                "environment",
                "OM_GATEWAY_FEED_PREVIOUS_KEY",
                "needs a current key",
            )),
        ),
        (
            "unknown key in the block",
            "feed:\n  key: abc\n".into(),
            vec![],
            Err(("gateway.yaml:2:", "feed.key", "unknown field")),
        ),
    ];
    for (what, yaml, environment, expected) in cases {
        let outcome = load_yaml(&yaml, &environment);
        match (outcome, expected) {
            (Ok(config), Ok((key, previous))) => {
                let key_bytes = config.feed.key.as_ref().map(|k| k.bytes());
                let previous_bytes = config.feed.previous_key.as_ref().map(|k| k.bytes());
                assert_eq!((key_bytes, previous_bytes), (key, previous), "{what}");
            }
            (Err(error), Err((file, key, message))) => {
                let text = error.to_string();
                assert!(
                    text.starts_with(file) && text.contains(key) && text.contains(message),
                    "{what}: {text}"
                );
                for secret in [HEX, standard.as_str(), url_safe.as_str(), "c2hvcnQ"] {
                    assert!(!text.contains(secret), "{what}: the key leaks: {text}");
                }
            }
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
    // A configured key never shows in Debug output (logs, panics in tests).
    let config = load_yaml("", &[("OM_GATEWAY_FEED_KEY", HEX)]).unwrap();
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(HEX) && !debug.contains("143, 42"),
        "{debug}"
    );
}

// === Provenance and the server's published settings (issue 15) ===

fn load_both(
    yaml: &str,
    openmetadata_yaml: &str,
    environment: &[(&str, &str)],
) -> Result<Config, ConfigError> {
    load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "gateway.yaml".into(),
            text: yaml.into(),
        }),
        openmetadata_file: Some(ConfigText {
            name: "openmetadata.yaml".into(),
            text: openmetadata_yaml.into(),
        }),
        environment: &env(environment),
    })
}

fn published<T>(value: T, endpoint: &'static str) -> Option<published::Published<T>> {
    Some(published::Published { value, endpoint })
}

#[test]
fn each_value_names_the_input_it_came_from() {
    let config = load_both(
        "authorizerConfiguration:\n  principalDomain: file.org\nroutes: []\n",
        "authenticationConfiguration:\n  jwtPrincipalClaims: [sub]\n",
        &[("AUTHORIZER_ADMIN_PRINCIPALS", "[root]")],
    )
    .unwrap();
    let origin = |key: &str| config.provenance.origin(key);
    assert_eq!(
        origin("authorizerConfiguration.principalDomain"),
        Origin::File
    );
    assert_eq!(origin("routes"), Origin::File);
    assert_eq!(
        origin("authenticationConfiguration.jwtPrincipalClaims"),
        Origin::OpenMetadataYaml
    );
    assert_eq!(
        origin("authorizerConfiguration.adminPrincipals"),
        Origin::Env("AUTHORIZER_ADMIN_PRINCIPALS")
    );
    assert_eq!(origin("jwks.refreshInterval"), Origin::Default);
    assert!(Origin::File.is_explicit() && Origin::Env("X").is_explicit());
    assert!(!Origin::OpenMetadataYaml.is_explicit() && !Origin::Default.is_explicit());
}

#[test]
fn the_override_table_names_the_key_each_variable_sets() {
    for (variable, key, _) in env::OVERRIDES {
        let value = match *variable {
            "OM_GATEWAY_LISTEN" | "OM_GATEWAY_ADMIN_LISTEN" => "127.0.0.1:1",
            "OM_GATEWAY_UPSTREAM_URL" => "http://om:1",
            "OM_GATEWAY_LOG_FORMAT" => "text",
            "AUTHENTICATION_TOKEN_VALIDATION_ALGORITHM" => "RS384",
            name if name.contains("ENFORCE") || name.contains("USE_ROLES") => "true",
            _ => "[a, b]",
        };
        let mut raw = raw::RawConfig::default();
        let problems = env::apply_overrides(&mut raw, &env(&[(variable, value)]));
        assert!(problems.is_empty(), "{variable}: {problems:?}");
        let set: Vec<String> = provenance::set_keys(&raw)
            .into_iter()
            .filter(|set_key| {
                // apply_overrides creates these blocks empty; only values count.
                !set_key.is_empty()
            })
            .collect();
        assert_eq!(set, [key.to_string()], "{variable}");
    }
    let environment = env(&[
        ("AUTHORIZER_ALLOWED_DOMAINS", ""),
        ("AUTHORIZER_PRINCIPAL_DOMAIN", " "),
    ]);
    assert_eq!(
        env::overridden_keys(&environment),
        [(
            "AUTHORIZER_ALLOWED_DOMAINS",
            "authorizerConfiguration.allowedDomains"
        )]
    );
}

#[test]
fn following_is_on_by_default_only_without_an_explicit_key_source() {
    let on = |yaml: &str, environment: &[(&str, &str)]| {
        load_yaml(yaml, environment).unwrap().follow.enabled
    };
    assert!(on("", &[]));
    assert!(on(
        "authorizerConfiguration:\n  principalDomain: a.org\n",
        &[]
    ));
    assert!(!on(
        "authenticationConfiguration:\n  publicKeyUrls: [ \"https://idp/jwks\" ]\n",
        &[]
    ));
    assert!(!on(
        "authenticationConfiguration:\n  keySources: [ { url: \"https://idp/jwks\" } ]\n",
        &[]
    ));
    assert!(!on(
        "",
        &[("AUTHENTICATION_PUBLIC_KEYS", "https://idp/jwks")]
    ));
    assert!(on(
        "authenticationConfiguration:\n  publicKeyUrls: [ \"https://idp/jwks\" ]\nopenmetadata:\n  followServerConfig: true\n",
        &[]
    ));
    assert!(!on("openmetadata:\n  followServerConfig: false\n", &[]));
    // openmetadata.yaml's key URLs are the server's seed values: the server's own settings win.
    let config = load_both(
        "",
        "authenticationConfiguration:\n  publicKeyUrls: [ \"https://idp/jwks\" ]\n",
        &[],
    )
    .unwrap();
    assert!(config.follow.enabled);
    let config = load_yaml("", &[]).unwrap();
    assert_eq!(config.follow.interval, Duration::from_secs(60));
    assert_eq!(config.follow.token, None);
}

#[test]
fn the_follow_token_comes_from_a_file_or_the_environment_and_never_prints() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("token");
    std::fs::write(&path, "Bearer abc.def.ghi\n").unwrap();
    let yaml = format!(
        "openmetadata:\n  followInterval: 200ms\n  followToken:\n    tokenFile: {}\n",
        path.display()
    );
    let config = load_yaml(&yaml, &[]).unwrap();
    assert_eq!(config.follow.interval, Duration::from_millis(200));
    let token = config.follow.token.clone().unwrap();
    assert_eq!(token.read().unwrap().expose(), "abc.def.ghi");
    let config = load_yaml(&yaml, &[("OM_GATEWAY_FOLLOW_TOKEN", "from-env")]).unwrap();
    assert_eq!(
        config
            .follow
            .token
            .as_ref()
            .unwrap()
            .read()
            .unwrap()
            .expose(),
        "from-env"
    );
    assert!(!format!("{config:?}").contains("from-env"));
    assert_eq!(
        config.provenance.origin("openmetadata.followToken"),
        Origin::Env("OM_GATEWAY_FOLLOW_TOKEN")
    );
    let error = load_yaml(
        "openmetadata:\n  followInterval: 0s\n  followToken:\n    tokenFile: /nonexistent/token\n",
        &[],
    )
    .unwrap_err();
    let keys: Vec<&str> = error.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "openmetadata.followToken.tokenFile",
            "openmetadata.followInterval"
        ],
        "{error}"
    );
}

#[test]
fn published_values_fill_in_only_what_the_operator_left_unset() {
    let base = load_both(
        "authorizerConfiguration:\n  principalDomain: file.org\n",
        "authorizerConfiguration:\n  allowedDomains: [ yaml.org ]\n",
        &[("AUTHORIZER_ADMIN_PRINCIPALS", "[root]")],
    )
    .unwrap();
    let settings = PublishedSettings {
        principal_claims: published(vec!["Preferred_Username".into()], published::AUTH_ENDPOINT),
        principal_domain: published("server.org".into(), published::AUTHORIZER_ENDPOINT),
        allowed_domains: published(vec!["server.org".into()], published::SECURITY_ENDPOINT),
        admin_principals: published(vec!["boss".into()], published::SECURITY_ENDPOINT),
        enforce_principal_domain: published(true, published::SECURITY_ENDPOINT),
        ..PublishedSettings::default()
    };
    let layered = base.with_published(&settings).unwrap();
    assert_eq!(layered.auth.principal_claims, ["preferred_username"]);
    assert_eq!(layered.authorizer.principal_domain, "file.org", "file wins");
    assert_eq!(layered.authorizer.admin_principals, ["root"], "env wins");
    assert_eq!(
        layered.authorizer.allowed_domains,
        ["server.org"],
        "the server beats its own seed"
    );
    assert!(layered.authorizer.enforce_principal_domain);
    assert_eq!(
        layered
            .provenance
            .origin("authenticationConfiguration.jwtPrincipalClaims"),
        Origin::Server(published::AUTH_ENDPOINT)
    );
    // The base keeps its own values, so the next answer is layered onto the same base.
    assert_eq!(
        base.auth.principal_claims,
        ["email", "preferred_username", "sub"]
    );
    let again = layered
        .with_published(&PublishedSettings::default())
        .unwrap();
    assert_eq!(
        again.auth.principal_claims,
        ["email", "preferred_username", "sub"]
    );
    let drift = published::drift(&base, &settings);
    let keys: Vec<(&str, Origin)> = drift.iter().map(|d| (d.key, d.origin.clone())).collect();
    assert_eq!(
        keys,
        [
            (
                "authenticationConfiguration.jwtPrincipalClaims",
                Origin::Default
            ),
            ("authorizerConfiguration.principalDomain", Origin::File),
            (
                "authorizerConfiguration.enforcePrincipalDomain",
                Origin::Default
            ),
            (
                "authorizerConfiguration.allowedDomains",
                Origin::OpenMetadataYaml
            ),
            (
                "authorizerConfiguration.adminPrincipals",
                Origin::Env("AUTHORIZER_ADMIN_PRINCIPALS")
            ),
        ]
    );
}

#[test]
fn published_values_that_fail_validation_are_refused_naming_the_endpoint() {
    let base = load_yaml("", &[]).unwrap();
    let check = |settings: PublishedSettings, key: &str| {
        let error = base.with_published(&settings).unwrap_err();
        let problem = &error.problems[0];
        assert_eq!(problem.key, key, "{error}");
        assert!(
            problem
                .file
                .as_deref()
                .unwrap_or("")
                .starts_with("server /api/v1/system/"),
            "{error}"
        );
    };
    check(
        PublishedSettings {
            principal_claims: published(vec![], published::AUTH_ENDPOINT),
            ..Default::default()
        },
        "authenticationConfiguration.jwtPrincipalClaims",
    );
    check(
        PublishedSettings {
            principal_claims_mapping: published(
                vec!["username:sub".into()],
                published::AUTH_ENDPOINT,
            ),
            ..Default::default()
        },
        "authenticationConfiguration.jwtPrincipalClaimsMapping",
    );
    check(
        PublishedSettings {
            principal_domain: published("".into(), published::AUTHORIZER_ENDPOINT),
            ..Default::default()
        },
        "authorizerConfiguration.principalDomain",
    );
    check(
        PublishedSettings {
            public_key_urls: published(
                vec!["file:///etc/keys".into()],
                published::SECURITY_ENDPOINT,
            ),
            ..Default::default()
        },
        "authenticationConfiguration.publicKeyUrls[0]",
    );
    check(
        PublishedSettings {
            allowed_domains: published(vec!["a.org\r\nX: y".into()], published::SECURITY_ENDPOINT),
            ..Default::default()
        },
        "authorizerConfiguration.allowedDomains[0]",
    );
}

#[test]
fn sso_key_sources_bind_to_the_published_authority_and_client_id() {
    let base = load_yaml("upstream:\n  url: http://om:8585\n", &[]).unwrap();
    let settings = PublishedSettings {
        public_key_urls: published(
            vec![
                "https://www.googleapis.com/oauth2/v3/certs".into(),
                "http://localhost:8585/api/v1/system/config/jwks".into(),
            ],
            published::SECURITY_ENDPOINT,
        ),
        authority: published(
            "https://accounts.google.com".into(),
            published::AUTH_ENDPOINT,
        ),
        client_id: published(
            "123.apps.googleusercontent.com".into(),
            published::AUTH_ENDPOINT,
        ),
        ..Default::default()
    };
    let layered = base.with_published(&settings).unwrap();
    let sources: Vec<(&str, &[String], &[String])> = layered
        .auth
        .key_sources
        .iter()
        .map(|s| (s.url.as_str(), s.issuers.as_slice(), s.audiences.as_slice()))
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert_eq!(sources[0].0, "https://www.googleapis.com/oauth2/v3/certs");
    assert!(sources[0]
        .1
        .contains(&"https://accounts.google.com".to_string()));
    assert!(sources[0].1.contains(&"accounts.google.com".to_string()));
    assert_eq!(sources[0].2, ["123.apps.googleusercontent.com".to_string()]);
    // OpenMetadata's own key, at the gateway's upstream address, bound to OpenMetadata's issuer.
    assert_eq!(sources[1].0, "http://om:8585/api/v1/system/config/jwks");
    assert_eq!(sources[1].1, ["open-metadata.org".to_string()]);
    assert!(sources[1].2.is_empty());

    // An explicit keySources entry keeps its own binding.
    let base = load_yaml(
        "openmetadata:\n  followServerConfig: true\nauthenticationConfiguration:\n  keySources: [ { url: \"https://idp/jwks\", issuers: [ mine ] } ]\n",
        &[],
    )
    .unwrap();
    let layered = base.with_published(&settings).unwrap();
    assert_eq!(layered.auth.key_sources[0].issuers, ["mine".to_string()]);
    assert!(layered.auth.key_sources[0].audiences.is_empty());
}

#[test]
fn issuers_follow_each_providers_spelling_of_its_authority() {
    fn check(authority: &str, expected: &[&str]) {
        assert_eq!(
            published::issuers_for_authority(authority),
            expected,
            "{authority}"
        );
    }
    check(
        "https://dev-1.okta.com/oauth2/default",
        &[
            "https://dev-1.okta.com/oauth2/default",
            "https://dev-1.okta.com/oauth2/default/",
        ],
    );
    check(
        "https://tenant.auth0.com/",
        &["https://tenant.auth0.com", "https://tenant.auth0.com/"],
    );
    check(
        "https://accounts.google.com",
        &[
            "https://accounts.google.com",
            "https://accounts.google.com/",
            "https://accounts.google.com",
            "accounts.google.com",
        ],
    );
    check(
        "https://login.microsoftonline.com/t-1",
        &[
            "https://login.microsoftonline.com/t-1",
            "https://login.microsoftonline.com/t-1/",
            "https://login.microsoftonline.com/t-1/v2.0",
            "https://sts.windows.net/t-1/",
        ],
    );
    check("  ", &[]);
}
