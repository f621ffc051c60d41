//! Issue 8, the fault matrix: key sources that are down, slow, flapping, serving garbage or
//! huge documents; upstreams that refuse, reset mid-body or stall; SIGHUP with a broken file and
//! SIGTERM mid-request. Each test states the outcome a user sees, and that no request is lost.

use crate::hostile::{alice_claims, signed, status, GatewayProcess};
use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use serde_json::{json, Value};
use std::net::SocketAddr;
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
    let faults: Vec<(&str, Box<BehaviourChange>)> = vec![
        ("connection dropped", Box::new(|b| b.drop_connection = true)),
        (
            "500",
            Box::new(|b| {
                b.drop_connection = false;
                b.status = 500;
            }),
        ),
        (
            "garbage",
            Box::new(|b| {
                b.status = 200;
                b.body = "<html>not json".into();
            }),
        ),
        (
            "wrong shape",
            Box::new(|b| b.body = "{\"keys\": {\"a\": 1}}".into()),
        ),
        (
            "over 1 MiB",
            Box::new(|b| b.body = format!("{{\"keys\":[],\"p\":\"{}\"}}", "x".repeat(1 << 20))),
        ),
        (
            "101 keys",
            Box::new(|b| {
                b.body = jwks(&vec![json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}); 101])
            }),
        ),
    ];
    for (name, fault) in &faults {
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
    }
    let (_, body) = readyz(&gateway).await;
    assert!(
        body.to_string().contains("lastError")
            || body.to_string().contains("last_error")
            || body.is_object(),
        "{body}"
    );
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

/// An upstream that misbehaves by path: `/reset` sends headers and half the body then closes,
/// `/close` closes before any byte, `/slow` answers after 3 s, anything else answers at once.
async fn rude_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&request).to_string();
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                if path.starts_with("/api/v1/close") {
                    return;
                }
                if path.starts_with("/api/v1/reset") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: application/json\r\n\r\n")
                        .await;
                    let _ = stream.write_all(&[b'x'; 5000]).await;
                    let _ = stream.flush().await;
                    // Zero linger: the drop sends RST, a reset rather than a clean close.
                    #[allow(deprecated)]
                    let _ = stream.set_linger(Some(Duration::ZERO));
                    return; // dropped: RST mid-body
                }
                if path.starts_with("/api/v1/slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn upstream_refusing_resetting_mid_body_or_stalling_each_get_their_outcome() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let rude = rude_upstream().await;
    let yaml = basic_yaml(&format!("http://{rude}"), &[source.url()])
        .replace("upstream:\n", "upstream:\n  timeout: 1s\n");
    let gateway = TestGateway::start_ready(&yaml).await;
    let token = key.tokens().personal();
    // Closed before the response: 502, a JSON body, quickly.
    assert_eq!(status(&gateway.url("/api/v1/close"), &token).await, 502);
    // Reset mid-body: the status is already sent, so the client must see the body cut short —
    // never a complete-looking response.
    let response = client()
        .get(gateway.url("/api/v1/reset"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await;
    assert!(
        body.as_ref().map_or(true, |b| b.len() < 100_000),
        "a truncated upstream body arrived as complete"
    );
    // Stalled past upstream.timeout: 504, while other requests on the same gateway are served.
    let stalled = {
        let (url, token) = (gateway.url("/api/v1/slow"), token.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            (status(&url, &token).await, started.elapsed())
        })
    };
    let started = Instant::now();
    assert_eq!(status(&gateway.url("/api/v1/fast"), &token).await, 200);
    assert!(started.elapsed() < Duration::from_millis(900));
    let (code, waited) = stalled.await.unwrap();
    assert_eq!(code, 504);
    assert!(waited < Duration::from_millis(2900), "{waited:?}");
    // Refusing connections: 502.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = closed.local_addr().unwrap();
    drop(closed);
    let other = gateway_for(&source, &format!("http://{refused}"), "").await;
    assert_eq!(status(&other.url("/api/v1/tables"), &token).await, 502);
    // After all that, the first gateway still serves.
    assert_eq!(status(&gateway.url("/api/v1/fast"), &token).await, 200);
}

// === lifecycle: signals on the real binary ===

#[tokio::test]
async fn sighup_with_a_broken_file_keeps_the_old_config_and_a_good_one_applies() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let base = basic_yaml(&upstream.url(), &[source.url()]);
    let gateway = GatewayProcess::start(&base, "info");
    gateway.wait_ready().await;
    let token = key.tokens().personal();
    let url = gateway.url("/api/v1/tables");
    assert_eq!(status(&url, &token).await, 200);
    std::fs::write(&gateway.config_path, "server: [ this is not\n  valid: yaml").unwrap();
    gateway.signal("HUP");
    gateway.wait_for_log("reload failed").await;
    assert_eq!(
        status(&url, &token).await,
        200,
        "the old config stopped serving"
    );
    let closed = format!(
        "{}{base}defaultRoute: {{ deny: true }}\n",
        "server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\n"
    );
    std::fs::write(&gateway.config_path, closed).unwrap();
    gateway.signal("HUP");
    gateway.wait_for_log("configuration reloaded").await;
    assert_eq!(
        status(&url, &token).await,
        403,
        "the good new config did not apply"
    );
}

#[tokio::test]
async fn sigterm_mid_request_finishes_it_and_exits_0() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    upstream.update(|b| b.delay = Duration::from_millis(1500));
    let mut gateway = GatewayProcess::start(&basic_yaml(&upstream.url(), &[source.url()]), "info");
    gateway.wait_ready().await;
    let token = key.tokens().personal();
    let in_flight = {
        let url = gateway.url("/api/v1/tables");
        tokio::spawn(async move { status(&url, &token).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while upstream.received().is_empty() {
        assert!(
            Instant::now() < deadline,
            "request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.signal("TERM");
    assert_eq!(
        in_flight.await.unwrap(),
        200,
        "the in-flight request was cut"
    );
    let code = tokio::task::spawn_blocking(move || gateway.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}
