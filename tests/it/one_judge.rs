//! One judge for every entry point: the proxy, forward-auth and `inspect` give the same verdict
//! for the same request; OpenMetadata's encoded entity names reach the upstream byte for byte
//! while no reading of an escape dodges a rule; HEAD is judged as GET; a lower-case method is
//! refused the same way everywhere; OpenMetadata's own key is trusted as the server trusts it.

use crate::support::keys::{jwks, TestKey};
use crate::support::raw::raw_request;
use crate::support::{JwksServer, TestGateway, Upstream};
use serde_json::json;
use std::process::Command;

const ROUTES: &str = "routes:\n  - name: bots\n    match: { pathPrefix: /api/v1/bots }\n    require: { isBot: true }\n  - name: glossary-write\n    match: { pathPrefix: /api/v1/glossaries, methods: [PUT, DELETE] }\n    require: { rolesAny: [DataSteward] }\n  - name: lineage-read\n    match: { pathPrefix: /api/v1/lineage, methods: [GET] }\n    require: {}\n  - name: lineage-closed\n    match: { pathPrefix: /api/v1/lineage }\n    deny: true\n";

struct Setup {
    _directory: tempfile::TempDir,
    config: std::path::PathBuf,
    key: TestKey,
    upstream: Upstream,
    gateway: TestGateway,
}

/// One configuration file, read by the in-process gateway and by `om-gateway inspect`.
async fn setup() -> Setup {
    let key = TestKey::rsa_a();
    let upstream = Upstream::start().await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    let yaml = format!(
        "upstream:\n  url: {}\nopenmetadata:\n  trustServerKey: false\nauthenticationConfiguration:\n  publicKeyUrls: []\n  publicKeyFiles:\n    - {{ file: \"{}\", kid: key-a }}\n{ROUTES}",
        upstream.url(),
        key.public_pem_path().display()
    );
    std::fs::write(&config, &yaml).unwrap();
    let gateway = TestGateway::start_ready(&yaml).await;
    Setup {
        _directory: directory,
        config,
        key,
        upstream,
        gateway,
    }
}

/// The status `inspect` says the gateway would answer (200 for allow).
fn inspect_status(setup: &Setup, method: &str, target: &str, token: &str) -> u16 {
    let output = Command::new(env!("CARGO_BIN_EXE_om-gateway"))
        .args(["inspect", "--config"])
        .arg(&setup.config)
        .args(["--method", method, "--path", target, token])
        .env_remove("OM_GATEWAY_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let decision = stdout
        .lines()
        .find_map(|line| line.strip_prefix("decision  "))
        .unwrap_or_else(|| panic!("no decision line: {stdout}"));
    if decision.starts_with("allow") {
        assert_eq!(output.status.code(), Some(0), "{stdout}");
        return 200;
    }
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    decision
        .strip_prefix("deny ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("unreadable decision: {stdout}"))
}

async fn proxy_status(setup: &Setup, method: &str, target: &str, token: Option<&str>) -> u16 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|value| vec![("Authorization", value)])
        .unwrap_or_default();
    raw_request(setup.gateway.proxy(), method, target, &headers)
        .await
        .status
}

async fn forward_auth_status(
    setup: &Setup,
    method: &str,
    target: &str,
    token: Option<&str>,
) -> u16 {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("X-Original-Method", method), ("X-Original-URI", target)];
    if let Some(value) = bearer.as_deref() {
        headers.push(("Authorization", value));
    }
    raw_request(setup.gateway.proxy(), "GET", "/_gateway/auth", &headers)
        .await
        .status
}

#[tokio::test]
async fn proxy_forward_auth_and_inspect_give_the_same_verdict() {
    let setup = setup().await;
    let tokens = setup.key.tokens();
    let steward = tokens.mint(&om_gateway::cli::TokenRequest {
        roles: vec!["DataSteward".into()],
        ..tokens.request()
    });
    let forged = format!("{}.AAAA", tokens.personal().rsplit_once('.').unwrap().0);
    let credentials: Vec<(&str, Option<String>)> = vec![
        ("none", None),
        ("personal", Some(tokens.personal())),
        ("steward", Some(steward)),
        ("bot", Some(tokens.ingestion_bot())),
        ("expired", Some(tokens.expired())),
        ("forged", Some(forged)),
    ];
    let methods = ["GET", "HEAD", "PUT", "DELETE", "POST"];
    let targets = [
        "/api/v1/tables",
        "/api/v1/tables/name/%22svc.db.s3%2Fbucket%2Fkey%22",
        "/api/v1/bots/ingestion-bot",
        "/api/v1%2Fbots/ingestion-bot",
        "/api/v1/tables/..%2F..%2Fbots",
        "/api/v1/bots%3Bx",
        "/api/v1/glossaries/g",
        "/api/v1/lineage/table/x",
        "/api/v1/system/version",
        "/api/v1/x/../bots",
        "/api/v1/bots;x=1",
        "/signin",
    ];
    // A deterministic walk over the combinations (all of them would take minutes of `inspect`
    // processes): every credential, method and target appears, in varied company.
    let mut seen = std::collections::BTreeSet::new();
    let mut mismatches = Vec::new();
    for step in 0..60usize {
        let (label, token) = &credentials[step % credentials.len()];
        let method = methods[(step * 7 + step / 5) % methods.len()];
        let target = targets[(step * 5 + step / 3) % targets.len()];
        let proxy = proxy_status(&setup, method, target, token.as_deref()).await;
        let forward_auth = forward_auth_status(&setup, method, target, token.as_deref()).await;
        // `inspect` takes a token; without one it has nothing to explain.
        let inspect = token
            .as_ref()
            .map(|token| inspect_status(&setup, method, target, token));
        seen.insert(proxy);
        if proxy != forward_auth || inspect.is_some_and(|status| status != proxy) {
            mismatches.push(format!(
                "{label} {method} {target}: proxy {proxy}, forward-auth {forward_auth}, inspect {inspect:?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The walk reached every kind of verdict.
    for status in [200, 400, 401, 403] {
        assert!(seen.contains(&status), "no {status} among {seen:?}");
    }
}

#[tokio::test]
async fn an_sdk_quoted_name_with_a_slash_reaches_the_upstream_byte_for_byte() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    // metadata/ingestion/ometa/utils.py: quote("\"foo.bar/baz\"") == "%22foo.bar%2Fbaz%22".
    let target = "/api/v1/tables/name/%22foo.bar%2Fbaz%22?fields=owners";
    let status = proxy_status(&setup, "GET", target, Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(setup.upstream.last().uri, target);
    // A backslash and a semicolon in a name, encoded, pass too.
    let target = "/api/v1/containers/name/s3.bucket%5Cdir%3Bv2";
    assert_eq!(proxy_status(&setup, "GET", target, Some(&token)).await, 200);
    assert_eq!(setup.upstream.last().uri, target);
}

#[tokio::test]
async fn no_reading_of_an_escape_dodges_a_rule() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    for target in [
        "/api/v1%2Fbots/ingestion-bot",
        "/api/v1/bots%2Fingestion-bot",
        "/api/v1/tables/..%2Fbots",
        "/api/v1/tables%5C..%5Cbots",
        "/api/v1/bots%3Bx",
        "/api%2Fv1%2Fbots",
    ] {
        assert_eq!(
            proxy_status(&setup, "GET", target, Some(&token)).await,
            403,
            "proxy {target}"
        );
        assert_eq!(
            forward_auth_status(&setup, "GET", target, Some(&token)).await,
            403,
            "forward-auth {target}"
        );
    }
    // Outside /api/ is public, but not when a reading of the escape is an API path.
    assert_eq!(
        proxy_status(&setup, "GET", "/api%2Fv1%2Ftables", None).await,
        401
    );
    // Above the root in any reading, or a raw `;`: 400 before any judgement.
    for target in ["/api%2F..%2F..%2Fetc", "/api/v1/bots;x=1"] {
        assert_eq!(proxy_status(&setup, "GET", target, Some(&token)).await, 400);
    }
    let reached: Vec<String> = setup
        .upstream
        .received()
        .into_iter()
        .map(|request| request.uri)
        .collect();
    assert!(reached.is_empty(), "{reached:?}");
}

#[tokio::test]
async fn head_is_judged_by_the_rules_for_get() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    // lineage-read names GET: HEAD follows it, not the deny-all rule after it.
    assert_eq!(
        proxy_status(&setup, "HEAD", "/api/v1/lineage/table/x", Some(&token)).await,
        200
    );
    assert_eq!(
        forward_auth_status(&setup, "HEAD", "/api/v1/lineage/table/x", Some(&token)).await,
        200
    );
    assert_eq!(
        proxy_status(&setup, "POST", "/api/v1/lineage/table/x", Some(&token)).await,
        403
    );
}

#[tokio::test]
async fn a_lower_case_method_is_400_through_the_proxy_and_forward_auth() {
    let setup = setup().await;
    let token = setup.key.tokens().ingestion_bot();
    for method in ["delete", "Delete", "get"] {
        let proxy = raw_request(
            setup.gateway.proxy(),
            method,
            "/api/v1/glossaries/g",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert_eq!(proxy.status, 400, "proxy {method}: {}", proxy.body);
        assert!(proxy.body.contains("upper case"), "{}", proxy.body);
        assert_eq!(
            forward_auth_status(&setup, method, "/api/v1/glossaries/g", Some(&token)).await,
            400,
            "forward-auth {method}"
        );
    }
    assert!(setup.upstream.received().is_empty());
}

#[tokio::test]
async fn forward_auth_applies_the_feed_rule() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    let feed =
        "/api/v1/push/feed/?userId=0b9e5a9c-3d4f-4e1a-9d7b-1c2e3f4a5b6c&EIO=4&transport=polling";
    // A bearer token whose principal never resolved to that userId: the same refusal as the proxy.
    let answer = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/_gateway/auth",
        &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", feed),
            ("Authorization", &format!("Bearer {token}")),
        ],
    )
    .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("Socket user does not match token"));
    assert_eq!(proxy_status(&setup, "GET", feed, Some(&token)).await, 403);
    // No credential at all: 401 naming the feed's cookie, as the proxy says.
    let answer = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/_gateway/auth",
        &[("X-Original-Method", "GET"), ("X-Original-URI", feed)],
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert!(answer.body.contains("loggedInUser"), "{}", answer.body);
    // Two userId parameters disagree between readers: 400.
    assert_eq!(
        forward_auth_status(
            &setup,
            "GET",
            "/api/v1/push/feed/?userId=a&userId=b",
            Some(&token)
        )
        .await,
        400
    );
}

/// The upstream serves OpenMetadata's JWKS (key B, kid `om-kid`) at
/// `/api/v1/system/config/jwks`; the gateway lists only another key source.
async fn openmetadata_setup(extra: &str) -> (TestKey, JwksServer, TestGateway) {
    let om_key = TestKey::rsa_b().with_kid("om-kid");
    let other = JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await;
    let upstream = JwksServer::start(jwks(&[om_key.openmetadata_jwk()])).await;
    let yaml = format!(
        "upstream:\n  url: http://{}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\njwks:\n  minRefreshInterval: 1s\n{extra}",
        upstream.address,
        other.url()
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    // Both sources must have loaded before the first request.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let keys: serde_json::Value = gateway.keys().await;
        let count = keys["keys"].as_array().map_or(0, Vec::len);
        if count >= 2 || (extra.contains("trustServerKey: false") && count >= 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "keys: {keys}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(other);
    (om_key, upstream, gateway)
}

async fn status_with(gateway: &TestGateway, token: &str) -> u16 {
    crate::support::client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn openmetadata_key_is_trusted_without_being_listed_and_only_for_its_issuer() {
    let (om_key, _upstream, gateway) = openmetadata_setup("").await;
    let tokens = om_key.tokens();
    assert_eq!(status_with(&gateway, &tokens.ingestion_bot()).await, 200);
    let foreign_issuer = tokens.mint(&om_gateway::cli::TokenRequest {
        issuer: "https://idp.example".into(),
        ..tokens.request()
    });
    assert_eq!(status_with(&gateway, &foreign_issuer).await, 401);
    let keys: serde_json::Value = gateway.keys().await;
    let om = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == "om-kid")
        .unwrap_or_else(|| panic!("{keys}"));
    assert_eq!(om["issuers"], json!(["open-metadata.org"]));
    assert!(om["source"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/system/config/jwks"));
}

#[tokio::test]
async fn openmetadata_key_trust_can_be_turned_off() {
    let (om_key, _upstream, gateway) =
        openmetadata_setup("openmetadata:\n  trustServerKey: false\n").await;
    assert_eq!(
        status_with(&gateway, &om_key.tokens().ingestion_bot()).await,
        401
    );
}
