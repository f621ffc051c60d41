//! The one upgrade the gateway turns into a byte tunnel: an RFC 6455 WebSocket handshake, on a
//! path listed in `server.websocketPaths` (default: the activity feed, `/api/v1/push/feed/**`),
//! completed by the upstream's matching `101`.
//!
//! A tunnel carries bytes nobody judges any more, so both halves are checked: the request must be
//! a valid opening handshake (§4.1: `GET`, HTTP/1.1, `Connection: upgrade`, `Upgrade: websocket`,
//! a `Sec-WebSocket-Key` of 16 base64 bytes, `Sec-WebSocket-Version: 13`), and the upstream's
//! `101` must name `websocket` and carry `Sec-WebSocket-Accept` = base64(SHA-1(key + GUID))
//! (§4.2.2). Any other upgrade request (`h2c`, `TLS/1.2`, a bad version...) is forwarded as a
//! plain request without its `Upgrade` headers (`headers::strip_hop_by_hop_headers`); any other
//! `101` is a 502 (`forward::Forwarder::forward`). Owns the check only; `server::gateway` decides
//! to call it, `forward` splices.

use super::headers::is_upgrade;
use crate::policy::PathRule;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{
    HeaderName, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use http::{HeaderMap, Method, Request, Version};

/// RFC 6455 §1.3: appended to the key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A checked opening handshake: what the upstream's `101` must answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketHandshake {
    accept: String,
}

impl WebSocketHandshake {
    /// The handshake `request` opens, if it is a valid RFC 6455 one on a path (`path`, the
    /// normalised one) that one of `paths` matches.
    pub fn of<B>(request: &Request<B>, path: &str, paths: &[PathRule]) -> Option<Self> {
        let headers = request.headers();
        if request.method() != Method::GET
            || request.version() != Version::HTTP_11
            || !paths.iter().any(|rule| rule.pattern.matches(path))
            || !is_upgrade(headers)
            || !single(headers, &UPGRADE)?
                .as_bytes()
                .eq_ignore_ascii_case(b"websocket")
            || single(headers, &SEC_WEBSOCKET_VERSION)?.as_bytes() != b"13"
        {
            return None;
        }
        let key = single(headers, &SEC_WEBSOCKET_KEY)?;
        let decoded = STANDARD.decode(key.as_bytes()).ok()?;
        (decoded.len() == 16).then(|| WebSocketHandshake {
            accept: accept_value(key.as_bytes()),
        })
    }

    /// Whether the upstream's `101` headers complete this handshake.
    pub fn accepted_by(&self, response: &HeaderMap) -> bool {
        is_upgrade(response)
            && single(response, &UPGRADE)
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
            && single(response, &SEC_WEBSOCKET_ACCEPT)
                .is_some_and(|value| value.as_bytes() == self.accept.as_bytes())
    }
}

/// The value of `name` when the map holds exactly one.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
fn accept_value(key: &[u8]) -> String {
    let mut input = Vec::with_capacity(key.len() + GUID.len());
    input.extend_from_slice(key);
    input.extend_from_slice(GUID);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    STANDARD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PathMatch;

    fn feed() -> Vec<PathRule> {
        vec![PathRule {
            pattern: PathMatch::Prefix("/api/v1/push/feed".into()),
            source: "/api/v1/push/feed/**".into(),
        }]
    }

    fn request(method: &str, version: Version, lines: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .version(version)
            .uri("/api/v1/push/feed/?EIO=4");
        for (name, value) in lines {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const VALID: [(&str, &str); 4] = [
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn with(change: (&'static str, &'static str)) -> Vec<(&'static str, &'static str)> {
        VALID
            .iter()
            .map(|line| if line.0 == change.0 { change } else { *line })
            .collect()
    }

    #[test]
    fn only_a_valid_handshake_on_a_listed_path_is_one() {
        let paths = feed();
        let path = "/api/v1/push/feed";
        let check = |request: Request<()>, path: &str, expected: bool| {
            assert_eq!(
                WebSocketHandshake::of(&request, path, &paths).is_some(),
                expected,
                "{:?} {path}",
                request.headers()
            );
        };
        check(request("GET", Version::HTTP_11, &VALID), path, true);
        check(
            request("GET", Version::HTTP_11, &VALID),
            "/api/v1/push/feedx",
            false,
        );
        check(
            request("GET", Version::HTTP_11, &VALID),
            "/api/v1/tables",
            false,
        );
        check(request("POST", Version::HTTP_11, &VALID), path, false);
        check(request("GET", Version::HTTP_10, &VALID), path, false);
        check(request("GET", Version::HTTP_2, &VALID), path, false);
        for change in [
            ("connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("upgrade", "websocket, h2c"),
            ("sec-websocket-version", "8"),
            ("sec-websocket-version", "13, 8"),
            ("sec-websocket-key", "c2hvcnQ="),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ"),
            ("sec-websocket-key", "not base64 at all!!!!!!!"),
        ] {
            check(request("GET", Version::HTTP_11, &with(change)), path, false);
        }
        let mut doubled = VALID.to_vec();
        doubled.push(("sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA=="));
        check(request("GET", Version::HTTP_11, &doubled), path, false);
        let missing: Vec<_> = VALID[..3].to_vec();
        check(request("GET", Version::HTTP_11, &missing), path, false);
    }

    #[test]
    fn only_the_matching_101_completes_it() {
        let handshake = WebSocketHandshake::of(
            &request("GET", Version::HTTP_11, &VALID),
            "/api/v1/push/feed",
            &feed(),
        )
        .unwrap();
        // RFC 6455 §1.3's own example.
        assert_eq!(handshake.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let check = |lines: &[(&str, &str)], expected: bool| {
            let mut headers = HeaderMap::new();
            for (name, value) in lines {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            assert_eq!(handshake.accepted_by(&headers), expected, "{lines:?}");
        };
        let accept = ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        check(
            &[("connection", "Upgrade"), ("upgrade", "websocket"), accept],
            true,
        );
        check(
            &[("connection", "upgrade"), ("upgrade", "WEBSOCKET"), accept],
            true,
        );
        check(
            &[("connection", "Upgrade"), ("upgrade", "h2c"), accept],
            false,
        );
        check(
            &[("connection", "Upgrade"), ("upgrade", "websocket")],
            false,
        );
        check(&[("upgrade", "websocket"), accept], false);
        check(
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ],
            false,
        );
        check(
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                accept,
                accept,
            ],
            false,
        );
    }
}
