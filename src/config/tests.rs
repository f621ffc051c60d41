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
            (Err(message), Err(part)) => assert!(message.contains(part), "{input}: {message}"),
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
