//! Compiled only under `#[cfg(test)]` (declared in this directory's mod.rs): tests may unwrap.
//! The activity feed's cookie: issue, verify, and every way a feed request is judged.

use super::feed::{FeedError, FeedSessions, COOKIE_LIFETIME};
use crate::verify::Principal;
use http::HeaderMap;
use std::sync::Arc;

const NOW: u64 = 1_700_000_000;
const ALICE_ID: &str = "5f2c8a1e-0b3d-4c6e-9f70-1a2b3c4d5e6f";
const BOB_ID: &str = "0e9d8c7b-6a59-4837-a261-504f3e2d1c0b";

fn alice() -> Principal {
    Principal {
        issued_by_openmetadata: false,
        server_uses_token_roles: false,
        name: "alice".into(),
        email: Some("alice@open-metadata.org".into()),
        is_bot: false,
        token_type: Some("PERSONAL_ACCESS".into()),
        roles: Arc::from([]),
        issuer: None,
        expires_at: Some(NOW + 3600),
        kid: None,
        key_source: Arc::from("test"),
        key_thumbprint: Arc::from(""),
        extra_claims: Vec::new(),
    }
}

/// The `name=value` part of a Set-Cookie header.
fn cookie_pair(set_cookie: &http::HeaderValue) -> String {
    set_cookie
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn headers_with_cookie(cookie: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(cookie) = cookie {
        headers.insert(
            http::header::COOKIE,
            format!("theme=dark; {cookie}").parse().unwrap(),
        );
    }
    headers
}

fn check(
    sessions: &FeedSessions,
    cookie: Option<&str>,
    query: Option<&str>,
    principal: Option<&Principal>,
    now: u64,
    expected: Result<(), FeedError>,
) {
    let got = sessions
        .check(&headers_with_cookie(cookie), query, principal, now)
        .map(|_| ());
    assert_eq!(
        got,
        expected,
        "cookie {cookie:?}, query {query:?}, bearer {}",
        principal.is_some()
    );
}

#[test]
fn feed_requests_are_judged_by_cookie_or_bearer() {
    let sessions = FeedSessions::new().unwrap();
    let set_cookie = sessions
        .issue_cookie(ALICE_ID, alice().expires_at, NOW, false)
        .unwrap();
    let text = set_cookie.to_str().unwrap();
    assert!(text.contains("; Path=/api/v1/push/feed"), "{text}");
    assert!(text.contains("; HttpOnly; SameSite=Strict"), "{text}");
    assert!(
        text.contains("; Max-Age=3600"),
        "cookie life ends with the token's: {text}"
    );
    assert!(!text.contains("Secure"), "{text}");
    let good = cookie_pair(&set_cookie);
    let forged = good.replace(ALICE_ID, BOB_ID);
    let other_key = cookie_pair(
        &FeedSessions::new()
            .unwrap()
            .issue_cookie(ALICE_ID, None, NOW, false)
            .unwrap(),
    );
    let mut tampered_expiry = good.clone();
    tampered_expiry =
        tampered_expiry.replace(&format!(".{}.", NOW + 3600), &format!(".{}.", NOW + 99_999));
    let alice_query = format!("EIO=4&transport=polling&userId={ALICE_ID}");
    let bob_query = format!("userId={BOB_ID}&EIO=4&transport=websocket");
    let twice = format!("userId={ALICE_ID}&userId={BOB_ID}");
    use FeedError::*;
    type Case<'a> = (Option<&'a str>, Option<&'a str>, u64, Result<(), FeedError>);
    let cases: Vec<Case> = vec![
        (Some(&good), Some(&alice_query), NOW, Ok(())),
        (Some(&good), Some(&alice_query), NOW + 3599, Ok(())),
        (Some(&good), Some(&alice_query), NOW + 3600, Err(BadCookie)),
        (Some(&good), Some(&bob_query), NOW, Err(UserMismatch)),
        (Some(&good), Some(&twice), NOW, Err(UserIdMissing)),
        (Some(&good), Some("EIO=4"), NOW, Err(UserIdMissing)),
        (Some(&good), None, NOW, Err(UserIdMissing)),
        (Some(&forged), Some(&bob_query), NOW, Err(BadCookie)),
        (Some(&other_key), Some(&alice_query), NOW, Err(BadCookie)),
        (
            Some(&tampered_expiry),
            Some(&alice_query),
            NOW,
            Err(BadCookie),
        ),
        (
            Some("omgw_feed=garbage"),
            Some(&alice_query),
            NOW,
            Err(BadCookie),
        ),
        (
            Some("omgw_feed=a.b.c.d"),
            Some(&alice_query),
            NOW,
            Err(BadCookie),
        ),
        (None, Some(&alice_query), NOW, Err(NoCredential)),
        (Some("other=1"), Some(&alice_query), NOW, Err(NoCredential)),
    ];
    for (cookie, query, now, expected) in cases {
        check(&sessions, cookie, query, None, now, expected);
    }
}

#[test]
fn bearer_clients_must_have_resolved_their_user_id_through_logged_in_user() {
    let sessions = FeedSessions::new().unwrap();
    let alice_query = format!("userId={ALICE_ID}");
    let bob_query = format!("userId={BOB_ID}");
    check(
        &sessions,
        None,
        Some(&alice_query),
        Some(&alice()),
        NOW,
        Err(FeedError::UserMismatch),
    );
    sessions.remember("Alice", ALICE_ID);
    check(
        &sessions,
        None,
        Some(&alice_query),
        Some(&alice()),
        NOW,
        Ok(()),
    );
    check(
        &sessions,
        None,
        Some(&bob_query),
        Some(&alice()),
        NOW,
        Err(FeedError::UserMismatch),
    );
}

#[test]
fn cookies_are_only_issued_for_uuid_like_ids_and_live_at_most_the_lifetime() {
    let sessions = FeedSessions::new().unwrap();
    for bad in ["", "a.b", "x y", "a;b", &"a".repeat(65)] {
        assert!(
            sessions.issue_cookie(bad, None, NOW, false).is_none(),
            "{bad:?}"
        );
    }
    let forever = sessions.issue_cookie(ALICE_ID, None, NOW, true).unwrap();
    let text = forever.to_str().unwrap();
    assert!(
        text.contains(&format!("Max-Age={}", COOKIE_LIFETIME.as_secs())),
        "{text}"
    );
    assert!(text.ends_with("; Secure"), "{text}");
    assert!(sessions
        .issue_cookie(ALICE_ID, Some(NOW), NOW, false)
        .is_none());
}

#[test]
fn feed_path_and_logged_in_user_matching() {
    use super::feed::{is_feed_path, is_logged_in_user};
    let cases = [
        ("/api/v1/push/feed", true),
        ("/api/v1/push/feed/", true),
        ("/api/v1/push/feed/socket.io", true),
        ("/api/v1/push/feedx", false),
        ("/api/v1/push", false),
    ];
    for (path, expected) in cases {
        assert_eq!(is_feed_path(path), expected, "{path}");
    }
    let get = http::Method::GET;
    assert!(is_logged_in_user(&get, "/api/v1/users/loggedInUser"));
    assert!(is_logged_in_user(&get, "/api/v1/users/loggedInUser/"));
    assert!(!is_logged_in_user(
        &http::Method::POST,
        "/api/v1/users/loggedInUser"
    ));
    assert!(!is_logged_in_user(&get, "/api/v1/users/loggedInUser/x"));
}

/// Issue 13: every parameter whose decoded name is `userId` counts, valueless ones too.
#[test]
fn feed_user_id_parameters_are_read_as_engine_io_decodes_them() {
    use super::feed::{requested_user_id, FeedError};
    let check = |query: &str, expected: Result<&str, FeedError>| {
        assert_eq!(requested_user_id(Some(query)), expected, "{query}");
    };
    let missing: Result<&str, FeedError> = Err(FeedError::UserIdMissing);
    check("EIO=4&userId=a-1", Ok("a-1"));
    check("userId=a-1&other=2&userid=b", Ok("a-1"));
    check("user%49d=a-1", Ok("a-1"));
    check("%75%73%65%72%49%64=a-1", Ok("a-1"));
    check("user%49d=b&userId=a", missing.clone());
    check("userId=a&userId", missing.clone());
    check("userId&userId=a", missing.clone());
    check("userId=a&userId=", missing.clone());
    check("userId=", missing.clone());
    check("userId", missing.clone());
    check("EIO=4", missing.clone());
    check("user%4=a&userId=b", Ok("b"));
    check("user%+9d=a&userId=b", Ok("b"));
    assert_eq!(requested_user_id(None), missing.clone());
}

/// Request ids: generated ones are `<prefix>-<hex counter>`, sane client ones are kept.
mod request_ids {
    use crate::proxy::headers::{RequestIds, X_REQUEST_ID};
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn generated_request_ids_are_prefix_dash_hex_counter() {
        let ids = RequestIds::new();
        let empty = HeaderMap::new();
        let generated: Vec<String> = (0..20)
            .map(|_| ids.take_or_generate(&empty).to_str().unwrap().to_string())
            .collect();
        let (prefix, _) = generated[0].split_once('-').unwrap();
        assert_eq!(prefix.len(), 8);
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit()));
        for (n, id) in (1u64..).zip(&generated) {
            assert_eq!(*id, format!("{prefix}-{n:x}"));
        }
        // A sane client id is kept as it is; an unsafe one is replaced.
        let check = |client: &str, kept: bool| {
            let mut headers = HeaderMap::new();
            headers.insert(X_REQUEST_ID.clone(), HeaderValue::from_str(client).unwrap());
            let id = ids.take_or_generate(&headers);
            assert_eq!(id == client, kept, "{client}");
        };
        check("abc-123_x.y:z", true);
        check("has space", false);
        check(&"x".repeat(129), false);
    }
}

/// Header rewriting: every client copy of a stripped name goes (duplicates, any case), names
/// listed in `Connection` go, and the values set are exactly those the principal and peer give.
mod header_rewriting {
    use crate::proxy::headers::{
        set_forwarded_headers, set_identity_headers, strip_hop_by_hop_headers,
        strip_identity_headers,
    };
    use http::header::{HeaderMap, HeaderName, HeaderValue};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    /// Every (name, value) pair, sorted (removal reorders a map), for comparing whole maps.
    fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
            .collect();
        pairs.sort();
        pairs
    }

    /// The implementation before issue 7, kept as the reference the faster one must match
    /// (plus issue 13: `HTTP2-Settings` is hop-by-hop, and `Connection` cannot name the
    /// end-to-end headers the upstream needs or the gateway sets).
    fn reference_strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
        let end_to_end = |name: &HeaderName| {
            let name = name.as_str();
            [
                "authorization",
                "host",
                "content-length",
                "x-request-id",
                "x-auth-params-email",
                "x-real-ip",
                "forwarded",
            ]
            .contains(&name)
                || name.starts_with("x-auth-request-")
                || name.starts_with("x-forwarded-")
        };
        let listed: Vec<HeaderName> = headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .filter(|name| !end_to_end(name))
            .collect();
        for name in listed {
            if !(keep_upgrade && name == http::header::UPGRADE) {
                headers.remove(&name);
            }
        }
        for name in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "http2-settings",
        ] {
            headers.remove(name);
        }
        if keep_upgrade {
            headers.insert(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            );
        } else {
            headers.remove(http::header::UPGRADE);
        }
    }

    #[test]
    fn identity_headers_go_with_every_duplicate_and_in_any_case() {
        let mut headers = map(&[
            ("X-Auth-Request-User", "mallory"),
            ("x-auth-request-user", "admin"),
            ("X-AUTH-REQUEST-EMAIL", "admin@example.com"),
            ("x-auth-request-roles", "Admin"),
            ("x-auth-request-roles", "DataSteward"),
            ("x-auth-request-is-bot", "true"),
            ("x-auth-request-token-type", "BOT"),
            ("x-auth-params-email", "admin@example.com"),
            ("x-auth-request-other", "kept: not an identity header"),
            ("accept", "*/*"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        strip_identity_headers(&mut headers);
        assert_eq!(
            pairs(&headers),
            pairs(&map(&[
                ("x-auth-request-other", "kept: not an identity header"),
                ("accept", "*/*"),
                ("x-forwarded-for", "10.0.0.1"),
            ]))
        );
        let mut none = map(&[("accept", "*/*")]);
        strip_identity_headers(&mut none);
        assert_eq!(pairs(&none), pairs(&map(&[("accept", "*/*")])));
    }

    #[test]
    fn hop_by_hop_stripping_matches_the_reference() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("accept", "*/*"), ("host", "a")],
            &[("connection", "keep-alive"), ("keep-alive", "timeout=5")],
            &[
                ("Connection", "X-Secret ,  X-Other"),
                ("x-secret", "1"),
                ("x-secret", "2"),
                ("X-OTHER", "3"),
                ("x-kept", "4"),
            ],
            &[
                ("connection", "x-a"),
                ("connection", "X-B, upgrade"),
                ("x-a", "1"),
                ("x-b", "2"),
                ("upgrade", "websocket"),
            ],
            &[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-key", "k"),
            ],
            &[
                ("connection", ", ,bad name,x-ok,,"),
                ("x-ok", "1"),
                ("bad", "kept"),
            ],
            &[
                ("connection", "x-forwarded-for, host, x-auth-request-user"),
                ("x-forwarded-for", "10.0.0.1"),
                ("host", "a"),
                ("x-auth-request-user", "bob"),
            ],
            &[
                (
                    "connection",
                    "Authorization, X-Request-Id, Content-Length, X-Forwarded-Host, Forwarded",
                ),
                (
                    "connection",
                    "X-Real-IP, x-auth-params-email, X-Auth-Request-Roles, x-gone",
                ),
                ("authorization", "Bearer t"),
                ("x-request-id", "id"),
                ("content-length", "0"),
                ("x-forwarded-host", "h"),
                ("forwarded", "for=x"),
                ("x-real-ip", "1.2.3.4"),
                ("x-auth-params-email", "e"),
                ("x-auth-request-roles", "r"),
                ("x-gone", "1"),
            ],
            &[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ],
            &[("upgrade", "foo/1"), ("http2-settings", "AAMA")],
            &[
                ("proxy-connection", "keep-alive"),
                ("proxy-authorization", "Basic x"),
                ("proxy-authenticate", "Basic"),
                ("te", "trailers"),
                ("te", "gzip"),
                ("trailer", "x-checksum"),
                ("transfer-encoding", "chunked"),
                ("upgrade", "h2c"),
                ("accept", "*/*"),
            ],
        ];
        for case in cases {
            for keep_upgrade in [false, true] {
                let mut fast = map(case);
                let mut reference = fast.clone();
                strip_hop_by_hop_headers(&mut fast, keep_upgrade);
                reference_strip_hop_by_hop(&mut reference, keep_upgrade);
                let mut got = pairs(&fast);
                let mut expected = pairs(&reference);
                got.sort();
                expected.sort();
                assert_eq!(got, expected, "{case:?}, keep_upgrade {keep_upgrade}");
            }
        }
        // Obs-text in Connection: that value names nothing (as before), the header still goes.
        let mut headers = map(&[("x-a", "1")]);
        headers.append(
            http::header::CONNECTION,
            HeaderValue::from_bytes(b"x-a, caf\xe9").unwrap(),
        );
        strip_hop_by_hop_headers(&mut headers, false);
        assert_eq!(pairs(&headers), pairs(&map(&[("x-a", "1")])));
    }

    #[test]
    fn forwarded_for_appends_the_client_as_display_writes_it() {
        let ips: Vec<IpAddr> = vec![
            Ipv4Addr::new(0, 0, 0, 0).into(),
            Ipv4Addr::new(9, 10, 99, 100).into(),
            Ipv4Addr::new(192, 0, 2, 7).into(),
            Ipv4Addr::new(255, 255, 255, 255).into(),
            Ipv4Addr::new(101, 110, 200, 250).into(),
            Ipv6Addr::LOCALHOST.into(),
            "2001:db8::1".parse().unwrap(),
            "::ffff:192.0.2.7".parse().unwrap(),
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff".parse().unwrap(),
        ];
        for ip in ips {
            let check = |existing: &[&str], expected: &str| {
                let mut headers = HeaderMap::new();
                for value in existing {
                    headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
                }
                set_forwarded_headers(&mut headers, ip, false, None);
                let all: Vec<_> = headers.get_all("x-forwarded-for").iter().collect();
                assert_eq!(all, [expected], "{ip} after {existing:?}");
            };
            check(&[], &ip.to_string());
            check(&["  "], &ip.to_string());
            check(&["10.1.2.3"], &format!("10.1.2.3, {ip}"));
            // The first value is kept as sent; any further ones are dropped, as before.
            check(&[" 10.1.2.3 ", "6.6.6.6"], &format!(" 10.1.2.3 , {ip}"));
        }
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        set_forwarded_headers(&mut headers, Ipv4Addr::LOCALHOST.into(), false, None);
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn forwarded_proto_and_host() {
        let client = IpAddr::from(Ipv4Addr::LOCALHOST);
        let cases = [
            (
                None,
                true,
                Some("om.example.com"),
                "https",
                Some("om.example.com"),
            ),
            (
                Some("om.example.com"),
                false,
                Some("om.example.com"),
                "http",
                Some("om.example.com"),
            ),
            (
                Some("other"),
                false,
                Some("om.example.com:8585"),
                "http",
                Some("om.example.com:8585"),
            ),
            (Some("om.example.com"), false, None, "http", None),
            (None, false, Some("bad\u{7f}host"), "http", None),
        ];
        for (host_header, tls, host, proto, forwarded_host) in cases {
            let mut headers = HeaderMap::new();
            if let Some(host_header) = host_header {
                let mut value = HeaderValue::from_str(host_header).unwrap();
                value.set_sensitive(true);
                headers.insert(http::header::HOST, value);
            }
            set_forwarded_headers(&mut headers, client, tls, host);
            assert_eq!(headers["x-forwarded-proto"], proto);
            let got = headers.get("x-forwarded-host");
            assert_eq!(got.map(|v| v.as_bytes()), forwarded_host.map(str::as_bytes));
            assert!(!got.is_some_and(HeaderValue::is_sensitive), "{host:?}");
            assert_eq!(
                headers.get_all("x-forwarded-host").iter().count(),
                usize::from(got.is_some())
            );
        }
    }

    #[test]
    fn underscore_lookalikes_of_owned_and_framing_headers_go_and_others_stay() {
        use crate::proxy::headers::strip_lookalike_headers;
        let mut headers = map(&[
            ("x_auth_request_user", "admin"),
            ("x-auth_request-roles", "Admin"),
            ("x_auth_request_whatever", "1"),
            ("x_auth_params_email", "a@b"),
            ("x_impersonate_user", "admin"),
            ("x_forwarded_for", "1.2.3.4"),
            ("x_forwarded_anything", "1"),
            ("x_real_ip", "1.2.3.4"),
            ("x_request_id", "forged"),
            ("transfer_encoding", "chunked"),
            ("content_length", "5"),
            ("proxy_authorization", "Basic x"),
            ("http2_settings", "AAMA"),
            ("x_custom", "kept"),
            ("x_auth_requestuser", "kept: not a lookalike"),
            ("accept", "*/*"),
        ]);
        strip_lookalike_headers(&mut headers);
        assert_eq!(
            pairs(&headers),
            pairs(&map(&[
                ("x_custom", "kept"),
                ("x_auth_requestuser", "kept: not a lookalike"),
                ("accept", "*/*"),
            ]))
        );
        let mut plain = map(&[
            ("x-auth-request-user", "kept by this step"),
            ("accept", "*/*"),
        ]);
        let before = pairs(&plain);
        strip_lookalike_headers(&mut plain);
        assert_eq!(pairs(&plain), before);
    }

    #[test]
    fn client_forwarding_headers_other_than_x_forwarded_for_go() {
        let mut headers = map(&[
            ("forwarded", "for=1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/x"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwardedfor", "kept: another name"),
        ]);
        set_forwarded_headers(&mut headers, Ipv4Addr::LOCALHOST.into(), false, None);
        assert_eq!(
            pairs(&headers),
            pairs(&map(&[
                ("x-forwarded-proto", "http"),
                ("x-forwarded-for", "10.0.0.1, 127.0.0.1"),
                ("x-forwardedfor", "kept: another name"),
            ]))
        );
    }

    #[test]
    fn host_is_checked_as_rfc_9112_and_9113_ask() {
        use crate::proxy::headers::{check_host, HeaderError};
        use crate::proxy::original_url::AuthorityError;
        use http::{Request, Version};
        fn check(
            version: Version,
            uri: &str,
            hosts: &[&str],
            expected: Result<Option<&str>, HeaderError>,
        ) {
            let mut request = Request::builder().version(version).uri(uri);
            for host in hosts {
                request = request.header("host", *host);
            }
            let request = request.body(()).unwrap();
            assert_eq!(
                check_host(&request).as_ref().map(|host| host.as_deref()),
                expected.as_ref().map(|host| host.as_deref()),
                "{version:?} {uri} {hosts:?}"
            );
        }
        use HeaderError::*;
        let (h10, h11, h2) = (Version::HTTP_10, Version::HTTP_11, Version::HTTP_2);
        check(h11, "/x", &["om.example"], Ok(Some("om.example")));
        check(h11, "/x", &["om.example:8585"], Ok(Some("om.example:8585")));
        check(h11, "/x", &["[::1]:80"], Ok(Some("[::1]:80")));
        check(h11, "/x", &[], Err(MissingHost));
        check(h11, "/x", &["a", "a"], Err(RepeatedHost));
        check(
            h11,
            "/x",
            &["om.example:"],
            Err(BadHost(AuthorityError::BadPort)),
        );
        check(
            h11,
            "/x",
            &["a@om.example"],
            Err(BadHost(AuthorityError::BadHost)),
        );
        check(h11, "/x", &["a,b"], Err(BadHost(AuthorityError::BadHost)));
        check(h11, "/x", &[""], Err(BadHost(AuthorityError::EmptyHost)));
        check(
            h11,
            "http://om.example/x",
            &["OM.example"],
            Ok(Some("OM.example")),
        );
        check(
            h11,
            "http://evil/x",
            &["om.example"],
            Err(AuthorityMismatch),
        );
        check(h11, "http://om.example/x", &[], Err(MissingHost));
        check(h10, "/x", &[], Ok(None));
        check(h10, "/x", &["a", "b"], Err(RepeatedHost));
        check(h2, "http://om.example/x", &[], Ok(Some("om.example")));
        check(
            h2,
            "http://om.example/x",
            &["om.example"],
            Ok(Some("om.example")),
        );
        check(h2, "http://om.example/x", &["evil"], Err(AuthorityMismatch));
        check(h2, "/x", &["om.example"], Ok(Some("om.example")));
        check(h2, "/x", &[], Err(MissingHost));
    }

    #[test]
    fn identity_headers_are_set_exactly_from_the_principal() {
        let check = |roles: &[&str], email: Option<&str>, name: &str, expected: &[(&str, &str)]| {
            let mut principal = super::alice();
            principal.name = name.into();
            principal.email = email.map(Into::into);
            principal.roles = roles.iter().map(|r| r.to_string()).collect();
            principal.token_type = None;
            let mut headers = map(&[("x-auth-request-user", "mallory")]);
            set_identity_headers(&mut headers, &principal);
            let mut got = pairs(&headers);
            got.sort();
            let mut expected: Vec<(String, String)> = expected
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            expected.sort();
            assert_eq!(got, expected, "{roles:?} {email:?} {name:?}");
        };
        let fixed = [
            ("x-auth-request-is-bot", "false"),
            ("x-auth-request-token-type", ""),
        ];
        let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
            fixed.iter().chain(extra).copied().collect()
        };
        check(
            &[],
            None,
            "alice",
            &with(&[
                ("x-auth-request-user", "alice"),
                ("x-auth-request-email", ""),
                ("x-auth-request-roles", ""),
            ]),
        );
        check(
            &["Admin"],
            Some("alice@example.com"),
            "alice",
            &with(&[
                ("x-auth-request-user", "alice"),
                ("x-auth-request-email", "alice@example.com"),
                ("x-auth-request-roles", "Admin"),
            ]),
        );
        check(
            &["Admin", "", "Data Steward"],
            Some(""),
            "alice",
            &with(&[
                ("x-auth-request-user", "alice"),
                ("x-auth-request-email", ""),
                ("x-auth-request-roles", "Admin,,Data Steward"),
            ]),
        );
        // A value a header cannot hold is not set (as before); `strip_identity_headers`, which
        // runs first on every path, has already removed the client's copy.
        let mut unset = with(&[]);
        unset.push(("x-auth-request-user", "mallory"));
        check(&["Admin", "bad\nrole"], Some("a\u{1}b"), "al\rice", &unset);
    }
}
