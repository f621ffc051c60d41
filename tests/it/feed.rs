//! The activity feed: the UI's `loggedInUser` call earns a cookie binding its user id; the
//! socket.io handshake must carry it with the same `userId`, or a bearer token that resolved to it.

use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::raw::{raw_request, RawResponse};
use crate::support::{JwksServer, TestGateway};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

const ALICE_ID: &str = "5f2c8a1e-0b3d-4c6e-9f70-1a2b3c4d5e6f";
const BOB_ID: &str = "0e9d8c7b-6a59-4837-a261-504f3e2d1c0b";

/// What the stand-in server received: request target and headers.
type Seen = Arc<Mutex<Vec<(String, http::HeaderMap)>>>;

/// An OpenMetadata stand-in: `loggedInUser` answers alice's user document (chunked, as Jersey does
/// for large entities), the feed answers a socket.io open packet, anything else `{}`.
async fn openmetadata() -> (SocketAddr, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let recorded = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let target = request.uri().to_string();
                        recorded
                            .lock()
                            .unwrap()
                            .push((target.clone(), request.headers().clone()));
                        let body = if target.starts_with("/api/v1/users/loggedInUser") {
                            // Padding past Jersey's 8 KiB buffer, so the real server would chunk it.
                            format!(
                                r#"{{"id":"{ALICE_ID}","name":"alice","email":"alice@open-metadata.org","description":"{}"}}"#,
                                "x".repeat(20_000)
                            )
                        } else if target.starts_with("/api/v1/push/feed") {
                            r#"0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000}"#.into()
                        } else {
                            "{}".into()
                        };
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

struct Setup {
    key: TestKey,
    _jwks: JwksServer,
    seen: Seen,
    gateway: TestGateway,
}

async fn setup() -> Setup {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let (upstream, seen) = openmetadata().await;
    let yaml = basic_yaml(&format!("http://{upstream}"), &[jwks_server.url()]);
    let gateway = TestGateway::start_ready(&yaml).await;
    Setup {
        key,
        _jwks: jwks_server,
        seen,
        gateway,
    }
}

fn handshake(user_id: &str) -> String {
    format!("/api/v1/push/feed/?EIO=4&transport=polling&userId={user_id}")
}

fn bearer(setup: &Setup) -> String {
    format!("Bearer {}", setup.key.tokens().personal())
}

/// The UI's `loggedInUser` call through the gateway (gzip offered, as browsers do); returns the
/// answer and the cookie pair (`omgw_feed=...`) it set.
async fn logged_in(setup: &Setup, bearer: &str) -> (RawResponse, String) {
    let me = raw_request(
        setup.gateway.proxy(),
        "GET",
        "/api/v1/users/loggedInUser?fields=profile,roles",
        &[("Authorization", bearer), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    let set_cookie = me.header("set-cookie").expect("a feed cookie is set");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    (me, cookie)
}

fn seen_count(setup: &Setup) -> usize {
    setup.seen.lock().unwrap().len()
}

#[tokio::test]
async fn the_logged_in_user_answer_passes_whole_and_sets_a_cookie_bound_to_its_user_id() {
    let setup = setup().await;
    let (me, _) = logged_in(&setup, &bearer(&setup)).await;
    let document: serde_json::Value =
        serde_json::from_str(&me.body).expect("body passed through whole");
    assert_eq!(document["id"], ALICE_ID);
    assert_eq!(document["description"].as_str().unwrap().len(), 20_000);
    let set_cookie = me.header("set-cookie").unwrap();
    assert!(
        set_cookie.starts_with(&format!("omgw_feed={ALICE_ID}.")),
        "{set_cookie}"
    );
    for attribute in [
        "Path=/api/v1/push/feed",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(
            set_cookie
                .split(';')
                .any(|part| part.trim().starts_with(attribute)),
            "{set_cookie} lacks {attribute}"
        );
    }
    let (_, upstream_headers) = setup.seen.lock().unwrap().last().cloned().unwrap();
    assert!(
        upstream_headers.get("accept-encoding").is_none(),
        "loggedInUser is asked for unencoded, so the gateway can read it"
    );
}

#[tokio::test]
async fn the_cookie_and_its_own_user_id_open_the_feed_without_socket_filter_headers() {
    let setup = setup().await;
    let (_, cookie) = logged_in(&setup, &bearer(&setup)).await;
    let before = seen_count(&setup);
    let feed = raw_request(
        setup.gateway.proxy(),
        "GET",
        &handshake(ALICE_ID),
        &[
            ("Cookie", &cookie),
            ("UserId", BOB_ID),
            ("SessionId", "s"),
            ("RemoteAddress", "1.2.3.4"),
        ],
    )
    .await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert!(feed.body.starts_with("0{\"sid\""), "{}", feed.body);
    let seen = setup.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), before + 1);
    let (target, headers) = seen.last().unwrap();
    assert_eq!(*target, handshake(ALICE_ID));
    for spoofable in ["userid", "sessionid", "remoteaddress"] {
        assert!(
            headers.get(spoofable).is_none(),
            "{spoofable} must be stripped"
        );
    }
    let metrics = setup.gateway.metrics().await;
    assert_eq!(
        metrics.value(
            "om_gateway_auth_decisions_total",
            &[("reason", "feed_cookie"), ("result", "allow")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn a_bearer_token_opens_the_feed_of_the_user_its_logged_in_user_call_resolved_to() {
    let setup = setup().await;
    let bearer = bearer(&setup);
    logged_in(&setup, &bearer).await;
    let feed = raw_request(
        setup.gateway.proxy(),
        "GET",
        &handshake(ALICE_ID),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(feed.status, 200, "{}", feed.body);
    assert!(feed.body.starts_with("0{\"sid\""), "{}", feed.body);
}

const NO_CREDENTIAL: &str = "Not Authorized! The activity feed needs the session cookie set by GET /api/v1/users/loggedInUser, or a bearer token";
const BAD_COOKIE: &str = "Not Authorized! The activity feed cookie is invalid or has expired";
const ONE_USER_ID: &str = "Bad request: feed requests need exactly one userId query parameter";
const MISMATCH: &str = "Socket user does not match token";

/// Every feed handshake the gateway must refuse, by name; each one runs, then the test fails
/// naming every case that went wrong. None reaches the server, and each is counted by reason.
#[tokio::test]
async fn feed_handshakes_without_a_matching_credential_are_refused_before_the_server() {
    let setup = setup().await;
    let bearer = bearer(&setup);
    let (_, cookie) = logged_in(&setup, &bearer).await;
    // (name, target, headers, status, exact message, decision reason)
    type Case<'a> = (
        &'a str,
        String,
        Vec<(&'a str, String)>,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "the cookie with another user's id",
            handshake(BOB_ID),
            vec![("Cookie", cookie.clone())],
            403,
            MISMATCH,
            "feed_user_mismatch",
        ),
        (
            "no credential at all",
            handshake(ALICE_ID),
            vec![],
            401,
            NO_CREDENTIAL,
            "feed_no_credential",
        ),
        (
            "a client's own UserId header is no credential",
            handshake(ALICE_ID),
            vec![("UserId", ALICE_ID.into())],
            401,
            NO_CREDENTIAL,
            "feed_no_credential",
        ),
        (
            "a cookie edited to another user's id",
            handshake(BOB_ID),
            vec![("Cookie", cookie.replace(ALICE_ID, BOB_ID))],
            401,
            BAD_COOKIE,
            "feed_bad_cookie",
        ),
        (
            "two userId parameters",
            format!("/api/v1/push/feed/?EIO=4&userId={ALICE_ID}&userId={BOB_ID}"),
            vec![("Cookie", cookie.clone())],
            400,
            ONE_USER_ID,
            "feed_user_id",
        ),
        (
            "no userId parameter",
            "/api/v1/push/feed/?EIO=4&transport=polling".into(),
            vec![("Cookie", cookie.clone())],
            400,
            ONE_USER_ID,
            "feed_user_id",
        ),
        (
            "a bearer token asking for another user's feed",
            handshake(BOB_ID),
            vec![("Authorization", bearer.clone())],
            403,
            MISMATCH,
            "feed_user_mismatch",
        ),
    ];
    let before = seen_count(&setup);
    let mut failures = Vec::new();
    for (name, target, headers, status, message, _) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = raw_request(setup.gateway.proxy(), "GET", target, &headers).await;
        let body: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
        let want = serde_json::json!({"code": status, "message": message});
        if response.status != *status || body.as_ref() != Some(&want) {
            failures.push(format!(
                "{name} ({target}): got {} {}, want {status} {want}",
                response.status, response.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} refusals went wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(
        seen_count(&setup),
        before,
        "refused feed requests never reach the server"
    );
    let metrics = setup.gateway.metrics().await;
    for reason in [
        "feed_user_mismatch",
        "feed_no_credential",
        "feed_bad_cookie",
        "feed_user_id",
    ] {
        let want = cases.iter().filter(|case| case.5 == reason).count() as f64;
        assert_eq!(
            metrics.value(
                "om_gateway_auth_decisions_total",
                &[("reason", reason), ("result", "deny")]
            ),
            Some(want),
            "{reason}:\n{}",
            metrics.family("om_gateway_auth_decisions_total")
        );
    }
}

#[tokio::test]
async fn no_cookie_without_a_verified_logged_in_user_answer() {
    let setup = setup().await;
    let proxy = setup.gateway.proxy();
    // Without a token: 401 from the gateway, no cookie.
    let anonymous = raw_request(proxy, "GET", "/api/v1/users/loggedInUser", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("set-cookie").is_none());
    // Other authenticated calls do not set it either.
    let bearer = format!("Bearer {}", setup.key.tokens().personal());
    let other = raw_request(
        proxy,
        "GET",
        "/api/v1/users/name/alice",
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(other.status, 200);
    assert!(other.header("set-cookie").is_none());
    // A cookie from another gateway process (another key) is not accepted here.
    let elsewhere = om_gateway::proxy::feed::FeedSessions::new()
        .unwrap()
        .issue_cookie(
            ALICE_ID,
            None,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            false,
        )
        .unwrap();
    let cookie = elsewhere
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let refused = raw_request(proxy, "GET", &handshake(ALICE_ID), &[("Cookie", &cookie)]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
}

/// Issue 13: engine.io decodes query parameter names, and OpenMetadata's `WebSocketManager` reads
/// whichever `userId` it ends up with; so every parameter whose decoded name is `userId` counts,
/// with or without a value, and more than one is refused.
#[tokio::test]
async fn issue_13_an_encoded_or_valueless_user_id_parameter_counts() {
    let setup = setup().await;
    let proxy = setup.gateway.proxy();
    let bearer = format!("Bearer {}", setup.key.tokens().personal());
    let me = raw_request(
        proxy,
        "GET",
        "/api/v1/users/loggedInUser",
        &[("Authorization", &bearer)],
    )
    .await;
    let cookie = me
        .header("set-cookie")
        .expect("a feed cookie is set")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let feed = "/api/v1/push/feed/?EIO=4&transport=polling";
    let ok = raw_request(
        proxy,
        "GET",
        &format!("{feed}&userId={ALICE_ID}"),
        &[("Cookie", &cookie)],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let before = setup.seen.lock().unwrap().len();
    for query in [
        format!("userId={ALICE_ID}&user%49d={BOB_ID}"),
        format!("user%49d={BOB_ID}&userId={ALICE_ID}"),
        format!("userId={ALICE_ID}&%75%73%65%72%49%64={BOB_ID}"),
        format!("userId={ALICE_ID}&userId"),
        format!("userId&userId={ALICE_ID}"),
        format!("userId={ALICE_ID}&userId="),
    ] {
        let response = raw_request(
            proxy,
            "GET",
            &format!("{feed}&{query}"),
            &[("Cookie", &cookie)],
        )
        .await;
        assert_eq!(response.status, 400, "{query}: {}", response.body);
        assert!(
            response.body.contains("exactly one userId"),
            "{}",
            response.body
        );
    }
    assert_eq!(
        setup.seen.lock().unwrap().len(),
        before,
        "a refused feed request reached the server"
    );
}

// === issue 14, part 4: replicas share the feed key ===

/// 32 bytes, as `openssl rand -hex 32` would write them.
const SHARED_KEY_HEX: &str = "8f2a6c1d9e0b47a3b5c6d7e8f9012345a1b2c3d4e5f60718293a4b5c6d7e8f90";
/// A different key, for a rotation and for a replica configured apart.
const NEW_KEY_HEX: &str = "0b1c2d3e4f5061728394a5b6c7d8e9f00112233445566778899aabbccddeeff0";

/// The same 32 bytes as `SHARED_KEY_HEX`, in base64 (with a line break, as `openssl rand
/// -base64` may wrap): one key, two spellings.
fn shared_key_base64() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..SHARED_KEY_HEX.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&SHARED_KEY_HEX[i..i + 2], 16).unwrap())
        .collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    format!("{}\n{}\n", &encoded[..20], &encoded[20..])
}

/// A gateway in front of the feed stand-in, with `feed_yaml` appended and `env` as its
/// environment (never the process's).
async fn replica(base: &str, feed_yaml: &str, env: &[(&str, &str)]) -> TestGateway {
    let mut config = crate::support::gateway::config_from(&format!("{base}{feed_yaml}"), env)
        .unwrap_or_else(|error| panic!("valid config: {error}"));
    let gateway = TestGateway::start_config(&mut config).await;
    gateway.wait_ready().await;
    gateway
}

/// The `omgw_feed=...` pair that `gateway` sets on alice's `loggedInUser` answer.
async fn feed_cookie(gateway: &TestGateway, bearer: &str) -> String {
    let me = raw_request(
        gateway.proxy(),
        "GET",
        "/api/v1/users/loggedInUser",
        &[("Authorization", bearer)],
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.body);
    let set_cookie = me.header("set-cookie").expect("a feed cookie is set");
    set_cookie.split(';').next().unwrap().to_string()
}

/// What the socket.io handshake for alice gets at `gateway` with `cookie` and no token.
async fn feed_status(gateway: &TestGateway, cookie: &str) -> u16 {
    raw_request(
        gateway.proxy(),
        "GET",
        &handshake(ALICE_ID),
        &[("Cookie", cookie)],
    )
    .await
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_the_feed_key_accept_each_others_cookies_and_a_rotation_keeps_them() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let (upstream, _seen) = openmetadata().await;
    let base = basic_yaml(&format!("http://{upstream}"), &[jwks_server.url()]);
    let bearer = format!("Bearer {}", key.tokens().personal());
    let directory = tempfile::tempdir().unwrap();
    let key_file = directory.path().join("feed.key");
    std::fs::write(&key_file, shared_key_base64()).unwrap();

    // Replica A reads the shared key from feed.keyFile (base64), replica B from
    // OM_GATEWAY_FEED_KEY (hex): the same 32 bytes.
    let replica_a = replica(
        &base,
        &format!("feed:\n  keyFile: \"{}\"\n", key_file.display()),
        &[],
    )
    .await;
    let replica_b = replica(&base, "", &[("OM_GATEWAY_FEED_KEY", SHARED_KEY_HEX)]).await;
    let other_key = replica(&base, "", &[("OM_GATEWAY_FEED_KEY", NEW_KEY_HEX)]).await;
    let unconfigured = replica(&base, "", &[]).await;

    let cookie = feed_cookie(&replica_a, &bearer).await;
    assert_eq!(feed_status(&replica_a, &cookie).await, 200);
    assert_eq!(
        feed_status(&replica_b, &cookie).await,
        200,
        "a reconnect that lands on the other replica keeps the feed"
    );
    assert_eq!(feed_status(&other_key, &cookie).await, 401, "another key");
    assert_eq!(
        feed_status(&unconfigured, &cookie).await,
        401,
        "a per-process random key"
    );
    let from_b = feed_cookie(&replica_b, &bearer).await;
    assert_eq!(feed_status(&replica_a, &from_b).await, 200);

    // A rotation: the new key signs, the shared one (now previous) is still accepted.
    let rotated = replica(
        &base,
        "",
        &[
            ("OM_GATEWAY_FEED_KEY", NEW_KEY_HEX),
            (
                "OM_GATEWAY_FEED_PREVIOUS_KEY_FILE",
                key_file.to_str().unwrap(),
            ),
        ],
    )
    .await;
    assert_eq!(
        feed_status(&rotated, &cookie).await,
        200,
        "a cookie made with the previous key"
    );
    let from_rotated = feed_cookie(&rotated, &bearer).await;
    assert_eq!(
        feed_status(&other_key, &from_rotated).await,
        200,
        "cookies are now made with the new key"
    );
    assert_eq!(feed_status(&replica_a, &from_rotated).await, 401);
}

#[test]
fn check_names_where_the_feed_key_comes_from_and_never_prints_it() {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("gateway.yaml");
    std::fs::write(&config, "upstream:\n  url: http://openmetadata:8585\n").unwrap();
    let check = |env: &[(&str, &str)]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"))
            .args(["check", "--config"])
            .arg(&config)
            .env_remove("OM_GATEWAY_FEED_KEY")
            .env_remove("OM_GATEWAY_FEED_KEY_FILE")
            .env_remove("OM_GATEWAY_FEED_PREVIOUS_KEY")
            .env_remove("OM_GATEWAY_FEED_PREVIOUS_KEY_FILE")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (code, stdout, _) = check(&[]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("# feed cookie key: none configured"),
        "{stdout}"
    );

    let (code, stdout, _) = check(&[
        ("OM_GATEWAY_FEED_KEY", NEW_KEY_HEX),
        ("OM_GATEWAY_FEED_PREVIOUS_KEY", SHARED_KEY_HEX),
    ]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("# feed cookie key: 32 bytes from OM_GATEWAY_FEED_KEY; previous key, still accepted: 32 bytes from OM_GATEWAY_FEED_PREVIOUS_KEY"),
        "{stdout}"
    );
    assert!(!stdout.contains(NEW_KEY_HEX) && !stdout.contains(SHARED_KEY_HEX));

    // A bad key is a configuration error (exit 2) naming the variable, not the key.
    let (code, _, stderr) = check(&[("OM_GATEWAY_FEED_KEY", "too-short")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("environment: OM_GATEWAY_FEED_KEY:") && !stderr.contains("too-short"),
        "{stderr}"
    );
}
