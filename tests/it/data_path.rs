//! The data path: HTTP/2 (h2c), upstream pooling, streaming with flat memory,
//! upgrades, timeouts, limits, and upstream failures, over real sockets.

use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::servers::RepeatBody;
use crate::support::sockets::{
    exchange, read_head, read_until_closed, status_of, ConnectionCounter, EchoUpgradeUpstream,
    ScriptedUpstream,
};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use bytes::Bytes;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Setup {
    key: TestKey,
    _jwks: JwksServer,
    gateway: TestGateway,
}

/// A ready gateway in front of `upstream_url`, trusting key A, with `extra_yaml` appended.
async fn gateway_for(upstream_url: &str, extra_yaml: &str) -> Setup {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let yaml = format!(
        "{}{extra_yaml}",
        basic_yaml(upstream_url, &[jwks_server.url()])
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    Setup {
        key,
        _jwks: jwks_server,
        gateway,
    }
}

fn token(setup: &Setup) -> String {
    setup.key.tokens().personal()
}

/// The gateway's own error answer: this status, JSON, and exactly this message.
async fn json_error(response: reqwest::Response, status: u16, message: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(
        response.headers().get("content-type").unwrap(),
        "application/json"
    );
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(
        body,
        serde_json::json!({"code": status, "message": message})
    );
    body
}

const BAD_GATEWAY: &str = "Bad gateway: the upstream OpenMetadata server is unreachable";
const GATEWAY_TIMEOUT: &str = "Gateway timeout: the upstream did not answer in time";

#[tokio::test]
async fn h2c_prior_knowledge_client_is_served_over_http2() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .expect("h2c request");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    // The upstream still gets HTTP/1.1 with the identity headers.
    assert_eq!(
        upstream.last().header("x-auth-request-user").as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn sequential_requests_reuse_a_pooled_upstream_connection() {
    let upstream = Upstream::start().await;
    let counter = ConnectionCounter::start(upstream.address).await;
    let setup = gateway_for(&counter.url(), "").await;
    let token = token(&setup);
    let client = client();
    for _ in 0..40 {
        let response = client
            .get(setup.gateway.url("/api/v1/tables"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
    }
    assert_eq!(upstream.received().len(), 40);
    assert!(
        counter.accepted() <= 2,
        "40 sequential requests opened {} upstream connections",
        counter.accepted()
    );
}

#[tokio::test]
async fn an_idle_pooled_upstream_connection_is_closed_after_pool_idle_timeout() {
    let upstream = Upstream::start().await;
    let counter = ConnectionCounter::start(upstream.address).await;
    // basic_yaml writes `upstream:\n  url: <this>`: the next line joins the upstream block.
    let upstream_block = format!("{}\n  poolIdleTimeout: 300ms", counter.url());
    let setup = gateway_for(&upstream_block, "").await;
    let gateway = &setup.gateway;
    let response = client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let opened = counter.accepted();
    assert!(opened >= 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while counter.closed() < opened && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        counter.closed(),
        opened,
        "the idle upstream connection was not closed after poolIdleTimeout (300ms)"
    );
    // The next request opens a fresh connection and still succeeds.
    let response = client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// (VmRSS, VmHWM) of a process: its resident memory now and at its peak, in bytes.
fn memory_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Frames of a body, counted as they arrive and then dropped.
struct Frames(reqwest::Response);

impl Frames {
    async fn count(mut self) -> u64 {
        let mut total = 0u64;
        while let Some(chunk) = self.0.chunk().await.expect("body chunk") {
            total += chunk.len() as u64;
        }
        total
    }
}

/// The gateway runs as its own process (the real binary), so its memory is measured alone: the
/// upstream and the client stay in this test process, and other tests running beside this one
/// do not count. The peak (VmHWM) is read, so a body buffered and freed again is caught too.
#[tokio::test]
async fn a_large_body_streams_both_ways_with_flat_memory() {
    const SIZE: usize = 256 << 20;
    let upstream = Upstream::start().await;
    upstream.update(|b| b.body_bytes = 16 << 20);
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let gateway = crate::hostile::GatewayProcess::start(
        &basic_yaml(&upstream.url(), &[jwks_server.url()]),
        "warn,om_gateway=info",
    );
    gateway.wait_ready().await;
    let token = key.tokens().personal();
    // Warm up allocator arenas and pools with a smaller transfer, so that the measurement sees
    // steady state rather than first use.
    let warm = client()
        .post(gateway.url("/api/v1/tables/upload"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap(RepeatBody {
            chunk: Bytes::from(vec![b'w'; 64 * 1024]),
            remaining: 256,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    Frames(warm).count().await;
    upstream.update(|b| b.body_bytes = SIZE);
    let (before, _) = memory_of(gateway.pid());
    let upload = RepeatBody {
        chunk: Bytes::from(vec![b'u'; 64 * 1024]),
        remaining: SIZE / (64 * 1024),
    };
    let response = client()
        .post(gateway.url("/api/v1/tables/upload"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap(upload))
        .send()
        .await
        .expect("streamed upload");
    assert_eq!(response.status(), 200);
    let downloaded = Frames(response).count().await;
    let (after, peak) = memory_of(gateway.pid());
    assert_eq!(
        upstream.last().body_len,
        SIZE,
        "upstream got the whole upload"
    );
    assert_eq!(downloaded, SIZE as u64, "client got the whole download");
    eprintln!(
        "gateway process: RSS {} MiB before, {} MiB after, peak {} MiB, while 2 x {} MiB passed",
        before >> 20,
        after >> 20,
        peak >> 20,
        SIZE >> 20
    );
    let growth = peak.saturating_sub(before);
    assert!(
        growth < 64 << 20,
        "the gateway's resident memory peaked {} MiB above its start while 512 MiB passed",
        growth >> 20
    );
}

fn upgrade_request(address: std::net::SocketAddr, token: Option<&str>) -> String {
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /api/v1/events/stream?transport=websocket HTTP/1.1\r\nHost: {address}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{authorization}\r\n"
    )
}

#[tokio::test]
async fn websocket_upgrade_passes_through_after_authentication() {
    let upstream = EchoUpgradeUpstream::start().await;
    // Not the feed, so listed (issue 13: tunnels only on `server.websocketPaths`).
    let setup = gateway_for(
        &upstream.url(),
        "server:\n  websocketPaths: [ \"/api/v1/events/**\" ]\n",
    )
    .await;
    let address = setup.gateway.proxy();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(upgrade_request(address, Some(&token(&setup))).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), Some(101), "head: {head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "head: {head}"
    );
    for message in [&b"hello over the tunnel"[..], &[0u8, 1, 2, 255]] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("echo arrives")
            .unwrap();
        assert_eq!(echoed, message);
    }
    let seen = upstream.heads();
    assert_eq!(seen.len(), 1);
    let seen = seen[0].to_ascii_lowercase();
    assert!(seen.contains("upgrade: websocket") && seen.contains("connection: upgrade"));
    assert!(
        seen.contains("x-auth-request-user: alice"),
        "upstream head: {seen}"
    );
}

#[tokio::test]
async fn websocket_upgrade_without_token_is_refused_and_never_reaches_the_upstream() {
    let upstream = EchoUpgradeUpstream::start().await;
    let setup = gateway_for(&upstream.url(), "").await;
    let address = setup.gateway.proxy();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(upgrade_request(address, None).as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), Some(401), "head: {head}");
    assert!(upstream.heads().is_empty(), "the upstream saw nothing");
}

#[tokio::test]
async fn slowloris_head_is_cut_off_at_the_header_read_timeout() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "server:\n  headerReadTimeout: 300ms\n").await;
    let mut stream = TcpStream::connect(setup.gateway.proxy()).await.unwrap();
    let started = Instant::now();
    // One byte every 100 ms: each write arrives well inside any per-read timeout.
    let mut closed = false;
    for byte in b"GET /api/v1/tables HTTP/1.1\r\nHost: x\r\n".iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buffer = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still open after 3 s"
        );
    }
    assert!(closed, "the slow head was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn silent_and_idle_keep_alive_connections_are_closed() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "server:\n  headerReadTimeout: 300ms\n").await;
    // Connects and never sends a byte.
    let mut silent = TcpStream::connect(setup.gateway.proxy()).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(2)).await;
    assert!(closed, "a silent connection stayed open");
    // One request, then idle on a keep-alive connection.
    let request = "GET /api/v1/system/version HTTP/1.1\r\nHost: x\r\n\r\n";
    let started = Instant::now();
    let (response, closed) = exchange(
        setup.gateway.proxy(),
        request.as_bytes(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(status_of(&response), Some(200), "{response}");
    assert!(closed, "an idle keep-alive connection stayed open");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn an_overlong_uri_gets_414_in_json() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "server:\n  maxUriBytes: 1024\n").await;
    let long = format!("/api/v1/tables?q={}", "a".repeat(2000));
    let response = client()
        .get(setup.gateway.url(&long))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    json_error(
        response,
        414,
        "URI too long: the request target exceeds 1024 bytes",
    )
    .await;
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn oversized_headers_get_431_in_json() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "server:\n  maxHeaderBytes: 8192\n").await;
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .header("x-padding", "p".repeat(9000))
        .send()
        .await
        .unwrap();
    json_error(
        response,
        431,
        "Request header fields too large: the headers exceed 8192 bytes",
    )
    .await;
    // Past twice the limit hyper answers itself, still 431 (its body is empty).
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .header("x-padding", "p".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 431);
    assert!(upstream.received().is_empty());
}

/// A GET with exactly `lines` header lines (Host, Connection, Authorization, and padding).
async fn request_with_lines(
    address: std::net::SocketAddr,
    authorization: &str,
    lines: usize,
) -> u16 {
    let names: Vec<String> = (0..lines - 3)
        .map(|index| format!("x-extra-{index}"))
        .collect();
    let mut headers = vec![("authorization", authorization)];
    headers.extend(names.iter().map(|name| (name.as_str(), "1")));
    crate::support::raw::raw_request(address, "GET", "/api/v1/tables", &headers)
        .await
        .status
}

/// More than 100 header lines (hyper's default, parsed without allocating) are 431 from hyper
/// itself, and nothing is forwarded; 100 reach the gateway's own checks.
#[tokio::test]
async fn a_head_with_more_than_100_header_lines_is_431() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(&upstream.url(), "").await;
    let bearer = format!("Bearer {}", token(&setup));
    let address = setup.gateway.proxy();
    // (The test upstream, hyper with its defaults, takes 100 lines too, and the gateway adds its
    // own forwarding and identity headers: 85 leave room for them.)
    assert_eq!(request_with_lines(address, &bearer, 85).await, 200);
    // Exactly 100 reach the gateway's own checks: a bad token is its 401, not hyper's 431.
    assert_eq!(
        request_with_lines(address, "Bearer not-a-token", 100).await,
        401
    );
    assert_eq!(upstream.received().len(), 1);
    // 101 are refused before anything is judged: hyper's 431, not the gateway's 401 (with the
    // old limit of 1000 this was the 401).
    assert_eq!(
        request_with_lines(address, "Bearer not-a-token", 101).await,
        431
    );
    assert_eq!(request_with_lines(address, &bearer, 101).await, 431);
    assert_eq!(upstream.received().len(), 1, "nothing more forwarded");
}

#[tokio::test]
async fn connections_past_max_connections_wait_for_a_free_slot() {
    let upstream = Upstream::start().await;
    let setup = gateway_for(
        &upstream.url(),
        "server:\n  maxConnections: 1\n  headerReadTimeout: 5s\n",
    )
    .await;
    let address = setup.gateway.proxy();
    let request = "GET /api/v1/system/version HTTP/1.1\r\nHost: x\r\n\r\n";
    // The first connection takes the only slot and keeps it (keep-alive).
    let mut first = TcpStream::connect(address).await.unwrap();
    first.write_all(request.as_bytes()).await.unwrap();
    assert_eq!(
        status_of(&read_head(&mut first, Duration::from_secs(5)).await),
        Some(200)
    );
    // The second is accepted by the kernel but not served while the first is open.
    let mut second = TcpStream::connect(address).await.unwrap();
    second.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut second, Duration::from_millis(400)).await;
    assert!(head.is_empty(), "served past maxConnections: {head}");
    drop(first);
    let head = read_head(&mut second, Duration::from_secs(5)).await;
    assert_eq!(status_of(&head), Some(200), "head: {head}");
}

#[tokio::test]
async fn unreachable_upstream_gets_502_in_json() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let setup = gateway_for(&format!("http://{address}"), "").await;
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    json_error(response, 502, BAD_GATEWAY).await;
}

#[tokio::test]
async fn slow_upstream_gets_504_and_slow_request_gets_504() {
    let upstream = Upstream::start().await;
    upstream.update(|b| b.delay = Duration::from_secs(3));
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let yaml = format!(
        "upstream:\n  url: {}\n  timeout: 300ms\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n",
        upstream.url(),
        jwks_server.url()
    );
    let setup = Setup {
        key,
        gateway: TestGateway::start_ready(&yaml).await,
        _jwks: jwks_server,
    };
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    json_error(response, 504, GATEWAY_TIMEOUT).await;
    // server.requestTimeout bounds the whole request, whatever upstream.timeout says.
    let setup = gateway_for(&upstream.url(), "server:\n  requestTimeout: 300ms\n").await;
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    json_error(response, 504, GATEWAY_TIMEOUT).await;
}

#[tokio::test]
async fn upstream_reset_before_the_head_gets_502() {
    let upstream = ScriptedUpstream::start(b"").await;
    let setup = gateway_for(&upstream.url(), "").await;
    let response = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(token(&setup))
        .send()
        .await
        .unwrap();
    json_error(response, 502, BAD_GATEWAY).await;
    // The request reached the upstream: it is not sent a second time.
    assert_eq!(
        upstream
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_used_again() {
    // A complete keep-alive answer, then the upstream closes the connection, as servers do when
    // their own idle timeout is shorter than the gateway's pool timeout.
    let upstream = ScriptedUpstream::start(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let setup = gateway_for(&upstream.url(), "").await;
    let client = client();
    for attempt in 1..=3 {
        let response = client
            .get(setup.gateway.url("/api/v1/tables"))
            .bearer_auth(token(&setup))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {attempt}");
        assert_eq!(response.text().await.unwrap(), "ok");
        // Let the upstream's close arrive before the next request.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // One connection per request: none was reused after the upstream closed it.
    assert_eq!(
        upstream
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}

#[tokio::test]
async fn upstream_cut_mid_body_ends_the_client_response_without_a_hang() {
    const HEAD_AND_PART: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"data\":[";
    for (how, upstream) in [
        ("closed", ScriptedUpstream::start(HEAD_AND_PART).await),
        (
            "reset",
            ScriptedUpstream::start_then_reset(HEAD_AND_PART).await,
        ),
    ] {
        let setup = gateway_for(&upstream.url(), "").await;
        let response = client()
            .get(setup.gateway.url("/api/v1/tables"))
            .bearer_auth(token(&setup))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{how}");
        // The status is already sent, so the client must see the body cut short: an error well
        // before the client's own 30 s timeout, never a complete-looking (or hanging) body.
        let body = tokio::time::timeout(Duration::from_secs(10), response.bytes())
            .await
            .unwrap_or_else(|_| panic!("{how}: the client response hangs"));
        assert!(
            body.as_ref().is_err_and(|error| !error.is_timeout()),
            "{how}: a truncated body must surface as an error, got {body:?}"
        );
    }
}
