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
    let got = sessions.check(&headers_with_cookie(cookie), query, principal, now);
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
