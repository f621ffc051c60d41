//! HTTP/1 request smuggling: ambiguous framing is refused (400) or, where RFC 9112
//! lets a server pick one reading, read one way and the connection closed, so that no second
//! request can hide in the first one's body. Raw sockets, because no client library sends these.

use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::sockets::{body_of, exchange, status_of};
use crate::support::{JwksServer, TestGateway, Upstream};
use std::time::Duration;

struct Setup {
    token: String,
    _jwks: JwksServer,
    upstream: Upstream,
    gateway: TestGateway,
}

async fn setup() -> Setup {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let gateway =
        TestGateway::start_ready(&basic_yaml(&upstream.url(), &[jwks_server.url()])).await;
    Setup {
        token: key.tokens().personal(),
        _jwks: jwks_server,
        upstream,
        gateway,
    }
}

/// Each case: a name, the framing headers and body after the common head, and whether the
/// gateway answers the 400 itself in JSON (false: hyper's bare 400).
const REFUSED: &[(&str, &str, bool)] = &[
    (
        "conflicting Content-Length",
        "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        false,
    ),
    (
        "Content-Length with a sign",
        "Content-Length: +5\r\n\r\nhello",
        false,
    ),
    (
        "Content-Length list",
        "Content-Length: 5, 6\r\n\r\nhello!",
        false,
    ),
    (
        "obs-fold header continuation",
        "X-Folded: first\r\n second\r\nContent-Length: 5\r\n\r\nhello",
        false,
    ),
    (
        "Transfer-Encoding other than chunked last",
        "Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    ),
    (
        "misspelt Transfer-Encoding",
        "Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    ),
    (
        "Transfer-Encoding twice, chunked then identity",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    ),
    (
        "whitespace before the colon of Transfer-Encoding",
        "Transfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        false,
    ),
    (
        "bad chunk size",
        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        true,
    ),
    (
        "chunk size overflow",
        "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        true,
    ),
];

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let setup = setup().await;
    for (name, framing, json) in REFUSED {
        let request = format!(
            "POST /api/v1/tables HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{framing}",
            setup.token
        );
        let (response, closed) = exchange(
            setup.gateway.proxy(),
            request.as_bytes(),
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(status_of(&response), Some(400), "{name}: {response}");
        assert!(
            closed,
            "{name}: the connection must close after a framing error"
        );
        if *json {
            let body: serde_json::Value =
                serde_json::from_str(body_of(&response)).expect("JSON body");
            assert_eq!(body["code"], 400, "{name}");
        }
        assert!(
            setup.upstream.received().is_empty(),
            "{name}: the upstream saw {:?}",
            setup.upstream.received()
        );
    }
}

#[tokio::test]
async fn transfer_encoding_in_http_1_0_is_refused() {
    let setup = setup().await;
    let request = format!(
        "POST /api/v1/tables HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        setup.token
    );
    let (response, _) = exchange(
        setup.gateway.proxy(),
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(status_of(&response), Some(400), "{response}");
    assert!(setup.upstream.received().is_empty());
}

/// Content-Length and Transfer-Encoding together: hyper reads the body as chunked (RFC 9112
/// section 6.3 lets a server do this instead of refusing), drops the Content-Length, and closes
/// the connection after answering. The classic CL.TE payload therefore smuggles nothing: the
/// upstream sees one request with the chunked body, and the tail is never read as a request.
#[tokio::test]
async fn content_length_with_transfer_encoding_smuggles_nothing() {
    let setup = setup().await;
    let smuggled = "GET /api/v1/admin HTTP/1.1\r\nHost: x\r\n\r\n";
    let request = format!(
        "POST /api/v1/tables HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
        setup.token,
        5 + smuggled.len()
    );
    let (response, closed) = exchange(
        setup.gateway.proxy(),
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(closed, "the connection must close after a CL+TE request");
    assert_eq!(
        response.matches("HTTP/1.1 ").count(),
        1,
        "exactly one response: {response}"
    );
    let received = setup.upstream.received();
    assert!(received.len() <= 1, "the upstream saw {received:?}");
    for request in &received {
        assert_eq!(request.uri, "/api/v1/tables");
        assert_eq!(request.body_len, 0, "the chunked reading (empty) wins");
        assert!(request.header("content-length").is_none_or(|l| l == "0"));
    }
}
