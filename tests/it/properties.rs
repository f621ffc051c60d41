//! Property tests: no re-encoding of a path dodges a rule, normalisation is canonical
//! and idempotent, identity headers never survive in any casing, and claim checks never panic nor
//! accept an expired token, whatever JSON the token carries. Issue 13: forward-auth's
//! `X-Original-URL` parser never ends the authority where a WHATWG parser does not.

use crate::fuzz_replay::targets::{assert_path_is_canonical, claim_fixture};
use crate::support::gateway::config_from;
use om_gateway::policy::normalize_path;
use om_gateway::proxy::headers::{strip_identity_headers, IDENTITY_HEADERS};
use om_gateway::proxy::original_url::{path_of_original_url, OriginalUrlError};
use om_gateway::verify::{check_claims, AuthError};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Routes of every kind, and a closed default: a dodge shows up as a different route name.
pub const POLICY_YAML: &str = r#"
upstream: { url: "http://127.0.0.1:9" }
authenticationConfiguration: { publicKeyUrls: [ "http://127.0.0.1:9/jwks.json" ] }
routes:
  - name: bots-exact
    match: { path: /api/v1/bots }
    require: { isBot: true }
  - name: pipelines-write
    match: { pathPrefix: /api/v1/services/ingestionPipelines, methods: [POST, PUT, PATCH, DELETE] }
    require: { rolesAny: [ IngestionBotRole ] }
  - name: users-regex
    match: { pathRegex: "/api/v1/users/[^/]+/roles" }
    require: { principals: [ admin ] }
  - name: tables
    match: { pathPrefix: /api/v1/tables }
    require: {}
defaultRoute: { deny: true }
"#;

/// Segments that land on each rule, plus free text.
fn normal_path() -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just(vec!["api", "v1", "bots"]),
        Just(vec!["api", "v1", "services", "ingestionPipelines"]),
        Just(vec!["api", "v1", "users", "alice", "roles"]),
        Just(vec!["api", "v1", "tables"]),
        Just(vec!["api", "v1"]),
        Just(vec![]),
    ];
    let tail = prop::collection::vec("[a-zA-Z0-9_~.-]{1,6}", 0..3);
    (prefix, tail, any::<bool>()).prop_filter_map(
        "dot segments are not normal",
        |(prefix, tail, trailing)| {
            if tail.iter().any(|s| s == "." || s == "..") {
                return None;
            }
            let segments: Vec<String> =
                prefix.into_iter().map(str::to_string).chain(tail).collect();
            let mut path = format!("/{}", segments.join("/"));
            if trailing && path.len() > 1 {
                path.push('/');
            }
            Some(path)
        },
    )
}

/// One way to write the same path differently, applied at a position chosen by `at`.
#[derive(Debug, Clone)]
pub enum Disguise {
    /// `%XX` (either hex case) for one unreserved character.
    Encode { at: usize, lower: bool },
    /// `./` before a segment.
    Dot { at: usize },
    /// `x/../` before a segment.
    Climb { at: usize, name: String },
    /// `//` for a `/`.
    DoubleSlash { at: usize },
}

pub fn disguise_strategy() -> impl Strategy<Value = Disguise> {
    prop_oneof![
        (any::<usize>(), any::<bool>()).prop_map(|(at, lower)| Disguise::Encode { at, lower }),
        any::<usize>().prop_map(|at| Disguise::Dot { at }),
        (any::<usize>(), "[a-z%.]{1,4}")
            .prop_filter("a real segment", |(_, n)| n != "."
                && n != ".."
                && !n.contains('%'))
            .prop_map(|(at, name)| Disguise::Climb { at, name }),
        any::<usize>().prop_map(|at| Disguise::DoubleSlash { at }),
    ]
}

pub fn disguise_path(path: &str, disguise: &Disguise) -> String {
    let slashes: Vec<usize> = path.match_indices('/').map(|(i, _)| i).collect();
    let pick_slash = |at: usize| slashes[at % slashes.len()];
    match disguise {
        Disguise::Encode { at, lower } => {
            // Never a character inside an existing escape: re-encoding `%62`'s `6` would be a
            // double encoding, a different path, not a disguise of this one.
            let bytes = path.as_bytes();
            let inside_escape =
                |i: usize| (i >= 1 && bytes[i - 1] == b'%') || (i >= 2 && bytes[i - 2] == b'%');
            let unreserved: Vec<usize> = path
                .char_indices()
                .filter(|(i, c)| {
                    (c.is_ascii_alphanumeric() || "-._~".contains(*c)) && !inside_escape(*i)
                })
                .map(|(i, _)| i)
                .collect();
            if unreserved.is_empty() {
                return path.to_string();
            }
            let index = unreserved[at % unreserved.len()];
            let byte = path.as_bytes()[index];
            let escaped = if *lower {
                format!("%{byte:02x}")
            } else {
                format!("%{byte:02X}")
            };
            format!("{}{escaped}{}", &path[..index], &path[index + 1..])
        }
        Disguise::Dot { at } => {
            let index = pick_slash(*at) + 1;
            format!("{}./{}", &path[..index], &path[index..])
        }
        Disguise::Climb { at, name } => {
            let index = pick_slash(*at) + 1;
            format!("{}{name}/../{}", &path[..index], &path[index..])
        }
        Disguise::DoubleSlash { at } => {
            let index = pick_slash(*at);
            format!("{}/{}", &path[..index], &path[index..])
        }
    }
}

fn methods() -> impl Strategy<Value = http::Method> {
    prop_oneof![
        Just(http::Method::GET),
        Just(http::Method::POST),
        Just(http::Method::PUT),
        Just(http::Method::DELETE),
    ]
}

/// The parts of an `X-Original-URL`: scheme, host, port text, junk spliced into the authority at
/// an index, path, query. Hosts avoid `xn--` labels (the oracle's IDNA escape hatch).
type UrlParts = (
    &'static str,
    String,
    String,
    Vec<&'static str>,
    prop::sample::Index,
    String,
    String,
);

fn original_url_parts() -> impl Strategy<Value = UrlParts> {
    let scheme = prop::sample::select(vec!["http", "https", "HTTPS", "ftp", "http:"]);
    let host = prop_oneof![
        "[a-zA-Z0-9_-]{1,6}(\\.[a-z0-9-]{1,6}){0,2}\\.?",
        prop::sample::select(vec![
            "10.0.0.1",
            "[::1]",
            "[2001:db8::7]",
            "1.2.3.256",
            "0x7f.1",
            "127.1",
            "a.0x",
            "a.08",
            "[v1.x]",
            "[::1",
            "",
            "a..b",
        ])
        .prop_map(str::to_string),
    ];
    let port = prop_oneof![
        Just(String::new()),
        (0u32..70_000).prop_map(|port| format!(":{port}")),
        prop::sample::select(vec![":", ":?", ":80x", ":+80", ":#"]).prop_map(str::to_string),
    ];
    let junk = prop::collection::vec(
        prop::sample::select(vec![
            "@", "user@", "user:pw@", "?", "#", ":", "[", "]", "%", "%2f", "\\", ",", ".", "/",
            " ", "a", "1",
        ]),
        0..3,
    );
    let path = "(/[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,6}){0,3}";
    let query = prop_oneof![Just(String::new()), "\\?[a-zA-Z0-9=&/?:@.%-]{0,8}"];
    (
        scheme,
        host,
        port,
        junk,
        any::<prop::sample::Index>(),
        path,
        query,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Wherever the gateway accepts an `X-Original-URL`, the `url` crate agrees on scheme, host,
    /// no userinfo, and where the path begins (the oracle shared with the fuzz target).
    #[test]
    fn original_url_parsing_agrees_with_a_whatwg_parser(
        (scheme, host, port, junk, at, path, query) in original_url_parts(),
    ) {
        let mut authority = format!("{host}{port}");
        authority.insert_str(at.index(authority.len() + 1), &junk.concat());
        let url = format!("{scheme}://{authority}{path}{query}");
        crate::fuzz_replay::targets::original_url(url.as_bytes());
    }

    /// And plain ones are accepted, whole: `host[:port]` then a path, the path and query back.
    #[test]
    fn plain_original_urls_give_their_path_and_query(
        (scheme, host, _, _, _, path, query) in original_url_parts(),
        port in prop::option::of(0u16..=65_535),
    ) {
        let plain_host = !host.is_empty()
            && (host.starts_with("[::1]") || host.starts_with("[2001")
                || host == "10.0.0.1"
                || (host.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    && !host.contains("..")
                    && !host.rsplit('.').find(|label| !label.is_empty()).is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"))));
        prop_assume!(plain_host && matches!(scheme, "http" | "https" | "HTTPS"));
        let port = port.map(|port| format!(":{port}")).unwrap_or_default();
        let url = format!("{scheme}://{host}{port}{path}{query}");
        let expected = format!("{path}{query}");
        if path.is_empty() {
            prop_assert_eq!(path_of_original_url(&url), Err(OriginalUrlError::BadPath), "{}", url);
        } else {
            prop_assert_eq!(path_of_original_url(&url), Ok(expected.as_str()), "{}", url);
        }
        crate::fuzz_replay::targets::original_url(url.as_bytes());
    }

    /// Any stack of disguises normalises back to the normal form, so it meets the same rule.
    #[test]
    fn no_encoding_of_a_path_reaches_a_different_rule(
        normal in normal_path(),
        disguises in prop::collection::vec(disguise_strategy(), 1..6),
        method in methods(),
    ) {
        let config = config_from(POLICY_YAML, &[]).expect("policy config");
        let policy = config.policy();
        let mut disguised = normal.clone();
        for step in &disguises {
            disguised = disguise_path(&disguised, step);
        }
        let normalised = normalize_path(&disguised)
            .unwrap_or_else(|error| panic!("{disguised:?} refused: {error}"));
        prop_assert_eq!(normalised.as_ref(), normal.as_str(), "from {:?}", disguised);
        prop_assert_eq!(
            &policy.route_for(&method, &normalised).name,
            &policy.route_for(&method, &normal).name
        );
        prop_assert_eq!(policy.is_public(&normalised), policy.is_public(&normal));
    }

    /// Whatever the input, an accepted path is canonical and a fixed point.
    #[test]
    fn normalisation_is_canonical_and_idempotent(
        raw in "/([a-z]{1,3}|/|\\.|\\.\\.|%[0-9a-fA-F]{2}|%|;|\\\\|é){0,16}",
    ) {
        if let Ok(normal) = normalize_path(&raw) {
            assert_path_is_canonical(&normal);
            let again = normalize_path(&normal).expect("normal form is accepted");
            prop_assert_eq!(again.as_ref(), normal.as_ref());
        }
    }

    /// Any casing of any identity header, any number of copies: none survives; others do.
    #[test]
    fn identity_headers_never_survive_stripping_in_any_casing(
        picks in prop::collection::vec((0usize..5, prop::collection::vec(any::<bool>(), 32), "[ -~]{0,20}"), 1..8),
    ) {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-auth-request-userx", http::HeaderValue::from_static("kept"));
        for (which, casing, value) in &picks {
            let name: String = IDENTITY_HEADERS[*which]
                .as_str()
                .chars()
                .zip(casing.iter().cycle())
                .map(|(c, upper)| if *upper { c.to_ascii_uppercase() } else { c })
                .collect();
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("valid name");
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.append(name, value);
            }
        }
        strip_identity_headers(&mut headers);
        for name in IDENTITY_HEADERS {
            prop_assert!(!headers.contains_key(name), "{} survived", name);
            let spelled: Vec<_> = headers.keys().filter(|k| k.as_str().eq_ignore_ascii_case(name.as_str())).collect();
            prop_assert!(spelled.is_empty());
        }
        prop_assert_eq!(headers.len(), 1);
    }

    /// Arbitrary claims: the checks return, and a past `exp` (beyond the 30 s skew) never passes.
    #[test]
    fn claim_checks_never_panic_and_never_accept_an_expired_token(
        claims in claims(),
        expired_by in 31u64..10_000_000_000,
        as_float in any::<bool>(),
    ) {
        let (key, settings) = claim_fixture();
        let _ = check_claims(&claims, key, settings);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let mut expired = claims.clone();
        let exp = now.saturating_sub(expired_by);
        expired.insert("exp".into(), if as_float { json!(exp as f64 + 0.5) } else { json!(exp) });
        let outcome = check_claims(&expired, key, settings);
        prop_assert!(outcome.is_err(), "accepted exp={} (now {})", exp, now);
        // And an otherwise valid principal with that exp is refused for exactly that reason.
        let mut valid = Map::new();
        valid.insert("sub".into(), json!("alice"));
        valid.insert("exp".into(), expired["exp"].clone());
        prop_assert_eq!(check_claims(&valid, key, settings).err(), Some(AuthError::Expired));
    }
}

/// JSON values of any shape, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!("alice@open-metadata.org")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Claim maps over the names the checks read (in several casings) and random ones.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let name = prop_oneof![
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("iss"),
        Just("aud"),
        Just("sub"),
        Just("email"),
        Just("isBot"),
        Just("ISBOT"),
        Just("tokenType"),
        Just("roles"),
        Just("Roles"),
        Just("preferred_username"),
        Just("x"),
    ]
    .prop_map(str::to_string);
    prop::collection::btree_map(name, json_value(), 0..10).prop_map(|map| map.into_iter().collect())
}

/// Proptest's runner, for properties that drive the real gateway from inside one runtime.
pub fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}
