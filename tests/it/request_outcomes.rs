//! A request's whole life through the real gateway, for every outcome.

use crate::support::gateway::{basic_yaml, config_from};
use crate::support::keys::{jwks, raw_token, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use serde_json::{json, Value};

use crate::support::gateway::Stack as Setup;

/// An upstream, an OpenMetadata-form key endpoint with key A, and a ready gateway in front.
async fn setup_with(extra_yaml: &str) -> Setup {
    Setup::start_openmetadata_form(extra_yaml).await
}

async fn setup() -> Setup {
    setup_with("").await
}

async fn get(url: &str, token: Option<&str>) -> (u16, http::HeaderMap, Value) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn assert_error(
    status: u16,
    headers: &http::HeaderMap,
    body: &Value,
    expected_status: u16,
    message: &str,
) {
    assert_eq!(status, expected_status, "body: {body}");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(body["code"], expected_status, "body: {body}");
    assert_eq!(
        body["message"], message,
        "the exact message (a part such as \"Invalid token\" is in several refusals)"
    );
}

#[tokio::test]
async fn openmetadata_ingestion_bot_token_with_null_exp_is_forwarded_with_identity() {
    let setup = setup().await;
    let token = setup.key.tokens().ingestion_bot();
    // The token is shaped like OpenMetadata's: kid in the header, "exp": null in the claims.
    let claims: Value = {
        use base64::Engine;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(claims["exp"], Value::Null);
    assert_eq!(claims["iss"], "open-metadata.org");
    let (status, _, body) = get(
        &setup.gateway.url("/api/v1/tables?limit=10&fields=owners"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["paging"]["total"], 1);
    let seen = setup.upstream.last();
    assert_eq!(seen.uri, "/api/v1/tables?limit=10&fields=owners");
    assert_eq!(
        seen.header("x-auth-request-user").as_deref(),
        Some("ingestion-bot")
    );
    assert_eq!(
        seen.header("x-auth-request-email").as_deref(),
        Some("ingestion-bot@open-metadata.org")
    );
    assert_eq!(
        seen.header("x-auth-request-is-bot").as_deref(),
        Some("true")
    );
    assert_eq!(
        seen.header("x-auth-request-token-type").as_deref(),
        Some("BOT")
    );
    assert_eq!(
        seen.header("x-auth-request-roles").as_deref(),
        Some("IngestionBotRole")
    );
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}")),
        "Authorization passes unchanged"
    );
}

#[tokio::test]
async fn every_refusal_has_its_status_and_json_body() {
    let setup = setup().await;
    let tokens = setup.key.tokens();
    let url = setup.gateway.url("/api/v1/tables");

    let (status, headers, body) = get(&url, None).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Token not present",
    );
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"om-gateway\""
    );

    let (status, headers, body) = get(&url, Some(&tokens.expired())).await;
    assert_error(status, &headers, &body, 401, "Expired token!");
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer realm=\"om-gateway\", error=\"invalid_token\""
    );

    let wrong_key = TestKey::rsa_b().with_kid("key-a").tokens().personal();
    let (status, headers, body) = get(&url, Some(&wrong_key)).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Invalid token. Token verification failed. Public key mismatch.",
    );

    let (status, headers, body) = get(&url, Some("not-a-jwt")).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Invalid token. Token is not a well-formed JWT: expected three dot-separated parts.",
    );

    let unknown_kid = TestKey::rsa_b()
        .with_kid("nobody-knows")
        .tokens()
        .personal();
    let (status, headers, body) = get(&url, Some(&unknown_kid)).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Token signing key not found in configured public keys: no trusted key has kid `nobody-knows`",
    );

    // A PAT without exp: only bots may omit it by default.
    let no_exp = tokens.mint(&om_gateway::cli::TokenRequest {
        expires_in: None,
        ..tokens.request()
    });
    let (status, headers, body) = get(&url, Some(&no_exp)).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Invalid token. Token has no expiry (exp) and only bot tokens may omit it",
    );

    // Nothing reached the upstream.
    assert!(setup.upstream.received().is_empty());
}

#[tokio::test]
async fn alg_none_and_hmac_tokens_are_refused() {
    let setup = setup().await;
    let claims = json!({"sub": "admin", "email": "admin@open-metadata.org", "isBot": true, "exp": null, "iss": "open-metadata.org"});
    let none = raw_token(&json!({"alg": "none", "kid": "key-a"}), &claims, "");
    let hs256 = raw_token(
        &json!({"alg": "HS256", "kid": "key-a"}),
        &claims,
        "c2lnbmF0dXJl",
    );
    for (token, message) in [
        (
            none,
            "Not Authorized! Invalid token. Algorithm `none` is not accepted.",
        ),
        (
            hs256,
            "Not Authorized! Invalid token. Algorithm `HS256` is not accepted.",
        ),
    ] {
        let (status, headers, body) = get(&setup.gateway.url("/api/v1/tables"), Some(&token)).await;
        assert_error(status, &headers, &body, 401, message);
    }
    assert!(setup.upstream.received().is_empty());
}

#[tokio::test]
async fn bearer_extraction_rules() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    let url = setup.gateway.url("/api/v1/tables");
    // The scheme is case-insensitive.
    let response = client()
        .get(&url)
        .header("authorization", format!("bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Another scheme, an empty bearer, or two Authorization headers: 401.
    for value in ["Basic YWRtaW46YWRtaW4=", "Bearer ", "Bearer"] {
        let response = client()
            .get(&url)
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{value}");
    }
    let response = client()
        .get(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    for (path, token) in [
        ("/api/v1/tables", Some(token.as_str())),
        ("/api/v1/system/version", None),
    ] {
        let mut request = client()
            .get(setup.gateway.url(path))
            .header("x-auth-request-user", "admin")
            .header("X-Auth-Request-Email", "admin@open-metadata.org")
            .header("x-auth-request-roles", "Admin")
            .header("x-auth-request-is-bot", "true")
            .header("x-auth-request-token-type", "BOT");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 200, "{path}");
        let seen = setup.upstream.last();
        match token {
            Some(_) => {
                assert_eq!(seen.header("x-auth-request-user").as_deref(), Some("alice"));
                assert_eq!(
                    seen.header("x-auth-request-is-bot").as_deref(),
                    Some("false")
                );
                assert_eq!(
                    seen.header("x-auth-request-roles").as_deref(),
                    Some("DataConsumer")
                );
                assert_eq!(
                    seen.header("x-auth-request-token-type").as_deref(),
                    Some("PERSONAL_ACCESS")
                );
            }
            None => {
                for name in [
                    "x-auth-request-user",
                    "x-auth-request-email",
                    "x-auth-request-roles",
                    "x-auth-request-is-bot",
                    "x-auth-request-token-type",
                ] {
                    assert_eq!(seen.header(name), None, "{name} leaked on a public path");
                }
            }
        }
    }
}

#[tokio::test]
async fn the_first_key_url_refusing_connections_does_not_stop_the_second() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    // A port that refuses connections: bind, read the port, close.
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let upstream = Upstream::start().await;
    let yaml = basic_yaml(
        &upstream.url(),
        &[format!("http://{refused}/jwks.json"), jwks_server.url()],
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let (status, _, _) = get(
        &gateway.url("/api/v1/tables"),
        Some(&key.tokens().personal()),
    )
    .await;
    assert_eq!(status, 200);
    let (_, _, ready) = get(&gateway.admin_url("/readyz"), None).await;
    let states: Vec<&str> = ready["keySources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["failing", "ok"], "{ready}");
}

#[tokio::test]
async fn a_streamed_10_mb_request_body_arrives_intact() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    let body: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let expected_digest: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &body)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Sent as a stream of chunks (chunked transfer encoding), not one buffer.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let stream = reqwest::Body::wrap_stream(StreamOf(chunks.into_iter()));
    let response = client()
        .put(setup.gateway.url("/api/v1/tables/upload"))
        .bearer_auth(&token)
        .body(stream)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = setup.upstream.last();
    assert_eq!(seen.body_len, body.len());
    assert_eq!(seen.body_digest, expected_digest);
}

/// An iterator as a `Stream`, without a futures dependency.
struct StreamOf<I>(I);

impl<I: Iterator<Item = Result<Vec<u8>, std::io::Error>> + Unpin> futures_core::Stream
    for StreamOf<I>
{
    type Item = Result<Vec<u8>, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

#[tokio::test]
async fn forwarded_headers_request_id_and_hop_by_hop() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(&token)
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-request-id", "abc-123")
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "must not pass")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("x-request-id").unwrap(), "abc-123");
    let seen = setup.upstream.last();
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(setup.gateway.proxy().to_string())
    );
    assert_eq!(seen.header("x-secret-hop"), None);
    assert_eq!(seen.header("proxy-authorization"), None);
    // An insane request id is replaced by a generated one.
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(&token)
        .header("x-request-id", "bad id\twith spaces")
        .send()
        .await
        .unwrap();
    let generated = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(generated, "bad id\twith spaces");
    assert!(!generated.is_empty());
}

#[tokio::test]
async fn impersonation_is_for_bots_only() {
    let setup = setup().await;
    let tokens = setup.key.tokens();
    let url = setup.gateway.url("/api/v1/tables");
    let response = client()
        .get(&url)
        .bearer_auth(tokens.personal())
        .header("x-impersonate-user", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Only bot users can impersonate other users"
    );
    let response = client()
        .get(&url)
        .bearer_auth(tokens.ingestion_bot())
        .header("x-impersonate-user", "bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        setup
            .upstream
            .last()
            .header("x-impersonate-user")
            .as_deref(),
        Some("bob")
    );
}

#[tokio::test]
async fn default_public_paths_need_no_token_and_api_paths_do() {
    let setup = setup().await;
    for path in [
        "/api/v1/system/version",
        "/api/v1/system/config/auth",
        "/api/v1/users/login",
        "/",
        "/assets/index.js",
        "/table/some.fqn",
    ] {
        let (status, _, _) = get(&setup.gateway.url(path), None).await;
        assert_eq!(status, 200, "{path} should be public");
    }
    for path in [
        "/api/v1/tables",
        "/api/v1/system/versionx",
        "/api/v1/users",
        "/api",
    ] {
        let (status, _, _) = get(&setup.gateway.url(path), None).await;
        assert_eq!(status, 401, "{path} should need a token");
    }
}

#[tokio::test]
async fn route_policy_forbids_with_403_naming_the_rule() {
    let setup = setup_with(
        "routes:\n  - name: bots-write-pipelines\n    match: { pathPrefix: /api/v1/services/ingestionPipelines, methods: [POST] }\n    require: { isBot: true }\n",
    )
    .await;
    let tokens = setup.key.tokens();
    let response = client()
        .post(setup.gateway.url("/api/v1/services/ingestionPipelines"))
        .bearer_auth(tokens.personal())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("bots-write-pipelines"),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("isBot"),
        "{body}"
    );
    let response = client()
        .post(setup.gateway.url("/api/v1/services/ingestionPipelines"))
        .bearer_auth(tokens.ingestion_bot())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn principal_domain_is_enforced_for_users_not_bots() {
    let setup = setup_with("authorizerConfiguration:\n  principalDomain: open-metadata.org\n  enforcePrincipalDomain: true\n").await;
    let tokens = setup.key.tokens();
    let outsider = tokens.mint(&om_gateway::cli::TokenRequest {
        email: Some("eve@evil.example".into()),
        subject: "eve".into(),
        ..tokens.request()
    });
    let (status, headers, body) = get(&setup.gateway.url("/api/v1/tables"), Some(&outsider)).await;
    assert_error(
        status,
        &headers,
        &body,
        401,
        "Not Authorized! Email does not match the principal domain open-metadata.org",
    );
    let (status, _, _) = get(
        &setup.gateway.url("/api/v1/tables"),
        Some(&tokens.personal()),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn no_key_loaded_from_any_source_is_503_and_readyz_says_why() {
    let jwks_server = JwksServer::start("<html>not keys</html>".into()).await;
    let upstream = Upstream::start().await;
    let gateway = TestGateway::start(&basic_yaml(&upstream.url(), &[jwks_server.url()])).await;
    // Wait for the first fetch to fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while jwks_server.hits() == 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, _, body) = get(&gateway.admin_url("/readyz"), None).await;
    assert_eq!(status, 503);
    assert_eq!(body["keySources"][0]["url"], jwks_server.url());
    assert_eq!(body["keySources"][0]["state"], "failing");
    assert!(
        body["keySources"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{body}"
    );
    let (status, headers, body) = get(
        &gateway.url("/api/v1/tables"),
        Some(&TestKey::rsa_a().tokens().personal()),
    )
    .await;
    assert_error(
        status,
        &headers,
        &body,
        503,
        "Service unavailable: no signing key could be loaded from any key source",
    );
}

#[tokio::test]
async fn admin_endpoints_report_health_metrics_and_keys() {
    let setup = setup().await;
    let tokens = setup.key.tokens();
    // One token twice: the second use is a cache hit (two mints in different seconds differ).
    let personal = tokens.personal();
    get(&setup.gateway.url("/api/v1/tables"), Some(&personal)).await;
    get(&setup.gateway.url("/api/v1/tables"), Some(&personal)).await;
    get(
        &setup.gateway.url("/api/v1/tables"),
        Some(&tokens.expired()),
    )
    .await;
    get(&setup.gateway.url("/api/v1/tables"), None).await;
    let (status, _, body) = get(&setup.gateway.admin_url("/healthz"), None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
    let metrics = setup.gateway.metrics().await;
    let jwks_url = setup.jwks.url();
    for (name, labels, value) in [
        (
            "om_gateway_auth_decisions_total",
            &[("reason", "authorized"), ("result", "allow")][..],
            2.0,
        ),
        (
            "om_gateway_auth_decisions_total",
            &[("reason", "expired"), ("result", "deny")],
            1.0,
        ),
        (
            "om_gateway_auth_decisions_total",
            &[("reason", "token_missing"), ("result", "deny")],
            1.0,
        ),
        (
            "om_gateway_requests_total",
            &[("method", "GET"), ("route", "default"), ("status", "200")],
            2.0,
        ),
        (
            "om_gateway_requests_total",
            &[("method", "GET"), ("route", "default"), ("status", "401")],
            2.0,
        ),
        (
            "om_gateway_token_cache_requests_total",
            &[("result", "hit")],
            1.0,
        ),
        (
            "om_gateway_request_duration_seconds_count",
            &[("route", "default")],
            4.0,
        ),
        ("om_gateway_upstream_duration_seconds_count", &[], 2.0),
        ("om_gateway_inflight_requests", &[], 0.0),
        (
            "om_gateway_build_info",
            &[("version", om_gateway::VERSION)],
            1.0,
        ),
        ("om_gateway_jwks_keys", &[("url", jwks_url.as_str())], 1.0),
        (
            "om_gateway_jwks_fetch_total",
            &[("result", "ok"), ("url", jwks_url.as_str())],
            1.0,
        ),
    ] {
        assert_eq!(
            metrics.value(name, labels),
            Some(value),
            "{name}{labels:?}:\n{}",
            metrics.family(name)
        );
    }
    let fetched_at = metrics.get(
        "om_gateway_jwks_last_success_timestamp_seconds",
        &[("url", jwks_url.as_str())],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - fetched_at).abs() < 600.0, "{fetched_at} vs {now}");
    let (status, _, keys) = get(&setup.gateway.admin_url("/keys"), None).await;
    assert_eq!(status, 200);
    assert_eq!(keys["keys"][0]["kid"], "key-a");
    assert_eq!(keys["keys"][0]["alg"], "RS256");
    assert_eq!(keys["keys"][0]["source"], setup.jwks.url());
    assert!(keys["keys"][0]["fetchedAt"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn environment_alone_is_enough_to_run() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let keys_env = format!("[{}, http://127.0.0.1:1/unused]", jwks_server.url());
    let mut config = om_gateway::config::load(om_gateway::config::LoadInput {
        gateway_file: None,
        openmetadata_file: None,
        environment: &std::collections::HashMap::from([
            ("OM_GATEWAY_UPSTREAM_URL".to_string(), upstream.url()),
            ("AUTHENTICATION_PUBLIC_KEYS".to_string(), keys_env),
        ]),
    })
    .unwrap();
    // The two listed, and OpenMetadata's own key at the upstream (always trusted).
    assert_eq!(config.auth.key_sources.len(), 3);
    assert_eq!(
        config.auth.key_sources[2].url,
        format!(
            "{}/api/v1/system/config/jwks",
            upstream.url().trim_end_matches('/')
        )
    );
    let gateway = TestGateway::start_config(&mut config).await;
    gateway.wait_ready().await;
    let (status, _, _) = get(
        &gateway.url("/api/v1/tables"),
        Some(&key.tokens().personal()),
    )
    .await;
    assert_eq!(status, 200);
}

#[test]
fn config_errors_name_the_key_and_line() {
    let error = config_from("upstream:\n  url: http://localhost:8585\nroutes:\n  - name: x\n    match:\n      pathPrefx: /api\n", &[]).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("gateway.yaml:6:"), "{text}");
    assert!(text.contains("routes[0].match.pathPrefx"), "{text}");
    assert!(text.contains("unknown field"), "{text}");
    assert!(
        !text.contains("column"),
        "the position is said once, up front: {text}"
    );
    let error = config_from(
        "server:\n  listen: nowhere\njwks:\n  refreshInterval: 10 minutes\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(
        error.problems.len(),
        2,
        "every problem is reported: {error}"
    );
    assert_eq!(error.problems[0].line, Some(2));
    assert_eq!(error.problems[0].key, "server.listen");
    assert_eq!(error.problems[1].line, Some(4));
    assert_eq!(error.problems[1].key, "jwks.refreshInterval");
}

fn binary() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"))
}

#[test]
fn check_exits_2_naming_file_key_and_line_and_prints_the_effective_config() {
    let directory = tempfile::tempdir().unwrap();
    let bad = directory.path().join("bad.yaml");
    std::fs::write(&bad, "server:\n  listen: 0.0.0.0:8080\n  lissten: x\n").unwrap();
    let output = binary()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.yaml:3:") && stderr.contains("server.lissten"),
        "{stderr}"
    );

    let good = directory.path().join("good.yaml");
    std::fs::write(
        &good,
        "upstream:\n  url: http://user:secret@openmetadata:8585\n",
    )
    .unwrap();
    let output = binary()
        .args(["check", "--config"])
        .arg(&good)
        .env_remove("AUTHENTICATION_PUBLIC_KEYS")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("http://<redacted>@openmetadata:8585"),
        "{stdout}"
    );
    assert!(!stdout.contains("secret"), "{stdout}");
    // With no key URL configured, the upstream's own JWKS is trusted.
    assert!(
        stdout.contains("openmetadata:8585/api/v1/system/config/jwks"),
        "{stdout}"
    );
}

#[test]
fn demo_runs_and_every_case_gets_its_status() {
    let output = binary()
        .args(["demo", "--once", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "bot token",
        "-> 200",
        "expired token -> 401",
        "bad signature -> 401",
        "-> 403",
        "curl -s -i",
    ] {
        assert!(
            stdout.contains(line),
            "demo output lacks `{line}`:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn token_command_mints_what_the_gateway_accepts() {
    let setup = setup().await;
    let output = binary()
        .args(["token", "--private-key"])
        .arg(crate::support::keys::fixture("keys/rsa-a.pem"))
        .args([
            "--kid",
            "key-a",
            "--sub",
            "svc",
            "--bot",
            "--roles",
            "IngestionBotRole,DataSteward",
            "--expires",
            "never",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let token = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let (status, _, _) = get(&setup.gateway.url("/api/v1/tables"), Some(&token)).await;
    assert_eq!(status, 200);
    let seen = setup.upstream.last();
    assert_eq!(seen.header("x-auth-request-user").as_deref(), Some("svc"));
    assert_eq!(
        seen.header("x-auth-request-roles").as_deref(),
        Some("IngestionBotRole,DataSteward")
    );
}

#[tokio::test]
async fn healthcheck_command_exits_0_only_when_healthz_answers() {
    let setup = setup().await;
    let url = setup.gateway.admin_url("/healthz");
    let ok = tokio::task::spawn_blocking(move || {
        binary()
            .args(["healthcheck", "--url", &url])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ok.code(), Some(0));
    let admin_port = setup.gateway.admin().port().to_string();
    let from_env = tokio::task::spawn_blocking(move || {
        binary()
            .arg("healthcheck")
            .env("OM_GATEWAY_ADMIN_LISTEN", format!("0.0.0.0:{admin_port}"))
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        from_env.code(),
        Some(0),
        "the default URL follows OM_GATEWAY_ADMIN_LISTEN"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = tokio::task::spawn_blocking(move || {
        binary()
            .args(["healthcheck", "--url", &format!("http://{closed}/healthz")])
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(down.code(), Some(1));
}
