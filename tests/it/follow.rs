//! Issue 15: the gateway follows the running OpenMetadata server's published security settings.
//! A scripted stand-in (`support::openmetadata`) changes what it publishes while the gateway
//! runs; the gateway follows within `openmetadata.followInterval` (200ms here) without a
//! restart, and every bad answer keeps the last good settings.

use crate::support::keys::{jwks, TestKey};
use crate::support::openmetadata::{
    public_auth, public_authorizer, Answer, Script, StandIn, AUTH, AUTHORIZER, SECURITY,
};
use crate::support::{client, JwksServer, TestGateway};
use om_gateway::cli::TokenRequest;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// === helpers ===

/// Poll `check` every 20 ms until it holds, failing the test after 15 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A token no cache has seen, signed by `key`, with the claims `change` sets.
fn token(key: &TestKey, change: impl FnOnce(&mut TokenRequest)) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tokens = key.tokens();
    let mut request = tokens.request();
    request.extra_claims.push((
        "jti".into(),
        json!(format!("f{}", COUNTER.fetch_add(1, Ordering::SeqCst))),
    ));
    change(&mut request);
    tokens.mint(&request)
}

/// A person whose `email` and `upn` claims are both addresses.
fn person(key: &TestKey, email: &str, upn: &str) -> String {
    let (email, upn) = (email.to_string(), upn.to_string());
    token(key, move |request| {
        request.subject = "someone".into();
        request.email = Some(email);
        request.extra_claims.push(("upn".into(), json!(upn)));
    })
}

/// The status of GET /api/v1/tables with `token`, and the user the upstream was told.
async fn call(gateway: &TestGateway, stand_in: &StandIn, token: &str) -> (u16, Option<String>) {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let path = format!("/api/v1/tables/t{}", CALLS.fetch_add(1, Ordering::SeqCst));
    let status = client()
        .get(gateway.url(&path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16();
    let user = stand_in
        .seen_at(&path)
        .last()
        .and_then(|seen| seen.user.clone());
    (status, user)
}

async fn reads(gateway: &TestGateway, result: &str) -> f64 {
    gateway.metrics().await.counter(
        "om_gateway_server_config_reads_total",
        &[("result", result)],
    )
}

async fn readyz(gateway: &TestGateway) -> Value {
    client()
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz JSON")
}

fn public_script(claims: &[&str], domain: &str) -> Script {
    Script {
        auth: Answer::Json(public_auth(claims)),
        authorizer: Answer::Json(public_authorizer(domain)),
        security: Answer::Json(json!({})),
        admin_token: "bot-token".into(),
        etag: None,
    }
}

/// Key A published by a key server, the stand-in as the upstream, and a gateway that follows
/// the stand-in's public endpoints every 200ms and enforces the principal domain;
/// `authorizer_extra` adds lines (indented two spaces) to `authorizerConfiguration`.
struct Following {
    key: TestKey,
    _keys: JwksServer,
    stand_in: StandIn,
    gateway: TestGateway,
}

async fn following(script: Script, authorizer_extra: &str) -> Following {
    following_with(script, authorizer_extra, "2s").await
}

/// `following` with `jwks.fetchTimeout` (which also bounds each settings read) set.
async fn following_with(script: Script, authorizer_extra: &str, fetch_timeout: &str) -> Following {
    let key = TestKey::rsa_a();
    let keys = JwksServer::start(jwks(&[key.jwk()])).await;
    let stand_in = StandIn::start(script).await;
    let yaml = format!(
        "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\nauthorizerConfiguration:\n  enforcePrincipalDomain: true\n{authorizer_extra}openmetadata:\n  trustServerKey: false\n  followServerConfig: true\n  followInterval: 200ms\njwks:\n  minRefreshInterval: 1s\n  fetchTimeout: {fetch_timeout}\n",
        stand_in.url(),
        keys.url()
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    Following {
        key,
        _keys: keys,
        stand_in,
        gateway,
    }
}

// === following ===

#[tokio::test]
async fn follows_the_published_principal_claims_and_domain_while_running() {
    let setup = following(public_script(&["upn"], "a.org"), "").await;
    let (gateway, stand_in, key) = (&setup.gateway, &setup.stand_in, &setup.key);
    // The file names no domain and no claims: the server's upn and a.org apply.
    let alice = person(key, "alice@a.org", "ally@a.org");
    eventually("the published claims and domain", async || {
        call(gateway, stand_in, &alice).await == (200, Some("ally".into()))
    })
    .await;

    stand_in.update(|script| {
        script.auth = Answer::Json(public_auth(&["email"]));
        script.authorizer = Answer::Json(public_authorizer("b.org"));
    });
    let bob = person(key, "bob@b.org", "bobby@b.org");
    eventually("the changed claims and domain", async || {
        call(gateway, stand_in, &bob).await == (200, Some("bob".into()))
    })
    .await;
    let alice = person(key, "alice@a.org", "ally@a.org");
    assert_eq!(call(gateway, stand_in, &alice).await.0, 401);

    let readyz = readyz(gateway).await;
    let server = &readyz["serverConfig"];
    assert_eq!(server["enabled"], true, "{readyz}");
    assert_eq!(server["state"], "ok", "{readyz}");
    assert!(server["lastSuccess"].as_u64().unwrap_or(0) > 0, "{readyz}");
    assert!(reads(gateway, "ok").await >= 1.0);
    assert!(
        gateway.metrics().await.counter(
            "om_gateway_server_config_last_success_timestamp_seconds",
            &[]
        ) > 0.0
    );
    // The public endpoints are read without a credential.
    assert!(stand_in
        .seen_at(AUTH)
        .iter()
        .all(|seen| seen.authorization.is_none()));
}

#[tokio::test]
async fn with_the_credential_follows_key_urls_and_allowed_domains() {
    let (key_a, key_b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let keys_a = JwksServer::start(jwks(&[key_a.jwk()])).await;
    let keys_b = JwksServer::start(jwks(&[key_b.jwk()])).await;
    let security = |url: &str, allowed: &[&str]| {
        Answer::Json(json!({
            "authenticationConfiguration": {
                "provider": "google",
                "publicKeyUrls": [url, "http://localhost:8585/api/v1/system/config/jwks"],
                "jwtPrincipalClaims": ["email"],
                "jwtPrincipalClaimsMapping": [],
                "authority": "",
                "clientId": "",
                "oidcConfiguration": {"secret": "do-not-log-me"},
            },
            "authorizerConfiguration": {
                "className": "org.openmetadata.service.security.DefaultAuthorizer",
                "containerRequestFilter": "org.openmetadata.service.security.JwtFilter",
                "adminPrincipals": ["admin"],
                "principalDomain": "a.org",
                "enforcePrincipalDomain": true,
                "allowedDomains": allowed,
                "enableSecureSocketConnection": false,
                "useRolesFromProvider": false,
            }
        }))
    };
    let stand_in = StandIn::start(Script {
        security: security(&keys_a.url(), &["a.org", "c.org"]),
        ..public_script(&["email"], "a.org")
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let token_file = directory.path().join("credential");
    std::fs::write(&token_file, "bot-token\n").unwrap();
    // No key source in the file: following is on by default, and the keys come from the server.
    let yaml = format!(
        "upstream:\n  url: {}\nopenmetadata:\n  trustServerKey: false\n  followInterval: 200ms\n  followToken:\n    tokenFile: {}\njwks:\n  minRefreshInterval: 1s\n  fetchTimeout: 2s\n",
        stand_in.url(),
        token_file.display()
    );
    let gateway = TestGateway::start(&yaml).await;
    let carol = person(&key_a, "carol@c.org", "carol@c.org");
    eventually("key A trusted, c.org allowed", async || {
        call(&gateway, &stand_in, &carol).await == (200, Some("carol".into()))
    })
    .await;

    stand_in.update(|script| script.security = security(&keys_b.url(), &["d.org"]));
    let dave = person(&key_b, "dave@d.org", "dave@d.org");
    eventually("key B trusted, d.org allowed", async || {
        call(&gateway, &stand_in, &dave).await == (200, Some("dave".into()))
    })
    .await;
    let carol = person(&key_a, "carol@c.org", "carol@c.org");
    assert_eq!(
        call(&gateway, &stand_in, &carol).await.0,
        401,
        "key A is gone"
    );
    let carol_b = person(&key_b, "carol@c.org", "carol@c.org");
    assert_eq!(
        call(&gateway, &stand_in, &carol_b).await.0,
        401,
        "c.org is no longer allowed"
    );
    // The credential goes to the admin endpoint only.
    assert!(stand_in
        .seen_at(SECURITY)
        .iter()
        .all(|seen| seen.authorization.as_deref() == Some("Bearer bot-token")));
    assert!(stand_in
        .seen_at(AUTHORIZER)
        .iter()
        .all(|seen| seen.authorization.is_none()));
    // The server's own JWKS, listed as it sees itself, is not trusted under that address.
    let keys: Value = gateway.keys().await;
    assert!(!keys.to_string().contains("localhost:8585"), "{keys}");
    let readyz = readyz(&gateway).await.to_string();
    assert!(
        !readyz.contains("do-not-log-me") && !readyz.contains("bot-token"),
        "{readyz}"
    );

    // A refused credential changes nothing.
    stand_in.update(|script| {
        script.admin_token = "rotated".into();
        script.security = security(&keys_a.url(), &["a.org"]);
    });
    let before = reads(&gateway, "unauthorized").await;
    eventually("the refused credential counted", async || {
        reads(&gateway, "unauthorized").await > before
    })
    .await;
    let dave = person(&key_b, "dave@d.org", "dave@d.org");
    assert_eq!(call(&gateway, &stand_in, &dave).await.0, 200);
}

#[tokio::test]
async fn the_sso_key_source_is_bound_to_the_published_authority_and_client_id() {
    let key = TestKey::rsa_a();
    let keys = JwksServer::start(jwks(&[key.jwk()])).await;
    let auth = json!({
        "provider": "okta",
        "jwtPrincipalClaims": ["email"],
        "jwtPrincipalClaimsMapping": [],
        "authority": "https://idp.example.com/oauth2/default",
        "clientId": "om-ui",
    });
    let stand_in = StandIn::start(Script {
        auth: Answer::Json(auth),
        security: Answer::Json(json!({
            "authenticationConfiguration": {
                "publicKeyUrls": [keys.url()],
                "jwtPrincipalClaims": ["email"],
                "authority": "https://idp.example.com/oauth2/default",
                "clientId": "om-ui",
            },
            "authorizerConfiguration": {"principalDomain": "open-metadata.org", "adminPrincipals": ["admin"]},
        })),
        ..public_script(&["email"], "open-metadata.org")
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let token_file = directory.path().join("bot-token");
    std::fs::write(&token_file, "bot-token").unwrap();
    // OpenMetadata's own key is trusted (the default), so its JWKS is a source too.
    let yaml = format!(
        "upstream:\n  url: {}\nopenmetadata:\n  followInterval: 200ms\n  followToken:\n    tokenFile: {}\njwks:\n  minRefreshInterval: 1s\n  fetchTimeout: 2s\n",
        stand_in.url(),
        token_file.display()
    );
    let gateway = TestGateway::start(&yaml).await;
    let ours = token(&key, |request| {
        request.issuer = "https://idp.example.com/oauth2/default".into();
        request.extra_claims.push(("aud".into(), json!("om-ui")));
    });
    eventually(
        "the SSO key trusted for its issuer and audience",
        async || call(&gateway, &stand_in, &ours).await.0 == 200,
    )
    .await;
    let other_client = token(&key, |request| {
        request.issuer = "https://idp.example.com/oauth2/default".into();
        request
            .extra_claims
            .push(("aud".into(), json!("someone-else")));
    });
    assert_eq!(call(&gateway, &stand_in, &other_client).await.0, 401);
    let other_issuer = token(&key, |request| {
        request.issuer = "open-metadata.org".into();
        request.extra_claims.push(("aud".into(), json!("om-ui")));
    });
    assert_eq!(call(&gateway, &stand_in, &other_issuer).await.0, 401);
    // OpenMetadata's own JWKS stays bound to OpenMetadata's issuer.
    let keys: Value = gateway.keys().await;
    let own = keys["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|source| {
            source["url"]
                .as_str()
                .is_some_and(|url| url.ends_with("/api/v1/system/config/jwks"))
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(own["issuers"], json!(["open-metadata.org"]), "{keys}");
}

// === bad answers ===

#[tokio::test]
async fn bad_answers_keep_the_last_good_settings() {
    let setup = following(public_script(&["upn"], "a.org"), "").await;
    let (gateway, stand_in, key) = (&setup.gateway, &setup.stand_in, &setup.key);
    let alice = || person(key, "alice@a.org", "ally@a.org");
    let first = alice();
    eventually("the first good answer", async || {
        call(gateway, stand_in, &first).await == (200, Some("ally".into()))
    })
    .await;
    let html = b"<!DOCTYPE html><html><body>Sign in</body></html>".to_vec();
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "http_error",
            Answer::Raw {
                status: 503,
                content_type: "application/json",
                body: b"{}".to_vec(),
            },
            "503",
        ),
        (
            "not_json",
            Answer::Raw {
                status: 200,
                content_type: "text/html",
                body: html,
            },
            "text/html",
        ),
        (
            "invalid_document",
            Answer::Raw {
                status: 200,
                content_type: "application/json",
                body: b"{\"jwtPrincipalClaims\": [".to_vec(),
            },
            "JSON",
        ),
        (
            "too_large",
            Answer::Raw {
                status: 200,
                content_type: "application/json",
                body: vec![b' '; 2 << 20],
            },
            "larger",
        ),
        (
            "invalid_values",
            Answer::Json(public_auth(&[])),
            "jwtPrincipalClaims",
        ),
        ("transport_error", Answer::Drop, "request failed"),
    ];
    for (result, answer, reason) in cases {
        let before = reads(gateway, result).await;
        stand_in.update(|script| script.auth = answer);
        eventually(&format!("a {result} read"), async || {
            reads(gateway, result).await > before
        })
        .await;
        assert_eq!(
            call(gateway, stand_in, &alice()).await,
            (200, Some("ally".into())),
            "{result}: the last good settings stay"
        );
        let readyz = readyz(gateway).await;
        let server = &readyz["serverConfig"];
        assert_eq!(server["state"], "failing", "{result}: {readyz}");
        assert!(
            server["lastError"].as_str().unwrap_or("").contains(reason),
            "{result}: {readyz}"
        );
        assert_eq!(
            readyz["status"], "ready",
            "{result}: a failing read does not make the gateway unready"
        );
    }
    // A good answer again is followed again.
    stand_in.update(|script| script.auth = Answer::Json(public_auth(&["email"])));
    let again = alice();
    eventually("the next good answer", async || {
        call(gateway, stand_in, &again).await == (200, Some("alice".into()))
    })
    .await;
    assert_eq!(readyz(gateway).await["serverConfig"]["state"], "ok");
}

#[tokio::test]
async fn revalidates_with_the_etag_the_server_sent() {
    let setup = following(
        Script {
            etag: Some("\"v1\"".into()),
            ..public_script(&["upn"], "a.org")
        },
        "",
    )
    .await;
    let (gateway, stand_in) = (&setup.gateway, &setup.stand_in);
    eventually("a 304 answer", async || {
        reads(gateway, "not_modified").await >= 1.0
    })
    .await;
    assert!(stand_in
        .seen_at(AUTH)
        .iter()
        .any(|seen| seen.if_none_match.as_deref() == Some("\"v1\"")));
    let alice = person(&setup.key, "alice@a.org", "ally@a.org");
    assert_eq!(
        call(gateway, stand_in, &alice).await,
        (200, Some("ally".into()))
    );
}

#[tokio::test]
async fn startup_does_not_wait_for_the_server() {
    // The first read hangs (60 s, allowed 30 s): a start that waited for it would return with
    // the read failed, not still loading.
    let setup = following_with(
        Script {
            auth: Answer::Slow(Duration::from_secs(60), public_auth(&["upn"])),
            ..public_script(&["upn"], "a.org")
        },
        "  principalDomain: file.org\n",
        "30s",
    )
    .await;
    // Ready (keys loaded) and serving with the file's settings while the server hangs.
    let (gateway, stand_in) = (&setup.gateway, &setup.stand_in);
    let readyz = readyz(gateway).await;
    assert_eq!(readyz["status"], "ready", "{readyz}");
    assert_eq!(readyz["serverConfig"]["state"], "loading", "{readyz}");
    let file_user = person(&setup.key, "frank@file.org", "f@file.org");
    assert_eq!(
        call(gateway, stand_in, &file_user).await,
        (200, Some("frank".into()))
    );
}

#[tokio::test]
async fn a_reload_keeps_the_servers_settings_and_explicit_values_win() {
    let key = TestKey::rsa_a();
    let keys = JwksServer::start(jwks(&[key.jwk()])).await;
    let stand_in = StandIn::start(public_script(&["upn"], "a.org")).await;
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("gateway.yaml");
    let yaml = |claims: &str| {
        format!(
            "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n{claims}authorizerConfiguration:\n  enforcePrincipalDomain: true\nopenmetadata:\n  trustServerKey: false\n  followServerConfig: true\n  followInterval: 200ms\n",
            stand_in.url(),
            keys.url()
        )
    };
    std::fs::write(&file, yaml("")).unwrap();
    let environment: HashMap<String, String> = HashMap::new();
    let mut config = om_gateway::config::load_files(Some(&file), None, &environment).unwrap();
    let gateway = TestGateway::start_config(&mut config).await;
    let alice = person(&key, "alice@a.org", "ally@a.org");
    eventually("the published claims", async || {
        call(&gateway, &stand_in, &alice).await == (200, Some("ally".into()))
    })
    .await;
    // A reload of an unchanged file keeps following the server.
    gateway.server.reload(&environment).unwrap();
    let alice = person(&key, "alice@a.org", "ally@a.org");
    assert_eq!(
        call(&gateway, &stand_in, &alice).await,
        (200, Some("ally".into()))
    );
    // A value set in the file wins over the server's.
    std::fs::write(&file, yaml("  jwtPrincipalClaims: [ email ]\n")).unwrap();
    gateway.server.reload(&environment).unwrap();
    let alice = person(&key, "alice@a.org", "ally@a.org");
    assert_eq!(
        call(&gateway, &stand_in, &alice).await,
        (200, Some("alice".into()))
    );
    // And keeps winning after the next reads.
    let reads_now = reads(&gateway, "ok").await + reads(&gateway, "not_modified").await;
    eventually("two more reads", async || {
        reads(&gateway, "ok").await + reads(&gateway, "not_modified").await >= reads_now + 2.0
    })
    .await;
    let alice = person(&key, "alice@a.org", "ally@a.org");
    assert_eq!(
        call(&gateway, &stand_in, &alice).await,
        (200, Some("alice".into()))
    );
}

// === check and doctor ===

/// Run the binary with `args` on a blocking thread (so the stand-in keeps answering it).
async fn binary(args: &[&str], config: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"));
    command.args(args).arg("--config").arg(config);
    for name in [
        "AUTHENTICATION_PUBLIC_KEYS",
        "OM_GATEWAY_CONFIG",
        "OM_GATEWAY_UPSTREAM_URL",
        "OM_GATEWAY_FOLLOW_TOKEN",
        "AUTHORIZER_PRINCIPAL_DOMAIN",
        "AUTHENTICATION_JWT_PRINCIPAL_CLAIMS",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_shows_where_each_effective_value_came_from() {
    let stand_in = StandIn::start(public_script(&["upn"], "server.org")).await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream:\n  url: {}\nauthorizerConfiguration:\n  enforcePrincipalDomain: true\n",
            stand_in.url()
        ),
    )
    .unwrap();
    let (code, output) = binary(
        &["check"],
        &config,
        &[("AUTHORIZER_ADMIN_PRINCIPALS", "[root]")],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    // The effective values, the server's included...
    assert!(output.contains("principalDomain: server.org"), "{output}");
    assert!(output.contains("- upn"), "{output}");
    // ...and each one's origin.
    for line in [
        "#   authenticationConfiguration.jwtPrincipalClaims: server /api/v1/system/config/auth",
        "#   authorizerConfiguration.principalDomain: server /api/v1/system/config/authorizer",
        "#   authorizerConfiguration.enforcePrincipalDomain: file",
        "#   authorizerConfiguration.adminPrincipals: env AUTHORIZER_ADMIN_PRINCIPALS",
        "#   upstream.url: file",
        "#   every other key: default",
    ] {
        assert!(output.contains(line), "missing `{line}` in:\n{output}");
    }

    // A server that cannot be read: the file's values, and why.
    stand_in.update(|script| {
        script.authorizer = Answer::Raw {
            status: 502,
            content_type: "text/html",
            body: b"<html>bad gateway</html>".to_vec(),
        }
    });
    let (code, output) = binary(&["check"], &config, &[]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("principalDomain: open-metadata.org"),
        "{output}"
    );
    assert!(
        output.contains("# OpenMetadata's published settings were not applied:")
            && output.contains("HTTP status 502"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_each_difference_from_the_servers_settings() {
    let key = TestKey::rsa_a();
    let keys = JwksServer::start(jwks(&[key.jwk()])).await;
    let stand_in = StandIn::start(Script {
        security: Answer::Json(json!({
            "authenticationConfiguration": {"publicKeyUrls": [keys.url(), "https://idp.example.com/jwks"], "jwtPrincipalClaims": ["email"]},
            "authorizerConfiguration": {"principalDomain": "server.org", "adminPrincipals": ["admin", "boss"], "enforcePrincipalDomain": false, "allowedDomains": []},
        })),
        ..public_script(&["email"], "server.org")
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\nauthorizerConfiguration:\n  principalDomain: file.org\nopenmetadata:\n  trustServerKey: false\njwks:\n  fetchTimeout: 2s\n",
            stand_in.url(),
            keys.url()
        ),
    )
    .unwrap();
    let (code, output) = binary(
        &["doctor"],
        &config,
        &[("OM_GATEWAY_FOLLOW_TOKEN", "bot-token")],
    )
    .await;
    assert_eq!(code, 0, "{output}");
    let drift: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("WARNING") && line.contains("drift"))
        .collect();
    // Claims (default vs email), key URLs, domain, admins; enforcePrincipalDomain and
    // allowedDomains agree.
    assert_eq!(drift.len(), 4, "{output}");
    assert!(
        drift.iter().any(
            |line| line.contains("authorizerConfiguration.principalDomain")
                && line.contains("file.org")
                && line.contains("server.org")
                && line.contains("explicitly")
        ),
        "{output}"
    );
    assert!(
        drift.iter().any(
            |line| line.contains("authenticationConfiguration.publicKeyUrls")
                && line.contains("https://idp.example.com/jwks")
        ),
        "{output}"
    );
    assert!(
        drift.iter().any(
            |line| line.contains("authorizerConfiguration.adminPrincipals")
                && line.contains("boss")
                && line.contains("following is off")
        ),
        "{output}"
    );
    assert!(!output.contains("bot-token"), "{output}");

    // An unreadable answer is reported, not a failure of the gateway's own configuration.
    stand_in.update(|script| {
        script.auth = Answer::Raw {
            status: 200,
            content_type: "text/html",
            body: b"<html>sign in</html>".to_vec(),
        }
    });
    let (code, output) = binary(&["doctor"], &config, &[]).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("OpenMetadata's published settings") && output.contains("not JSON"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follow_token_never_reaches_the_logs() {
    let secret = "follow-secret-0123456789";
    let stand_in = StandIn::start(Script {
        admin_token: secret.into(),
        security: Answer::Json(json!({
            "authenticationConfiguration": {"jwtPrincipalClaims": ["email"]},
            "authorizerConfiguration": {"principalDomain": "a.org"},
        })),
        ..public_script(&["email"], "a.org")
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\nupstream:\n  url: {}\nopenmetadata:\n  trustServerKey: false\n  followInterval: 200ms\n",
            stand_in.url()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"))
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("OM_GATEWAY_CONFIG")
        .env_remove("AUTHENTICATION_PUBLIC_KEYS")
        .env("OM_GATEWAY_FOLLOW_TOKEN", secret)
        .env("OM_GATEWAY_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually("two good reads of the admin endpoint", async || {
        stand_in.seen_at(SECURITY).len() >= 2
    })
    .await;
    // Now a refused credential, logged with its reason.
    stand_in.update(|script| script.admin_token = "another".into());
    let seen = stand_in.seen_at(SECURITY).len();
    eventually("two refused reads", async || {
        stand_in.seen_at(SECURITY).len() >= seen + 2
    })
    .await;
    child.kill().unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        logs.contains("following OpenMetadata's published settings"),
        "{logs}"
    );
    assert!(logs.contains("the follow credential was refused"), "{logs}");
    assert!(!logs.contains(secret), "the token is in the logs:\n{logs}");
}
