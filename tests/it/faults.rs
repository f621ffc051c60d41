//! Riding out faults: key sources that are down, slow, flapping, serving garbage or huge
//! documents, and an upstream that stalls while others are served. Each test states the outcome a
//! user sees, and that no request is lost. (What each upstream failure answers is in data_path.rs;
//! signals, including SIGHUP with a broken file, in lifecycle.rs.)

use crate::hostile::{alice_claims, signed, status};
use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn gateway_for(source: &JwksServer, upstream_url: &str, extra: &str) -> TestGateway {
    let yaml = format!("{}{extra}", basic_yaml(upstream_url, &[source.url()]));
    TestGateway::start_ready(&yaml).await
}

/// Fire `count` requests at once with `token`; return every status.
async fn burst(url: &str, token: &str, count: usize) -> Vec<u16> {
    let requests: Vec<_> = (0..count)
        .map(|_| {
            let (url, token) = (url.to_string(), token.to_string());
            tokio::spawn(async move { status(&url, &token).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    statuses
}

/// Make the store fetch now: an unknown kid asks for one refetch (past minRefreshInterval).
async fn provoke_fetch(source: &JwksServer, url: &str, key: &TestKey) {
    let before = source.hits();
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.hits() == before {
        let token = signed(
            key,
            &json!({"alg": "RS256", "kid": "provoke"}),
            &alice_claims(),
        );
        assert_eq!(status(url, &token).await, 401);
        assert!(Instant::now() < deadline, "no fetch happened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One change to how the key endpoint behaves.
type BehaviourChange = dyn Fn(&mut crate::support::servers::JwksBehaviour);

async fn readyz(gateway: &TestGateway) -> (u16, Value) {
    let response = client()
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

// === key sources ===

#[tokio::test]
async fn key_source_down_at_start_is_503_then_recovers_without_restart() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    source.update(|b| b.status = 500);
    let upstream = Upstream::start().await;
    let yaml = basic_yaml(&upstream.url(), &[source.url()]);
    let gateway = TestGateway::start(&yaml).await;
    let url = gateway.url("/api/v1/tables");
    let token = key.tokens().personal();
    // While no source has answered: 503 for tokens, /readyz 503 naming the source.
    let deadline = Instant::now() + Duration::from_secs(10);
    while source.hits() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status(&url, &token).await, 503);
    let (code, body) = readyz(&gateway).await;
    assert_eq!(code, 503);
    assert!(body.to_string().contains(&source.url()), "{body}");
    // The source comes back: the next requests find keys (refetch bounded by minRefreshInterval).
    source.update(|b| b.status = 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = status(&url, &token).await;
        if got == 200 {
            break;
        }
        assert!(matches!(got, 503 | 401), "{got}");
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(readyz(&gateway).await.0, 200);
}

#[tokio::test]
async fn key_source_down_garbage_or_huge_after_load_keeps_the_last_good_keys() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let gateway = gateway_for(&source, &upstream.url(), "").await;
    let url = gateway.url("/api/v1/tables");
    let token = key.tokens().personal();
    // (fault, how it is set up, a part of the lastError /readyz then shows for it)
    let faults: Vec<(&str, Box<BehaviourChange>, &str)> = vec![
        (
            "connection dropped",
            Box::new(|b| b.drop_connection = true),
            "request failed: ",
        ),
        (
            "500",
            Box::new(|b| {
                b.drop_connection = false;
                b.status = 500;
            }),
            "HTTP status 500",
        ),
        (
            "garbage",
            Box::new(|b| {
                b.status = 200;
                b.body = "<html>not json".into();
            }),
            "unusable document: not JSON",
        ),
        (
            "wrong shape",
            Box::new(|b| b.body = "{\"keys\": {\"a\": 1}}".into()),
            "unusable document: neither a JWK set",
        ),
        (
            "over 1 MiB",
            Box::new(|b| b.body = format!("{{\"keys\":[],\"p\":\"{}\"}}", "x".repeat(1 << 20))),
            "document larger than 1048576 bytes",
        ),
        (
            "101 keys",
            Box::new(|b| {
                b.body = jwks(&vec![json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}); 101])
            }),
            "unusable document: 101 keys, more than the 100 allowed",
        ),
    ];
    for (failures, (name, fault, error)) in (1..).zip(&faults) {
        source.update(|b| fault(b));
        provoke_fetch(&source, &url, &key).await;
        // A fresh token (no cache hit) still verifies with the kept key.
        let fresh = signed(
            &key,
            &json!({"alg": "RS256", "kid": "key-a"}),
            &alice_claims(),
        );
        assert_eq!(status(&url, &fresh).await, 200, "after {name}");
        assert_eq!(status(&url, &token).await, 200, "after {name}");
        let (code, body) = readyz(&gateway).await;
        assert_eq!(code, 200, "after {name}: {body}");
        // The failure is on record (the fetch ends a moment after the server saw it).
        let deadline = Instant::now() + Duration::from_secs(5);
        let state = loop {
            let state = readyz(&gateway).await.1["keySources"][0].clone();
            if state["consecutiveFailures"] == failures || Instant::now() > deadline {
                break state;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(
            state["consecutiveFailures"], failures,
            "after {name}: {state}"
        );
        assert_eq!(
            (&state["state"], &state["kids"]),
            (&json!("stale"), &json!(["key-a"])),
            "after {name}: {state}"
        );
        let last_error = state["lastError"].as_str().unwrap_or_default();
        assert!(
            last_error.contains(error),
            "after {name}: lastError {last_error:?} should say {error:?}"
        );
    }
}

#[tokio::test]
async fn slow_key_source_never_blocks_requests_whose_kid_is_known() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let gateway = gateway_for(&source, &upstream.url(), "").await;
    let url = gateway.url("/api/v1/tables");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past minRefreshInterval
    source.update(|b| b.delay = Duration::from_secs(5));
    // An unknown kid starts a refetch that hangs on the slow source until fetchTimeout (2 s) ...
    let unknown = signed(
        &key,
        &json!({"alg": "RS256", "kid": "rotated-in"}),
        &alice_claims(),
    );
    let waiting = {
        let url = url.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (status(&url, &unknown).await, started.elapsed())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let hits = source.hits();
    while source.hits() == hits {
        assert!(Instant::now() < deadline, "no refetch started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ... while fresh tokens with the known kid are served, one after another, without waiting.
    for n in 0..10 {
        let fresh = signed(
            &key,
            &json!({"alg": "RS256", "kid": "key-a", "n": n}),
            &alice_claims(),
        );
        assert_eq!(status(&url, &fresh).await, 200);
    }
    assert!(
        !waiting.is_finished(),
        "known kids were served only after the slow fetch ended"
    );
    let (code, waited) = waiting.await.unwrap();
    assert_eq!(code, 401);
    assert!(
        waited < Duration::from_secs(4),
        "the unknown kid waited {waited:?}, past fetchTimeout"
    );
}

#[tokio::test]
async fn flapping_key_source_loses_no_in_flight_request() {
    let key = TestKey::rsa_a();
    let good = jwks(&[key.jwk()]);
    let source = JwksServer::start(good.clone()).await;
    let upstream = Upstream::start().await;
    let gateway = gateway_for(&source, &upstream.url(), "").await;
    let url = gateway.url("/api/v1/tables");
    let mut total = 0;
    for round in 0..8 {
        source.update(|b| {
            *b = crate::support::servers::JwksBehaviour {
                status: if round % 4 == 1 { 503 } else { 200 },
                body: if round % 4 == 2 {
                    "{\"keys\": [".into()
                } else {
                    good.clone()
                },
                delay: Duration::from_millis(if round % 4 == 3 { 300 } else { 0 }),
                headers: vec![("content-type".into(), "application/json".into())],
                drop_connection: round % 4 == 0 && round > 0,
                gate: None,
            }
        });
        // Known-kid requests (fresh tokens, no cache) interleaved with refetch-provoking ones.
        let fresh = signed(
            &key,
            &json!({"alg": "RS256", "kid": "key-a", "r": round}),
            &alice_claims(),
        );
        let unknown = signed(
            &key,
            &json!({"alg": "RS256", "kid": format!("gone-{round}")}),
            &alice_claims(),
        );
        let (statuses, unknown_status) =
            tokio::join!(burst(&url, &fresh, 20), status(&url, &unknown));
        assert!(
            statuses.iter().all(|s| *s == 200),
            "round {round}: {statuses:?}"
        );
        assert_eq!(unknown_status, 401, "round {round}");
        total += statuses.len();
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(total, 160);
    assert_eq!(
        upstream.received().len(),
        160,
        "a request was lost on the way upstream"
    );
}

// === upstreams ===
// What each upstream failure answers (502 refused or closed, 504 stalled, a body cut short) is
// tested once, in data_path.rs; here: that one stalled upstream request holds up no other.

/// An upstream that never answers `/api/v1/slow` (it holds the connection until the gateway gives
/// up) and answers anything else at once; counts the slow requests it is holding.
async fn stalling_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stalled = Arc::new(AtomicUsize::new(0));
    let counter = stalled.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                if request.starts_with(b"GET /api/v1/slow") {
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Hold the connection until the gateway closes it.
                    let _ = stream.read(&mut buffer).await;
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (address, stalled)
}

#[tokio::test]
async fn a_stalled_upstream_request_holds_up_no_other_request() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let (upstream, stalled_count) = stalling_upstream().await;
    let yaml = basic_yaml(&format!("http://{upstream}"), &[source.url()])
        .replace("upstream:\n", "upstream:\n  timeout: 5s\n");
    let gateway = TestGateway::start_ready(&yaml).await;
    let token = key.tokens().personal();
    let stalled = {
        let (url, token) = (gateway.url("/api/v1/slow"), token.clone());
        tokio::spawn(async move { status(&url, &token).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while stalled_count.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // While the upstream holds that request, others through the same gateway are answered.
    for _ in 0..5 {
        assert_eq!(status(&gateway.url("/api/v1/fast"), &token).await, 200);
    }
    assert!(
        !stalled.is_finished(),
        "the stalled request ended before upstream.timeout"
    );
    assert_eq!(stalled.await.unwrap(), 504);
    assert_eq!(status(&gateway.url("/api/v1/fast"), &token).await, 200);
}
