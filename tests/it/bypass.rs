//! Issue 13: the ways past the checks. Upgrade tunnels, forward-auth's `X-Original-URL` parsing,
//! request ids, headers a server behind the gateway may read as the gateway's, and what the
//! shipped nginx snippet passes on. Raw sockets wherever the bytes matter; real nginx wherever an
//! ingress is involved. (The feed query finding is in `feed.rs`, with the feed's other tests.)

use crate::hostile::GatewayProcess;
use crate::support::gateway::{basic_yaml, Stack};
use crate::support::keys::{jwks, TestKey};
use crate::support::nginx::{ingress_nginx_site, Nginx};
use crate::support::raw::raw_request;
use crate::support::sockets::{
    exchange, read_head, read_until_closed, status_of, websocket_accept, UpgradeAnswer,
    UpgradeUpstream,
};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RULES: &str = "routes:\n  - name: bots-admin\n    match: { pathPrefix: /api/v1/bots }\n    require: { rolesAny: [ Admin ] }\n";
/// The feed made public, so that upgrade tests need no feed cookie.
const FEED_PUBLIC: &str = "publicPaths: [ \"/api/v1/push/feed/**\" ]\n";
const FEED: &str =
    "/api/v1/push/feed/?EIO=4&transport=websocket&userId=5f2c8a1e-0b3d-4c6e-9f70-1a2b3c4d5e6f";
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// What a client sends behind an upgrade request, hoping it goes through a tunnel unjudged.
const SMUGGLED: &str = "DELETE /api/v1/bots/ingestion-bot HTTP/1.1\r\nHost: om.example\r\nx-auth-request-user: admin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// A key endpoint with key A and a ready gateway in front of `upstream_url`.
struct Front {
    key: TestKey,
    _jwks: JwksServer,
    gateway: TestGateway,
}

async fn front(upstream_url: &str, extra_yaml: &str) -> Front {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let yaml = format!(
        "{}{RULES}{extra_yaml}",
        basic_yaml(upstream_url, &[jwks_server.url()])
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    Front {
        key,
        _jwks: jwks_server,
        gateway,
    }
}

/// A raw HTTP/1.1 request head with `Host: om.example` and `lines`.
fn head(method: &str, target: &str, lines: &[&str]) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: om.example\r\n");
    for line in lines {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

fn websocket_lines<'a>(version: &'a str, key: &'a str) -> Vec<String> {
    vec![
        "Connection: Upgrade".into(),
        "Upgrade: websocket".into(),
        format!("Sec-WebSocket-Version: {version}"),
        format!("Sec-WebSocket-Key: {key}"),
    ]
}

fn lines(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

// === 1. Upgrade tunnels ===

#[tokio::test]
async fn issue_13_no_upgrade_but_a_websocket_on_a_websocket_path_ever_becomes_a_tunnel() {
    // The worst upstream: it switches protocols on every request, asked or not.
    let upstream = UpgradeUpstream::start(UpgradeAnswer::Matching).await;
    let front = front(&upstream.url(), FEED_PUBLIC).await;
    let address = front.gateway.proxy();
    let websocket = websocket_lines("13", KEY);
    let mut two_protocols = websocket.clone();
    two_protocols[1] = "Upgrade: websocket, h2c".into();
    let mut post = websocket.clone();
    post.push("Content-Length: 0".into());
    let cases: Vec<(&str, String)> = vec![
        (
            "h2c with HTTP2-Settings",
            head(
                "GET",
                "/",
                &[
                    "Connection: Upgrade, HTTP2-Settings",
                    "Upgrade: h2c",
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
                ],
            ),
        ),
        (
            "foo/1",
            head("GET", "/", &["Connection: Upgrade", "Upgrade: foo/1"]),
        ),
        (
            "TLS/1.2",
            head("GET", "/", &["Connection: Upgrade", "Upgrade: TLS/1.2"]),
        ),
        (
            "websocket, version 8",
            head("GET", FEED, &lines(&websocket_lines("8", KEY))),
        ),
        (
            "websocket, a key of 5 bytes",
            head("GET", FEED, &lines(&websocket_lines("13", "c2hvcnQ="))),
        ),
        (
            "websocket, no key",
            head("GET", FEED, &lines(&websocket[..3])),
        ),
        (
            "websocket and h2c",
            head("GET", FEED, &lines(&two_protocols)),
        ),
        ("websocket, POST", head("POST", FEED, &lines(&post))),
        (
            "websocket outside the websocket paths",
            head("GET", "/api/v1/system/version", &lines(&websocket)),
        ),
    ];
    for (name, request) in cases {
        let before = upstream.heads().len();
        let (response, closed) = exchange(
            address,
            format!("{request}{SMUGGLED}").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_ne!(status_of(&response), Some(101), "{name}: {response}");
        assert_eq!(
            status_of(&response),
            Some(502),
            "{name}: an upstream 101 to a plain request is a bad gateway: {response}"
        );
        assert!(closed, "{name}: the connection is closed after the 502");
        let heads = upstream.heads()[before..].to_vec();
        assert_eq!(heads.len(), 1, "{name}: {heads:?}");
        let seen = heads[0].to_ascii_lowercase();
        assert!(
            !seen.contains("\r\nupgrade:")
                && !seen.contains("http2-settings")
                && !seen.contains("connection: upgrade"),
            "{name}: the upstream was asked to switch: {seen}"
        );
        assert_eq!(
            upstream.tunnelled(),
            "",
            "{name}: bytes reached the upstream through a tunnel"
        );
    }
}

#[tokio::test]
async fn issue_13_an_h2c_upgrade_is_served_as_a_plain_request() {
    let setup = Stack::start(RULES).await;
    let request = head(
        "GET",
        "/api/v1/system/version",
        &[
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ],
    );
    let (response, _) = exchange(
        setup.gateway.proxy(),
        format!("{request}{SMUGGLED}").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    let statuses: Vec<u16> = response
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| status_of(&response[at..]))
        .collect();
    assert_eq!(statuses, [200, 401], "{response}");
    let received = setup.upstream.received();
    assert_eq!(received.len(), 1, "only the plain GET reached the upstream");
    let seen = &received[0];
    assert_eq!(seen.uri, "/api/v1/system/version");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(
            seen.header(name).is_none(),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
}

/// A valid WebSocket upgrade on the feed, against an upstream answering `answer`.
async fn websocket_against(answer: UpgradeAnswer, extra_yaml: &str, target: &str) -> String {
    let upstream = UpgradeUpstream::start(answer).await;
    let front = front(&upstream.url(), extra_yaml).await;
    let token = front.key.tokens().personal();
    let mut stream = TcpStream::connect(front.gateway.proxy()).await.unwrap();
    let mut request_lines = websocket_lines("13", KEY);
    request_lines.push(bearer(&token));
    let request = head("GET", target, &lines(&request_lines));
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_head(&mut stream, Duration::from_secs(5)).await;
    if answer == UpgradeAnswer::Matching {
        assert_eq!(status_of(&response), Some(101), "{response}");
        assert!(
            response.to_ascii_lowercase().contains(
                &format!("sec-websocket-accept: {}", websocket_accept(KEY)).to_ascii_lowercase()
            ),
            "{response}"
        );
        stream.write_all(b"hello over the tunnel").await.unwrap();
        let mut echoed = [0u8; 21];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("echo arrives")
            .unwrap();
        assert_eq!(&echoed, b"hello over the tunnel");
        assert_eq!(upstream.tunnelled(), "hello over the tunnel");
    } else {
        assert_eq!(status_of(&response), Some(502), "{answer:?}: {response}");
        let _ = stream.write_all(SMUGGLED.as_bytes()).await;
        let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        assert!(closed, "{answer:?}: the connection is closed after the 502");
        assert_eq!(upstream.tunnelled(), "", "{answer:?}: a tunnel opened");
    }
    let heads = upstream.heads();
    assert_eq!(heads.len(), 1);
    heads[0].to_ascii_lowercase()
}

#[tokio::test]
async fn issue_13_a_websocket_tunnel_opens_only_on_the_upstreams_matching_101() {
    for answer in [
        UpgradeAnswer::Matching,
        UpgradeAnswer::NoAccept,
        UpgradeAnswer::WrongAccept,
        UpgradeAnswer::OtherProtocol,
    ] {
        let seen = websocket_against(answer, FEED_PUBLIC, FEED).await;
        assert!(
            seen.contains("upgrade: websocket") && seen.contains("sec-websocket-key: "),
            "{answer:?}: {seen}"
        );
    }
}

#[tokio::test]
async fn issue_13_websocket_paths_are_configurable() {
    let events = "server:\n  websocketPaths: [ \"/api/v1/events/**\" ]\n";
    let seen = websocket_against(
        UpgradeAnswer::Matching,
        events,
        "/api/v1/events/stream?transport=websocket",
    )
    .await;
    assert!(seen.contains("x-auth-request-user: alice"), "{seen}");
    // The feed is not in that list: a WebSocket request there is a plain request, which this
    // upstream answers with a 101 nobody asked for.
    let upstream = UpgradeUpstream::start(UpgradeAnswer::Matching).await;
    let front = front(&upstream.url(), &format!("{FEED_PUBLIC}{events}")).await;
    let request = head("GET", FEED, &lines(&websocket_lines("13", KEY)));
    let (response, _) = exchange(
        front.gateway.proxy(),
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&response), Some(502), "{response}");
    assert!(!upstream.heads()[0].to_ascii_lowercase().contains("upgrade"));
}

#[tokio::test]
async fn issue_13_the_nginx_snippet_forwards_only_websocket_upgrades() {
    let setup = Stack::start(RULES).await;
    let nginx = Nginx::shipped(setup.gateway.proxy(), setup.upstream.address).await;
    let token = setup.key.tokens().personal();
    let authorization = bearer(&token);
    let h2c = head(
        "GET",
        "/api/v1/tables",
        &[
            &authorization,
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ],
    );
    let (response, _) = exchange(nginx.address, h2c.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status_of(&response), Some(200), "{response}");
    let seen = setup.upstream.last();
    assert_eq!(seen.uri, "/api/v1/tables");
    for name in ["upgrade", "http2-settings", "connection"] {
        assert!(
            seen.header(name).is_none(),
            "{name} reached the upstream through nginx: {:?}",
            seen.headers
        );
    }
    // A WebSocket upgrade is still forwarded as one.
    let mut websocket = websocket_lines("13", KEY);
    websocket.push(authorization.clone());
    let request = head(
        "GET",
        "/api/v1/tables?transport=websocket",
        &lines(&websocket),
    );
    let _ = exchange(nginx.address, request.as_bytes(), Duration::from_secs(5)).await;
    let seen = setup.upstream.last();
    assert_eq!(seen.uri, "/api/v1/tables?transport=websocket");
    assert_eq!(seen.header("upgrade").as_deref(), Some("websocket"));
    assert_eq!(
        seen.header("connection").map(|v| v.to_ascii_lowercase()),
        Some("upgrade".into())
    );
}

// === 2. Forward-auth: X-Original-URL ===

#[tokio::test]
async fn issue_13_forward_auth_refuses_an_original_url_with_junk_in_its_authority() {
    let setup = Stack::start(RULES).await;
    let proxy = setup.gateway.proxy();
    for url in [
        "http://om.example:?/api/v1/bots/x",
        "http://om.example?/api/v1/bots/x",
        "http://om.example#/api/v1/bots/x",
        "http://om.example:80x/api/v1/bots/x",
        "http://om.example:99999/api/v1/bots/x",
        "http://admin@om.example/api/v1/bots/x",
        "http://om.example:80@evil/api/v1/bots/x",
        "http:///api/v1/bots/x",
        "http://[::1/api/v1/bots/x",
        "http://om..example/api/v1/bots/x",
        "http://om.example",
        "http://om.example?x=/api/v1/bots",
        "https:/om.example/api/v1/bots/x",
        "ftp://om.example/api/v1/bots/x",
    ] {
        let response = raw_request(
            proxy,
            "GET",
            "/_gateway/auth",
            &[("X-Original-Method", "DELETE"), ("X-Original-URL", url)],
        )
        .await;
        assert_eq!(response.status, 400, "{url}: {}", response.body);
        assert!(
            response.body.contains("X-Original-URL"),
            "{}",
            response.body
        );
    }
    // Well-formed ones are judged as before.
    for (url, status) in [
        ("http://om.example:8443/api/v1/bots/x", 401),
        ("https://[::1]:8443/api/v1/bots/x?q=1", 401),
        ("http://om.example/signin", 200),
        ("HTTPS://OM.EXAMPLE/api/v1/system/version", 200),
    ] {
        let response = raw_request(
            proxy,
            "GET",
            "/_gateway/auth",
            &[("X-Original-Method", "GET"), ("X-Original-URL", url)],
        )
        .await;
        assert_eq!(response.status, status, "{url}: {}", response.body);
    }
}

#[tokio::test]
async fn issue_13_a_junk_host_behind_ingress_nginx_never_passes_as_public() {
    let setup = Stack::start(RULES).await;
    let (gateway, upstream) = (setup.gateway.proxy(), setup.upstream.address);
    let nginx = Nginx::start(|port| ingress_nginx_site(gateway, upstream, port)).await;
    let request = |host: &str| {
        format!(
            "DELETE /api/v1/bots/ingestion-bot HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    // The emulation works: a clean Host is judged (no token: 401).
    let (clean, _) = exchange(
        nginx.address,
        request("om.example").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&clean), Some(401), "{clean}");
    for host in [
        "om.example:?",
        "om.example:#",
        "om.example:x",
        "a@om.example",
    ] {
        let (response, _) = exchange(
            nginx.address,
            request(host).as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        let status = status_of(&response);
        assert_ne!(status, Some(200), "Host {host}: {response}");
        assert!(
            matches!(status, Some(400) | Some(500)),
            "Host {host}: nginx refuses it or turns the gateway's 400 into a 500: {response}"
        );
    }
    assert!(
        !setup
            .upstream
            .received()
            .iter()
            .any(|seen| seen.method == "DELETE"),
        "an unauthenticated DELETE reached the upstream: {:?}",
        setup.upstream.received()
    );
}

// === 4. X-Request-Id ===

#[tokio::test]
async fn issue_13_exactly_one_request_id_goes_upstream_and_it_is_the_one_echoed() {
    let setup = Stack::start(RULES).await;
    let long = "x".repeat(129);
    let cases: Vec<(Vec<&str>, bool)> = vec![
        (vec![], false),
        (vec!["abc-123_x.y:z"], true),
        (vec!["has \"quotes\" and spaces"], false),
        (vec!["tab\there"], false),
        (vec![&long], false),
        (vec!["first", "second"], false),
        (vec!["same", "same"], false),
    ];
    for (ids, kept) in cases {
        let headers: Vec<(&str, &str)> = ids.iter().map(|id| ("X-Request-Id", *id)).collect();
        let response = raw_request(
            setup.gateway.proxy(),
            "GET",
            "/api/v1/system/version",
            &headers,
        )
        .await;
        assert_eq!(response.status, 200, "{ids:?}");
        let echoed = response.header("x-request-id").expect("an id is echoed");
        let seen = setup.upstream.last();
        let upstream_ids: Vec<&str> = seen
            .headers
            .get_all("x-request-id")
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(upstream_ids, [echoed.as_str()], "{ids:?}");
        if kept {
            assert_eq!(echoed, ids[0]);
        } else {
            assert!(!ids.contains(&echoed.as_str()), "{ids:?} kept as {echoed}");
        }
    }
}

#[tokio::test]
async fn issue_13_the_access_log_names_the_request_id_the_upstream_got() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let process = GatewayProcess::start(&basic_yaml(&upstream.url(), &[source.url()]), "info");
    process.wait_ready().await;
    let response = raw_request(
        process.proxy,
        "GET",
        "/api/v1/system/version",
        &[("X-Request-Id", "not sane"), ("X-Request-Id", "twice")],
    )
    .await;
    let echoed = response.header("x-request-id").expect("an id is echoed");
    assert_eq!(
        upstream.last().header("x-request-id").as_deref(),
        Some(echoed.as_str())
    );
    process.wait_for_log(&echoed).await;
    let logged: Vec<Value> = process
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == "om_gateway::access")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0]["request_id"], echoed.as_str());
}

// === 5. Header hygiene ===

#[tokio::test]
async fn issue_13_underscore_lookalikes_of_owned_and_framing_headers_never_reach_the_upstream() {
    let setup = Stack::start(RULES).await;
    let token = setup.key.tokens().personal();
    let lookalikes = [
        "X_Auth_Request_User: admin",
        "x_auth_request_roles: Admin",
        "X-Auth_Request-Is_Bot: true",
        "X_AUTH_REQUEST_ANYTHING: 1",
        "X_Auth_Params_Email: admin@open-metadata.org",
        "X_Impersonate_User: admin",
        "Transfer_Encoding: chunked",
        "Content_Length: 5",
        "X_Forwarded_For: 10.9.9.9",
        "X_Forwarded_Host: evil.example",
        "X_Real_IP: 10.9.9.9",
        "X_Request_Id: forged",
        "Proxy_Authorization: Basic eA==",
    ];
    let mut request_lines: Vec<&str> = lookalikes.to_vec();
    let authorization = bearer(&token);
    request_lines.push(&authorization);
    request_lines.push("X_Custom_Header: kept");
    request_lines.push("Connection: close");
    let (response, _) = exchange(
        setup.gateway.proxy(),
        head("GET", "/api/v1/tables", &request_lines).as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        status_of(&response),
        Some(200),
        "a non-bot's X_Impersonate_User is removed, not judged: {response}"
    );
    let seen = setup.upstream.last();
    let underscored: Vec<&str> = seen
        .headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| name.contains('_'))
        .collect();
    assert_eq!(underscored, ["x_custom_header"], "{:?}", seen.headers);
    assert_eq!(seen.header("x-auth-request-user").as_deref(), Some("alice"));
}

#[tokio::test]
async fn issue_13_impersonation_never_reaches_the_upstream_without_a_bot_token() {
    let setup = Stack::start(RULES).await;
    // A public path, no token.
    let response = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/api/v1/system/version",
        &[("X-Impersonate-User", "admin")],
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(setup.upstream.last().header("x-impersonate-user").is_none());
    // A public path, a non-bot token.
    let personal = format!("Bearer {}", setup.key.tokens().personal());
    let response = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/signin",
        &[
            ("X-Impersonate-User", "admin"),
            ("Authorization", &personal),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(setup.upstream.last().header("x-impersonate-user").is_none());
    // A protected path, a non-bot token: still 403.
    let response = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/api/v1/tables",
        &[
            ("X-Impersonate-User", "admin"),
            ("Authorization", &personal),
        ],
    )
    .await;
    assert_eq!(response.status, 403, "{}", response.body);
    // A bot: forwarded.
    let bot = format!("Bearer {}", setup.key.tokens().ingestion_bot());
    let response = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/api/v1/tables",
        &[("X-Impersonate-User", "admin"), ("Authorization", &bot)],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        setup
            .upstream
            .last()
            .header("x-impersonate-user")
            .as_deref(),
        Some("admin")
    );
}

#[tokio::test]
async fn issue_13_forwarding_headers_a_client_sends_do_not_pass() {
    let setup = Stack::start(RULES).await;
    let response = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/api/v1/system/version",
        &[
            ("Forwarded", "for=10.9.9.9;host=evil.example;proto=https"),
            ("X-Real-IP", "10.9.9.9"),
            ("X-Forwarded-Port", "8443"),
            ("X-Forwarded-Host", "evil.example"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Prefix", "/evil"),
            ("X-Forwarded-For", "10.1.2.3"),
        ],
    )
    .await;
    assert_eq!(response.status, 200);
    let seen = setup.upstream.last();
    for name in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
    ] {
        assert!(seen.header(name).is_none(), "{name}: {:?}", seen.headers);
    }
    // raw_request sends `Host: <the gateway's address>`.
    let host = setup.gateway.proxy().to_string();
    assert_eq!(seen.header("x-forwarded-host"), Some(host));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    // Appended, as the contract says: the last entry is the one the gateway saw.
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("10.1.2.3, 127.0.0.1")
    );
    // HTTP/1.0 without Host: no X-Forwarded-Host at all, not the client's.
    let (response, _) = exchange(
        setup.gateway.proxy(),
        b"GET /api/v1/system/version HTTP/1.0\r\nX-Forwarded-Host: evil.example\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&response), Some(200), "{response}");
    assert!(setup.upstream.last().header("x-forwarded-host").is_none());
}

#[tokio::test]
async fn issue_13_host_is_validated_as_rfc_9112_asks() {
    let setup = Stack::start(RULES).await;
    let before = setup.upstream.received().len();
    let refused: &[(&str, &str)] = &[
        (
            "HTTP/1.1 without Host",
            "GET /api/v1/system/version HTTP/1.1\r\n",
        ),
        (
            "two Host headers",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: om.example\r\nHost: evil.example\r\n",
        ),
        (
            "Host with junk after the colon",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: om.example:?\r\n",
        ),
        (
            "Host with userinfo",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: admin@om.example\r\n",
        ),
        (
            "Host with a comma",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: evil.example,om.example\r\n",
        ),
        (
            "Host with a space",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: om example\r\n",
        ),
        (
            "Host with a port out of range",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: om.example:99999\r\n",
        ),
        (
            "Host with an empty port",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: om.example:\r\n",
        ),
        (
            "Host with an unclosed IPv6 literal",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: [::1\r\n",
        ),
        (
            "an empty Host",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: \r\n",
        ),
        (
            "absolute form naming another host",
            "GET http://evil.example/api/v1/system/version HTTP/1.1\r\nHost: om.example\r\n",
        ),
        (
            "HTTP/1.0 with two Host headers",
            "GET /api/v1/system/version HTTP/1.0\r\nHost: om.example\r\nHost: evil.example\r\n",
        ),
    ];
    for (name, head) in refused {
        let (response, _) = exchange(
            setup.gateway.proxy(),
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(status_of(&response), Some(400), "{name}: {response}");
        assert!(
            response.contains("application/json"),
            "{name}: the gateway's own JSON 400: {response}"
        );
    }
    assert_eq!(
        setup.upstream.received().len(),
        before,
        "a refused request reached the upstream"
    );
    for (name, head) in [
        (
            "HTTP/1.0 without Host",
            "GET /api/v1/system/version HTTP/1.0\r\n",
        ),
        (
            "an IPv6 literal with a port",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: [::1]:8080\r\n",
        ),
        (
            "a fully qualified name",
            "GET /api/v1/system/version HTTP/1.1\r\nHost: OM.example.\r\n",
        ),
        (
            "absolute form naming the same host",
            "GET http://om.example/api/v1/system/version HTTP/1.1\r\nHost: om.example\r\n",
        ),
    ] {
        let (response, _) = exchange(
            setup.gateway.proxy(),
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(status_of(&response), Some(200), "{name}: {response}");
    }
}

/// One HTTP/2 (prior knowledge) request with `:authority` from `uri` and `host` headers as given.
async fn h2_status(address: SocketAddr, uri: &str, hosts: &[&str]) -> u16 {
    use http_body_util::Empty;
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::get(uri)
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    for host in hosts {
        request
            .headers_mut()
            .append(http::header::HOST, host.parse().unwrap());
    }
    let response = sender.send_request(request).await.unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn issue_13_over_http2_authority_and_host_must_agree() {
    let setup = Stack::start(RULES).await;
    let proxy = setup.gateway.proxy();
    let uri = "http://om.example/api/v1/system/version";
    assert_eq!(h2_status(proxy, uri, &[]).await, 200);
    assert_eq!(
        setup.upstream.last().header("x-forwarded-host").as_deref(),
        Some("om.example")
    );
    assert_eq!(h2_status(proxy, uri, &["OM.EXAMPLE"]).await, 200);
    let before = setup.upstream.received().len();
    assert_eq!(h2_status(proxy, uri, &["evil.example"]).await, 400);
    assert_eq!(
        h2_status(proxy, uri, &["om.example", "om.example"]).await,
        400
    );
    assert_eq!(
        h2_status(proxy, "http://om.example:?/api/v1/system/version", &[]).await,
        400
    );
    assert_eq!(setup.upstream.received().len(), before);
}

#[tokio::test]
async fn issue_13_connection_cannot_name_authorization_or_the_headers_the_gateway_sets() {
    let setup = Stack::start(RULES).await;
    let token = setup.key.tokens().personal();
    let authorization = bearer(&token);
    let (response, _) = exchange(
        setup.gateway.proxy(),
        head(
            "GET",
            "/api/v1/tables",
            &[
                &authorization,
                "X-Request-Id: abc-123",
                "X-Drop-Me: 1",
                "Connection: Authorization, X-Request-Id, X-Forwarded-For, Host",
                "Connection: X-Auth-Request-User, Content-Length, X-Drop-Me, close",
            ],
        )
        .as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&response), Some(200), "{response}");
    let seen = setup.upstream.last();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}"))
    );
    assert_eq!(seen.header("x-request-id").as_deref(), Some("abc-123"));
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-auth-request-user").as_deref(), Some("alice"));
    assert!(seen.header("host").is_some());
    // Any other header named there is still hop-by-hop.
    assert!(seen.header("x-drop-me").is_none());
}

// === 7. nginx auth_request passes the gateway's message on ===

#[tokio::test]
async fn issue_13_behind_the_nginx_snippet_a_refusal_is_the_gateways_json() {
    let setup = Stack::start(RULES).await;
    let nginx = Nginx::shipped(setup.gateway.proxy(), setup.upstream.address).await;
    let tokens = setup.key.tokens();
    let cases = [
        (
            Some(tokens.expired()),
            "GET",
            "/api/v1/tables",
            401,
            "Expired token!",
        ),
        (
            None,
            "GET",
            "/api/v1/tables",
            401,
            "Not Authorized! Token not present",
        ),
        (
            Some(tokens.personal()),
            "DELETE",
            "/api/v1/bots/ingestion-bot",
            403,
            "Forbidden: route `bots-admin` requires",
        ),
    ];
    for (token, method, path, status, message) in cases {
        let mut request = client().request(method.parse().unwrap(), nginx.url(path));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{}", nginx.error_log());
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{method} {path}"
        );
        let challenges: Vec<String> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert!(challenges.len() <= 1, "{challenges:?}");
        let challenge = challenges.first().cloned();
        let body = response.text().await.unwrap();
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{method} {path}: not the gateway's JSON: {body}"));
        assert_eq!(json["code"], status);
        assert!(
            json["message"].as_str().unwrap().starts_with(message),
            "{body}"
        );
        match (status, token.is_some()) {
            (401, true) => assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"om-gateway\", error=\"invalid_token\"")
            ),
            (401, false) => assert_eq!(challenge.as_deref(), Some("Bearer realm=\"om-gateway\"")),
            _ => assert!(challenge.is_none(), "{challenge:?}"),
        }
    }
    // Nothing refused reached the upstream (readiness probes aside).
    assert!(setup
        .upstream
        .received()
        .iter()
        .all(|seen| seen.uri == "/api/v1/system/version"));
}
