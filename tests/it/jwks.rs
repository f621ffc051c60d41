//! The key store: rotation, outages and hostile key endpoints, seen through the real
//! gateway. Every key source is a real HTTP(S) server on 127.0.0.1:0.

use crate::support::keys::{fixture, jwks, raw_token, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use om_gateway::cli::TokenRequest;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// === helpers ===

/// A gateway YAML: `auth` goes under authenticationConfiguration, `jwks` under jwks (both already
/// indented by two spaces).
fn gateway_yaml(upstream: &Upstream, auth: &str, jwks: &str) -> String {
    format!(
        "upstream:\n  url: {}\nopenmetadata:\n  trustServerKey: false\nauthenticationConfiguration:\n{auth}jwks:\n{jwks}",
        upstream.url()
    )
}

fn key_urls(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!("  publicKeyUrls: [ {} ]\n", quoted.join(", "))
}

/// What a client gets for GET /api/v1/tables with `token`.
async fn status(http: &reqwest::Client, gateway: &TestGateway, token: &str) -> u16 {
    http.get(gateway.url("/api/v1/tables"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// A token no cache has seen: same key and kid, a unique `jti`.
fn fresh_token(key: &TestKey, change: impl FnOnce(&mut TokenRequest)) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let tokens = key.tokens();
    let mut request = tokens.request();
    request.extra_claims.push((
        "jti".into(),
        json!(format!("t{}", COUNTER.fetch_add(1, Ordering::SeqCst))),
    ));
    change(&mut request);
    tokens.mint(&request)
}

/// GET an admin endpoint as JSON, whatever its status.
async fn admin_json(http: &reqwest::Client, gateway: &TestGateway, path: &str) -> Value {
    http.get(gateway.admin_url(path))
        .send()
        .await
        .expect("admin request")
        .json()
        .await
        .expect("admin JSON")
}

/// The /keys entry of one source.
async fn source(http: &reqwest::Client, gateway: &TestGateway, url: &str) -> Value {
    let keys = admin_json(http, gateway, "/keys").await;
    keys["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .find(|s| s["url"] == url)
        .cloned()
        .unwrap_or_else(|| panic!("no source {url} in {keys}"))
}

/// Poll `check` every 20 ms until it holds, failing the test after `limit`.
async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An address that refuses connections: bound, read, closed.
fn refused_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A server that answers every request with an endless chunked body (no Content-Length),
/// keeping the most bytes it managed to write on one connection. Stops by itself after 64 MiB.
async fn endless_chunked_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let payload = vec![b' '; 64 * 1024];
                let chunk = [
                    format!("{:x}\r\n", payload.len()).into_bytes(),
                    payload,
                    b"\r\n".to_vec(),
                ]
                .concat();
                for sent in 1..=1024 {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    counter.fetch_max(sent * 64 * 1024, Ordering::SeqCst);
                }
            });
        }
    });
    (format!("http://{address}/jwks.json"), written)
}

/// The RSA modulus of a PEM public key, whatever its size (the gateway refuses 1024-bit keys, so
/// its parser cannot be used to read this one).
fn raw_modulus(pem: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).unwrap();
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents).unwrap();
    match spki.parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => rsa.modulus.to_vec(),
        _ => panic!("not an RSA key"),
    }
}

// === per-source state, schedule and revalidation ===

#[tokio::test]
async fn per_source_state_shows_in_readyz_keys_and_metrics() {
    let key = TestKey::rsa_a();
    let good = JwksServer::start(jwks(&[key.jwk()])).await;
    good.update(|b| b.headers.push(("etag".into(), "\"v1\"".into())));
    let broken = JwksServer::start("oops".into()).await;
    broken.update(|b| b.status = 500);
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[good.url(), broken.url()]),
        "  minRefreshInterval: 200ms\n  refreshInterval: 10m\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    eventually(
        "the broken source to be tried",
        Duration::from_secs(5),
        async || source(&http, &gateway, &broken.url()).await["consecutiveFailures"] != 0,
    )
    .await;

    let ready = http.get(gateway.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["keySources"].as_array().unwrap().len(), 2, "{ready}");

    let ok = source(&http, &gateway, &good.url()).await;
    assert_eq!(ok["state"], "ok", "{ok}");
    assert_eq!(ok["keys"], 1);
    assert_eq!(ok["kids"], json!(["key-a"]));
    assert_eq!(ok["etag"], "\"v1\"", "{ok}");
    assert_eq!(ok["consecutiveFailures"], 0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let last_success = ok["lastSuccess"].as_u64().expect("lastSuccess");
    assert!(now.abs_diff(last_success) < 60, "{ok}");
    // Next refresh about refreshInterval (10m, up to 10 % jitter) away.
    let next = ok["nextRefresh"].as_u64().expect("nextRefresh");
    assert!(
        (now + 500..=now + 601).contains(&next),
        "next {next}, now {now}"
    );

    let failing = source(&http, &gateway, &broken.url()).await;
    assert_eq!(failing["state"], "failing", "{failing}");
    assert_eq!(failing["keys"], 0);
    assert!(
        failing["lastError"].as_str().unwrap().contains("500"),
        "{failing}"
    );

    let keys = admin_json(&http, &gateway, "/keys").await;
    let trusted = &keys["keys"][0];
    assert_eq!(trusted["kid"], "key-a");
    assert_eq!(trusted["source"], good.url().as_str());
    assert!(trusted["fetchedAt"].as_u64().unwrap() > 0);

    let metrics = gateway.metrics().await;
    let (good_url, broken_url) = (good.url(), broken.url());
    assert!(
        metrics.value(
            "om_gateway_jwks_fetch_total",
            &[("url", &good_url), ("result", "ok")]
        ) >= Some(1.0),
        "{}",
        metrics.family("om_gateway_jwks_fetch_total")
    );
    assert!(
        metrics.value(
            "om_gateway_jwks_fetch_total",
            &[("url", &broken_url), ("result", "http_error")]
        ) >= Some(1.0)
    );
    assert_eq!(
        metrics.value("om_gateway_jwks_keys", &[("url", &good_url)]),
        Some(1.0)
    );
    let stamp = metrics
        .value(
            "om_gateway_jwks_last_success_timestamp_seconds",
            &[("url", &good_url)],
        )
        .unwrap();
    assert!((stamp as u64).abs_diff(now) < 60);
}

#[tokio::test]
async fn a_short_max_age_brings_the_next_fetch_forward_and_304_keeps_the_keys() {
    let key = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[key.jwk()])).await;
    server.update(|b| {
        b.headers
            .push(("cache-control".into(), "public, max-age=1".into()));
        b.headers.push(("etag".into(), "\"rev-1\"".into()));
    });
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[server.url()]),
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    // refreshInterval alone would wait ten minutes; max-age=1 asks for about one second.
    eventually("a second fetch", Duration::from_secs(5), async || {
        server.hits() >= 2
    })
    .await;
    let url = server.url();
    eventually(
        "the revalidation to be counted",
        Duration::from_secs(5),
        async || {
            let metrics = gateway.metrics().await;
            metrics.value(
                "om_gateway_jwks_fetch_total",
                &[("url", &url), ("result", "not_modified")],
            ) >= Some(1.0)
        },
    )
    .await;
    // The server answers 304 only to If-None-Match: "rev-1", so the second fetch revalidated;
    // the keys stayed.
    let state = source(&http, &gateway, &url).await;
    assert_eq!(state["kids"], json!(["key-a"]), "{state}");
    assert_eq!(state["state"], "ok");
    assert_eq!(
        status(&http, &gateway, &fresh_token(&key, |_| {})).await,
        200
    );
}

// === unknown kid: single flight, floor, rotation ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_unknown_kids_cause_one_fetch_per_source() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::rsa_b();
    let first = JwksServer::start(jwks(&[key_a.jwk()])).await;
    let second = JwksServer::start(jwks(&[key_b.jwk()])).await;
    // A slow answer keeps the shared fetch open while the other requests pile up behind it.
    for server in [&first, &second] {
        server.update(|b| b.delay = Duration::from_millis(150));
    }
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[first.url(), second.url()]),
        "  refreshInterval: 10m\n  minRefreshInterval: 1s\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    eventually("both sources loaded", Duration::from_secs(5), async || {
        admin_json(&http, &gateway, "/keys").await["keys"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    })
    .await;
    // The floor (minRefreshInterval) since the start-up fetches must pass before an unknown kid
    // may cause a refetch at all: this wait is the condition under test, not a readiness wait.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let before = (first.hits(), second.hits());

    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..50 {
        let token = fresh_token(&key_a, |r| {
            r.kid = Some(format!("unknown-{i}-{}", started.elapsed().as_nanos()));
        });
        let (http, url) = (http.clone(), gateway.url("/api/v1/tables"));
        requests.spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let statuses = requests.join_all().await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the burst must fit in one floor interval for this test to mean anything"
    );
    assert_eq!(
        (first.hits() - before.0, second.hits() - before.1),
        (1, 1),
        "exactly one refetch per source, shared by 50 requests"
    );

    // Within the floor: no refetch at all, the 401 comes at once.
    let token = fresh_token(&key_a, |r| r.kid = Some("still-unknown".into()));
    assert_eq!(status(&http, &gateway, &token).await, 401);
    assert_eq!((first.hits() - before.0, second.hits() - before.1), (1, 1));
}

#[tokio::test]
async fn a_key_added_at_the_source_is_trusted_after_the_unknown_kid_refetch() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::rsa_b();
    let server = JwksServer::start(jwks(&[key_a.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[server.url()]),
        "  refreshInterval: 10m\n  minRefreshInterval: 300ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let initial_hits = server.hits();
    // The issuer rotates: key B is published next to A.
    server.set_body(jwks(&[key_a.jwk(), key_b.jwk()]));
    let token_b = fresh_token(&key_b, |_| {});
    let mut refusals = 0;
    eventually(
        "a token of the new key to pass",
        Duration::from_secs(5),
        async || {
            let passed = status(&http, &gateway, &token_b).await == 200;
            refusals += usize::from(!passed);
            passed
        },
    )
    .await;
    // Requests inside the floor were refused without fetching; the first one after it fetched
    // once and passed.
    assert_eq!(server.hits(), initial_hits + 1, "after {refusals} refusals");
    assert_eq!(
        status(&http, &gateway, &fresh_token(&key_a, |_| {})).await,
        200
    );
}

// === isolation: hanging and hostile sources ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_source_never_delays_requests_whose_kid_is_known() {
    let key = TestKey::rsa_a();
    let good = JwksServer::start(jwks(&[key.jwk()])).await;
    let hanging = JwksServer::start(jwks(&[TestKey::rsa_b().jwk()])).await;
    hanging.update(|b| b.delay = Duration::from_secs(60));
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[good.url(), hanging.url()]),
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n  fetchTimeout: 20s\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    eventually(
        "the start-up fetch of the hanging source to begin",
        Duration::from_secs(5),
        async || hanging.hits() == 1,
    )
    .await;
    // Past the floor, a token with an unknown kid makes both sources refetch; the hanging one
    // holds that request for up to fetchTimeout.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let good_hits = good.hits();
    let stuck = {
        let (http, url) = (http.clone(), gateway.url("/api/v1/tables"));
        let token = fresh_token(&key, |r| r.kid = Some("rotated-away".into()));
        tokio::spawn(async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status())
        })
    };
    eventually(
        "the unknown-kid refetch to reach the good source",
        Duration::from_secs(5),
        async || good.hits() > good_hits,
    )
    .await;

    for _ in 0..20 {
        assert_eq!(
            status(&http, &gateway, &fresh_token(&key, |_| {})).await,
            200
        );
    }
    assert!(
        !stuck.is_finished(),
        "the known-kid requests all completed while the unknown-kid one still waits on the hang"
    );
    stuck.abort();
}

#[tokio::test]
async fn hostile_sources_fail_alone_and_never_crash_the_refresh() {
    let key = TestKey::rsa_a();
    let good = JwksServer::start(jwks(&[key.jwk()])).await;
    let status_500 = JwksServer::start("{}".into()).await;
    status_500.update(|b| b.status = 500);
    let html = JwksServer::start("<html><body>Sign in</body></html>".into()).await;
    html.update(|b| b.headers = vec![("content-type".into(), "text/html".into())]);
    let invalid_json = JwksServer::start(r#"{"keys": [{"kty": "RSA""#.into()).await;
    let too_large = JwksServer::start(format!(
        r#"{{"keys": [], "padding": "{}"}}"#,
        "x".repeat(1 << 20)
    ))
    .await;
    let too_many = JwksServer::start(jwks(&vec![key.jwk(); 101])).await;
    let broken_base64 = JwksServer::start(jwks(&[
        json!({"kty": "RSA", "kid": "bad", "n": "%%%not base64%%%", "e": "AQAB"}),
    ]))
    .await;
    let short_rsa = JwksServer::start(jwks(&[json!({"kty": "RSA", "kid": "short", "alg": "RS256",
        "n": URL_SAFE_NO_PAD.encode(raw_modulus(&std::fs::read(fixture("keys/rsa-1024.pub.pem")).unwrap())), "e": "AQAB"})])).await;
    let redirect_loop = JwksServer::start(String::new()).await;
    let loop_url = redirect_loop.url();
    redirect_loop.update(|b| {
        b.status = 302;
        b.headers = vec![("location".into(), loop_url.clone())];
    });
    let hanging = JwksServer::start(jwks(&[key.jwk()])).await;
    hanging.update(|b| b.delay = Duration::from_secs(60));
    let (endless_url, endless_written) = endless_chunked_server().await;
    let refused_url = format!("http://{}/jwks.json", refused_address());

    let hostile: Vec<(String, &str)> = vec![
        (refused_url, "transport_error"),
        (status_500.url(), "http_error"),
        (html.url(), "invalid_document"),
        (invalid_json.url(), "invalid_document"),
        (too_large.url(), "too_large"),
        (endless_url, "too_large"),
        (too_many.url(), "invalid_document"),
        (broken_base64.url(), "no_usable_key"),
        (short_rsa.url(), "no_usable_key"),
        (redirect_loop.url(), "transport_error"),
        (hanging.url(), "timeout"),
    ];
    let mut urls: Vec<String> = hostile.iter().map(|(url, _)| url.clone()).collect();
    urls.insert(5, good.url()); // in the middle: order must not matter
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&urls),
        "  refreshInterval: 300ms\n  minRefreshInterval: 200ms\n  fetchTimeout: 1s\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    assert_eq!(status(&http, &gateway, &key.tokens().personal()).await, 200);

    // Every hostile source failed at least twice: its refresh loop outlived the first failure.
    eventually(
        "every hostile source to fail twice",
        Duration::from_secs(15),
        async || {
            let keys = admin_json(&http, &gateway, "/keys").await;
            hostile.iter().all(|(url, _)| {
                keys["sources"].as_array().unwrap().iter().any(|s| {
                    s["url"] == url.as_str() && s["consecutiveFailures"].as_u64() >= Some(2)
                })
            })
        },
    )
    .await;
    let metrics = gateway.metrics().await;
    for (url, result) in &hostile {
        assert!(
            metrics.value(
                "om_gateway_jwks_fetch_total",
                &[("url", url), ("result", result)]
            ) >= Some(2.0),
            "{url} should count {result}:\n{}",
            metrics.family("om_gateway_jwks_fetch_total")
        );
        let state = source(&http, &gateway, url).await;
        assert_eq!(state["state"], "failing", "{state}");
        assert_eq!(state["keys"], 0, "{state}");
    }
    let many = source(&http, &gateway, &too_many.url()).await;
    assert!(
        many["lastError"].as_str().unwrap().contains("101 keys"),
        "{many}"
    );
    let short = source(&http, &gateway, &short_rsa.url()).await;
    assert!(
        short["lastError"].as_str().unwrap().contains("1024 bits"),
        "{short}"
    );
    // The cap is enforced while reading: an endless body ends as too_large, not as a timeout,
    // and far less than the 64 MiB the server would send went out on any one connection (what
    // is above 1 MiB sat in socket buffers when the gateway hung up).
    assert!(endless_written.load(Ordering::SeqCst) < 32 << 20);

    let good_state = source(&http, &gateway, &good.url()).await;
    assert_eq!(good_state["state"], "ok", "{good_state}");
    assert_eq!(
        status(&http, &gateway, &fresh_token(&key, |_| {})).await,
        200
    );
    let health = http
        .get(gateway.admin_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

// === staleness and rotation ===

#[tokio::test]
async fn a_failing_sources_keys_verify_for_max_stale_then_are_dropped() {
    let key = TestKey::rsa_a();
    let server = JwksServer::start(jwks(&[key.jwk()])).await;
    // A second, healthy source keeps the gateway ready, so a dropped key means 401, not 503.
    let other = JwksServer::start(jwks(&[TestKey::rsa_b().jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[server.url(), other.url()]),
        "  refreshInterval: 200ms\n  minRefreshInterval: 200ms\n  maxStale: 1s\n  fetchTimeout: 1s\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let cached = fresh_token(&key, |_| {});
    assert_eq!(status(&http, &gateway, &cached).await, 200);

    server.update(|b| b.status = 503);
    let url = server.url();
    eventually(
        "the source to go stale",
        Duration::from_secs(5),
        async || source(&http, &gateway, &url).await["state"] == "stale",
    )
    .await;
    // Failing, but within maxStale: its last good keys still verify new tokens.
    assert_eq!(
        status(&http, &gateway, &fresh_token(&key, |_| {})).await,
        200
    );

    let failing_since = Instant::now();
    eventually(
        "the stale keys to be dropped",
        Duration::from_secs(10),
        async || status(&http, &gateway, &fresh_token(&key, |_| {})).await == 401,
    )
    .await;
    assert!(failing_since.elapsed() < Duration::from_secs(5));
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value("om_gateway_jwks_keys_dropped_total", &[("url", &url)]),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("om_gateway_jwks_keys", &[("url", &url)]),
        Some(0.0)
    );
    // Tokens verified earlier leave the cache with their key.
    assert_eq!(status(&http, &gateway, &cached).await, 401);
    let state = source(&http, &gateway, &url).await;
    assert_eq!(
        (state["state"].as_str(), state["keys"].as_u64()),
        (Some("failing"), Some(0)),
        "{state}"
    );

    // The source recovers: its keys come back at the next fetch.
    server.update(|b| b.status = 200);
    eventually(
        "the source to recover",
        Duration::from_secs(5),
        async || status(&http, &gateway, &fresh_token(&key, |_| {})).await == 200,
    )
    .await;
}

#[tokio::test]
async fn a_key_removed_at_its_source_stops_verifying_even_for_cached_tokens() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::rsa_b();
    let server = JwksServer::start(jwks(&[key_a.jwk(), key_b.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[server.url()]),
        "  refreshInterval: 300ms\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let token_a = key_a.tokens().personal();
    assert_eq!(status(&http, &gateway, &token_a).await, 200);
    assert_eq!(status(&http, &gateway, &token_a).await, 200);
    let metrics = gateway.metrics().await;
    assert_eq!(
        (
            metrics.value(
                "om_gateway_token_cache_requests_total",
                &[("result", "miss")]
            ),
            metrics.value(
                "om_gateway_token_cache_requests_total",
                &[("result", "hit")]
            )
        ),
        (Some(1.0), Some(1.0)),
        "the first request verified the token, the second was answered from the cache"
    );

    server.set_body(jwks(&[key_b.jwk()]));
    let url = server.url();
    eventually("key A to leave", Duration::from_secs(5), async || {
        source(&http, &gateway, &url).await["kids"] == json!(["key-b"])
    })
    .await;
    assert_eq!(status(&http, &gateway, &token_a).await, 401);
    assert_eq!(
        status(&http, &gateway, &key_b.tokens().personal()).await,
        200
    );
}

// === keySources binding ===

#[tokio::test]
async fn a_bound_key_vouches_only_for_its_issuers_and_audiences() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::rsa_b();
    let idp = JwksServer::start(jwks(&[key_a.jwk()])).await;
    let openmetadata = JwksServer::start(jwks(&[key_b.jwk()])).await;
    let upstream = Upstream::start().await;
    let auth = format!(
        "  keySources:\n    - {{ url: \"{}\", issuers: [ \"https://idp.example.com\" ], audiences: [ client-1 ] }}\n{}",
        idp.url(),
        key_urls(&[openmetadata.url()])
    );
    let yaml = gateway_yaml(
        &upstream,
        &auth,
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let with = |key: &TestKey, issuer: &str, audience: Option<Value>| {
        fresh_token(key, |r| {
            r.issuer = issuer.into();
            if let Some(audience) = audience {
                r.extra_claims.push(("aud".into(), audience));
            }
        })
    };
    let cases = [
        (
            "bound key, its issuer and audience",
            with(&key_a, "https://idp.example.com", Some(json!("client-1"))),
            200,
        ),
        (
            "bound key, audience in a list",
            with(
                &key_a,
                "https://idp.example.com",
                Some(json!(["other", "client-1"])),
            ),
            200,
        ),
        (
            "bound key, another issuer",
            with(&key_a, "open-metadata.org", Some(json!("client-1"))),
            401,
        ),
        (
            "bound key, no issuer it knows",
            with(&key_a, "https://evil.example.com", Some(json!("client-1"))),
            401,
        ),
        (
            "bound key, another audience",
            with(&key_a, "https://idp.example.com", Some(json!("client-2"))),
            401,
        ),
        (
            "bound key, no audience",
            with(&key_a, "https://idp.example.com", None),
            401,
        ),
        (
            "unbound key, OpenMetadata's issuer",
            with(&key_b, "open-metadata.org", None),
            200,
        ),
        (
            "unbound key, any issuer (OpenMetadata's behaviour)",
            with(&key_b, "https://idp.example.com", Some(json!("client-9"))),
            200,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(status(&http, &gateway, &token).await, expected, "{name}");
    }
}

// === formats ===

#[tokio::test]
async fn every_accepted_key_form_verifies_and_nothing_else_does() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::rsa_b();
    let ec = TestKey::load("ec-p256", "ec-1");
    let ec_public = om_gateway::jwks::parse::parse_pem(&ec.public_pem, None).unwrap();
    assert_eq!(ec_public.bits, 256);
    // An EC JWK from the fixture's uncompressed point (the last 65 bytes of its SPKI DER).
    let ec_jwk = {
        use x509_parser::prelude::FromDer;
        let (_, block) = x509_parser::pem::parse_x509_pem(&ec.public_pem).unwrap();
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&block.contents).unwrap();
        let point = spki.subject_public_key.data.to_vec();
        json!({"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "alg": "ES256",
               "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])})
    };
    let certificate = std::fs::read_to_string(fixture("keys/rsa-a.cert.pem")).unwrap();
    let mut enc_key = key_a.clone().with_kid("enc-a").jwk();
    enc_key["use"] = json!("enc");
    let mut no_alg = key_a.clone().with_kid("no-alg-a").jwk();
    no_alg.as_object_mut().unwrap().remove("alg");

    let standard = JwksServer::start(jwks(&[key_a.jwk(), no_alg, enc_key])).await;
    let elliptic = JwksServer::start(jwks(&[ec_jwk])).await;
    let openmetadata =
        JwksServer::start(jwks(&[key_b.clone().with_kid("om-b").openmetadata_jwk()])).await;
    let google = JwksServer::start(json!({ "google-a": certificate }).to_string()).await;
    let directory = tempfile::tempdir().unwrap();
    let jwks_file = directory.path().join("keys.json");
    std::fs::write(
        &jwks_file,
        jwks(&[key_a.clone().with_kid("jwks-file-a").jwk()]),
    )
    .unwrap();

    let upstream = Upstream::start().await;
    let auth =
        format!(
        "{}  publicKeyFiles:\n    - {{ file: \"{}\", kid: file-a }}\n    - \"{}\"\n    - \"{}\"\n",
        key_urls(&[standard.url(), elliptic.url(), openmetadata.url(), google.url()]),
        key_a.public_pem_path().display(),
        key_b.public_pem_path().display(),
        jwks_file.display(),
    );
    let yaml = gateway_yaml(
        &upstream,
        &auth,
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let url = google.url();
    eventually("every source loaded", Duration::from_secs(5), async || {
        let keys = admin_json(&http, &gateway, "/keys").await;
        keys["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "ok")
            && source(&http, &gateway, &url).await["keys"] == 1
    })
    .await;

    let signed = |key: &TestKey, kid: Option<&str>, algorithm: jsonwebtoken::Algorithm| {
        fresh_token(key, |r| {
            r.kid = kid.map(str::to_string);
            r.algorithm = algorithm;
            r.private_key_pem = key.private_pem.clone();
        })
    };
    use jsonwebtoken::Algorithm::{ES256, RS256, RS384, RS512};
    let cases = [
        (
            "RFC 7517 JWK with alg RS256",
            signed(&key_a, Some("key-a"), RS256),
            200,
        ),
        (
            "a key stating RS256 never verifies RS512",
            signed(&key_a, Some("key-a"), RS512),
            401,
        ),
        (
            "a key without alg verifies tokenValidationAlgorithm",
            signed(&key_a, Some("no-alg-a"), RS256),
            200,
        ),
        (
            "a key without alg verifies nothing else",
            signed(&key_a, Some("no-alg-a"), RS384),
            401,
        ),
        (
            "EC P-256 JWK, ES256 token",
            signed(&ec, Some("ec-1"), ES256),
            200,
        ),
        (
            "OpenMetadata's padded form",
            signed(&key_b, Some("om-b"), RS256),
            200,
        ),
        (
            "Google's v1 certificate form",
            signed(&key_a, Some("google-a"), RS256),
            200,
        ),
        (
            "Google's certificate states no alg either",
            signed(&key_a, Some("google-a"), RS512),
            401,
        ),
        (
            "use: enc keys never verify",
            signed(&key_a, Some("enc-a"), RS256),
            401,
        ),
        (
            "PEM file with a kid",
            signed(&key_a, Some("file-a"), RS256),
            200,
        ),
        ("JWKS file", signed(&key_a, Some("jwks-file-a"), RS256), 200),
        (
            "kid-less PEM file, token without kid",
            signed(&key_b, None, RS256),
            200,
        ),
        (
            "kid-less PEM file, kid nobody knows",
            signed(&key_b, Some("nobody"), RS256),
            200,
        ),
        (
            "token without kid, signed by a key only a kid names",
            signed(&key_a, None, RS256),
            401,
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(status(&http, &gateway, &token).await, expected, "{name}");
    }
}

#[tokio::test]
async fn key_hints_in_the_token_header_are_never_followed() {
    let trusted = TestKey::rsa_a();
    let attacker = TestKey::rsa_b();
    let configured = JwksServer::start(jwks(&[trusted.jwk()])).await;
    let attacker_jwks = JwksServer::start(jwks(&[attacker.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = gateway_yaml(
        &upstream,
        &key_urls(&[configured.url()]),
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let http = client();
    let certificate = std::fs::read_to_string(fixture("keys/rsa-a.cert.pem")).unwrap();
    let certificate_der: String = certificate
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"iss": "open-metadata.org", "sub": "mallory", "email": "admin@open-metadata.org",
                        "isBot": false, "iat": now, "exp": now + 600});
    let encoding_key = jsonwebtoken::EncodingKey::from_rsa_pem(&attacker.private_pem).unwrap();
    for (name, header) in [
        (
            "jwk",
            json!({"alg": "RS256", "kid": "key-b", "jwk": attacker.jwk()}),
        ),
        (
            "jku",
            json!({"alg": "RS256", "kid": "key-b", "jku": attacker_jwks.url()}),
        ),
        (
            "x5u",
            json!({"alg": "RS256", "kid": "key-b", "x5u": attacker_jwks.url()}),
        ),
        ("x5c", json!({"alg": "RS256", "x5c": [certificate_der]})),
        (
            "all at once, under the trusted kid",
            json!({"alg": "RS256", "kid": "key-a", "jwk": attacker.jwk(), "jku": attacker_jwks.url(), "x5u": attacker_jwks.url()}),
        ),
    ] {
        let unsigned = raw_token(&header, &claims, "");
        let signing_input = unsigned.trim_end_matches('.');
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &encoding_key,
            jsonwebtoken::Algorithm::RS256,
        )
        .unwrap();
        let token = format!("{signing_input}.{signature}");
        assert_eq!(status(&http, &gateway, &token).await, 401, "{name}");
    }
    assert_eq!(
        attacker_jwks.hits(),
        0,
        "the gateway never fetched a URL named by a token"
    );
}

// === transport ===

/// An HTTPS key endpoint with the test CA's server certificate.
async fn https_jwks_server(body: String) -> String {
    let config =
        om_gateway::tls::server_config(&fixture("tls/server.pem"), &fixture("tls/server.key.pem"))
            .expect("test TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    format!("https://127.0.0.1:{}/jwks.json", address.port())
}

#[tokio::test]
async fn an_https_source_is_trusted_through_its_ca_file_and_only_then() {
    let key = TestKey::rsa_a();
    let url = https_jwks_server(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let with_ca = gateway_yaml(
        &upstream,
        &format!(
            "  keySources:\n    - {{ url: \"{url}\", caFile: \"{}\" }}\n",
            fixture("tls/keysource-ca.pem").display()
        ),
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let gateway = TestGateway::start_ready(&with_ca).await;
    let http = client();
    assert_eq!(status(&http, &gateway, &key.tokens().personal()).await, 200);

    // The same endpoint without the CA file: web PKI roots alone do not know the test CA.
    let without_ca = gateway_yaml(
        &upstream,
        &key_urls(std::slice::from_ref(&url)),
        "  refreshInterval: 10m\n  minRefreshInterval: 200ms\n",
    );
    let untrusting = TestGateway::start(&without_ca).await;
    eventually(
        "the TLS failure to be recorded",
        Duration::from_secs(5),
        async || source(&http, &untrusting, &url).await["consecutiveFailures"] != 0,
    )
    .await;
    let state = source(&http, &untrusting, &url).await;
    let error = state["lastError"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{state}"
    );
    assert_eq!(
        status(&http, &untrusting, &key.tokens().personal()).await,
        503
    );
}

/// A kid that only another issuer's bound source knows must not end the search: the sources
/// that may vouch for this token's issuer are refetched, and the key they now publish verifies.
#[tokio::test]
async fn a_kid_known_only_to_another_issuers_source_still_triggers_a_refetch() {
    let key_a = TestKey::rsa_a().with_kid("shared-kid");
    let key_b = TestKey::rsa_b().with_kid("shared-kid");
    // Source "google" is bound to another issuer and already has kid "shared-kid" (key A).
    let google = JwksServer::start(jwks(&[key_a.jwk()])).await;
    // Source "om" is bound to open-metadata.org and starts empty.
    let om = JwksServer::start(jwks(&[])).await;
    let upstream = Upstream::start().await;
    let yaml = format!(
        "upstream:\n  url: {}\nauthenticationConfiguration:\n  keySources:\n    - {{ url: \"{}\", issuers: [accounts.google.com] }}\n    - {{ url: \"{}\", issuers: [open-metadata.org] }}\njwks:\n  minRefreshInterval: 200ms\n  fetchTimeout: 2s\n",
        upstream.url(),
        google.url(),
        om.url()
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let fetches_before = om.hits();
    // OpenMetadata rotates in key B under the same kid.
    om.set_body(jwks(&[key_b.jwk()]));
    tokio::time::sleep(std::time::Duration::from_millis(250)).await; // past the refetch floor
    let token = key_b.tokens().personal(); // iss open-metadata.org
    let response = client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(om.hits() > fetches_before, "the bound source was refetched");
}

/// Issue 14, part 1: rotation under concurrent load. A new key is published at one of two
/// sources and a burst of requests carries tokens it signed. Every request whose kid is unknown
/// must wait for the fetch of its sources that is in flight (a scheduled refresh included) or
/// that it starts, so none gets 401 while the new key is on its way; and a burst still causes one
/// fetch per source.
mod rotation {
    use super::*;

    /// Two unbound sources (OpenMetadata's key A, an identity provider's key B as `idp-b`), a
    /// gateway with two proxy workers in front of them, both sources loaded.
    async fn two_sources(jwks_settings: &str) -> (JwksServer, JwksServer, Upstream, TestGateway) {
        let openmetadata = JwksServer::start(jwks(&[TestKey::rsa_a().jwk()])).await;
        let idp = JwksServer::start(jwks(&[TestKey::rsa_b().with_kid("idp-b").jwk()])).await;
        let upstream = Upstream::start().await;
        let yaml = format!(
            "{}server:\n  workers: 2\n",
            gateway_yaml(
                &upstream,
                &key_urls(&[openmetadata.url(), idp.url()]),
                jwks_settings
            )
        );
        let gateway = TestGateway::start_ready(&yaml).await;
        let http = client();
        eventually("both sources loaded", Duration::from_secs(5), async || {
            admin_json(&http, &gateway, "/keys").await["keys"]
                .as_array()
                .map(Vec::len)
                == Some(2)
        })
        .await;
        (openmetadata, idp, upstream, gateway)
    }

    /// The key OpenMetadata rotates to: key B's material under a kid nobody has seen.
    fn rotated_key() -> TestKey {
        TestKey::rsa_b().with_kid("om-2026")
    }

    /// Send `count` requests at once, each with its own fresh token signed by `key`; the statuses.
    async fn burst(gateway: &TestGateway, key: &TestKey, count: usize) -> Vec<u16> {
        let http = client();
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..count {
            let token = fresh_token(key, |_| {});
            let (http, url) = (http.clone(), gateway.url("/api/v1/tables"));
            requests.spawn(async move {
                http.get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .unwrap_or(0)
            });
        }
        requests.join_all().await
    }

    fn refused(statuses: &[u16]) -> usize {
        statuses.iter().filter(|status| **status != 200).count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_fifty_requests_with_a_newly_published_kid_all_pass_with_one_fetch_per_source()
    {
        let (openmetadata, idp, _upstream, gateway) =
            two_sources("  refreshInterval: 10m\n  minRefreshInterval: 1s\n").await;
        // The floor since the start-up fetches must pass before an unknown kid may cause a
        // refetch at all: this wait is the condition under test, not a readiness wait.
        tokio::time::sleep(Duration::from_millis(1050)).await;
        // The answers are slow, so the fetch is in flight while the burst arrives.
        openmetadata.update(|b| b.delay = Duration::from_millis(150));
        idp.update(|b| b.delay = Duration::from_millis(200));
        let new_key = rotated_key();
        openmetadata.set_body(jwks(&[TestKey::rsa_a().jwk(), new_key.jwk()]));
        let before = (openmetadata.hits(), idp.hits());

        let statuses = burst(&gateway, &new_key, 50).await;

        assert_eq!(
            refused(&statuses),
            0,
            "every request waited for the fetch that brought its key: {statuses:?}"
        );
        assert_eq!(
            (openmetadata.hits() - before.0, idp.hits() - before.1),
            (1, 1),
            "one fetch per source, shared by the 50 requests"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_fifty_requests_during_a_scheduled_refresh_wait_for_it() {
        // refreshInterval 2s: the scheduled refresh comes 1.8–2 s after the start-up fetch.
        let (openmetadata, idp, _upstream, gateway) =
            two_sources("  refreshInterval: 2s\n  minRefreshInterval: 1s\n").await;
        let new_key = rotated_key();
        openmetadata.set_body(jwks(&[TestKey::rsa_a().jwk(), new_key.jwk()]));
        idp.update(|b| b.delay = Duration::from_millis(200));
        // The scheduled fetch is held open at the server until every request of the burst is
        // inside the gateway, so the burst surely meets it in flight.
        let gate = openmetadata.hold();
        let before = (openmetadata.hits(), idp.hits());
        eventually(
            "the scheduled refresh to reach the source",
            Duration::from_secs(5),
            async || openmetadata.hits() > before.0,
        )
        .await;

        let requests = tokio::spawn({
            let (gateway_url, new_key) = (gateway.url(""), new_key.clone());
            async move {
                let http = client();
                let mut requests = tokio::task::JoinSet::new();
                for _ in 0..50 {
                    let token = fresh_token(&new_key, |_| {});
                    let (http, url) = (http.clone(), format!("{gateway_url}/api/v1/tables"));
                    requests.spawn(async move {
                        http.get(url)
                            .bearer_auth(token)
                            .send()
                            .await
                            .map(|response| response.status().as_u16())
                            .unwrap_or(0)
                    });
                }
                requests.join_all().await
            }
        });
        eventually(
            "all 50 requests to be in flight, or answered",
            Duration::from_secs(10),
            async || {
                gateway
                    .metrics()
                    .await
                    .value("om_gateway_inflight_requests", &[])
                    == Some(50.0)
                    || requests.is_finished()
            },
        )
        .await;
        gate.open();
        let statuses = requests.await.unwrap();

        assert_eq!(
            refused(&statuses),
            0,
            "every request waited for the scheduled refresh in flight: {statuses:?}"
        );
        assert_eq!(
            (openmetadata.hits() - before.0, idp.hits() - before.1),
            (1, 1),
            "the scheduled refresh was the burst's fetch of its source; one fetch of the other"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_an_unknown_kid_flood_fetches_each_source_at_most_once_per_floor() {
        let floor = Duration::from_millis(500);
        let (openmetadata, idp, _upstream, gateway) =
            two_sources("  refreshInterval: 10m\n  minRefreshInterval: 500ms\n").await;
        tokio::time::sleep(floor + Duration::from_millis(50)).await; // past the start-up floor
        openmetadata.update(|b| b.delay = Duration::from_millis(150));
        idp.update(|b| b.delay = Duration::from_millis(200));
        let before = (openmetadata.hits(), idp.hits());

        // Eight clients send tokens with kids that no source will ever publish, for a while.
        let started = Instant::now();
        let flood_for = Duration::from_millis(1600);
        let mut clients = tokio::task::JoinSet::new();
        for client_number in 0..8 {
            let url = gateway.url("/api/v1/tables");
            clients.spawn(async move {
                let http = client();
                let mut statuses = Vec::new();
                for request_number in 0.. {
                    if started.elapsed() >= flood_for {
                        break;
                    }
                    let token = fresh_token(&TestKey::rsa_a(), |r| {
                        r.kid = Some(format!("never-{client_number}-{request_number}"));
                    });
                    let status = http.get(&url).bearer_auth(token).send().await.unwrap();
                    statuses.push(status.status().as_u16());
                }
                statuses
            });
        }
        let statuses: Vec<u16> = clients.join_all().await.into_iter().flatten().collect();
        let elapsed = started.elapsed();

        assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
        // Fetches of one source start at least floor + answer time apart (the floor counts from
        // the end of a fetch), so in `elapsed` there can be at most 1 + elapsed / floor of them.
        let most = 1 + (elapsed.as_millis() / floor.as_millis()) as usize;
        let fetched = (openmetadata.hits() - before.0, idp.hits() - before.1);
        for (name, count) in [("openmetadata", fetched.0), ("idp", fetched.1)] {
            assert!(
                (2..=most).contains(&count),
                "{name}: {count} fetches during a {elapsed:?} flood of {} requests; expected 2..={most} (once, then again after the floor)",
                statuses.len()
            );
        }
    }
}
