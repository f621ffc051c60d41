//! The threat model's proofs: every row of SECURITY.md that request_outcomes.rs does not
//! already prove has its test here. Each starts real servers and plays the attacker.

use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// === helpers: hand-made tokens, raw HTTP, the gateway as a process ===

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a valid personal access token for alice.
pub fn alice_claims() -> Value {
    json!({"iss": "open-metadata.org", "sub": "alice", "email": "alice@open-metadata.org",
           "isBot": false, "tokenType": "PERSONAL_ACCESS", "roles": ["DataConsumer"],
           "iat": now(), "exp": now() + 3600})
}

/// A token with any header and claims, really signed with `key` (RS256 unless the header says).
pub fn signed(key: &TestKey, header: &Value, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let encoding_key = EncodingKey::from_rsa_pem(&key.private_pem).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &encoding_key, Algorithm::RS256)
            .unwrap();
    format!("{signing_input}.{signature}")
}

pub async fn status(url: &str, token: &str) -> u16 {
    client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Send bytes on a fresh connection and read until the server closes it or `wait` passes.
pub async fn raw_exchange(address: SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut received)).await;
    String::from_utf8_lossy(&received).into_owned()
}

/// Every status line in a raw response stream.
pub fn statuses(response: &str) -> Vec<u16> {
    response
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|rest| rest.get(..3)?.parse().ok())
        .collect()
}

/// `GET path` over a raw connection, so no client library rewrites the path first.
pub async fn raw_get(address: SocketAddr, path: &str, token: &str) -> u16 {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    let response = raw_exchange(address, request.as_bytes(), Duration::from_secs(10)).await;
    statuses(&response).first().copied().unwrap_or(0)
}

/// The real binary, `om-gateway run --config FILE`, with JSON logs captured line by line.
pub struct GatewayProcess {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _directory: tempfile::TempDir,
}

impl GatewayProcess {
    /// Start on 127.0.0.1:0 (both listeners) with `yaml` after the `server:` block.
    pub fn start(yaml: &str, log_filter: &str) -> GatewayProcess {
        let directory = tempfile::tempdir().unwrap();
        let config_path = directory.path().join("gateway.yaml");
        std::fs::write(&config_path, with_loopback_listeners(yaml)).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_om-gateway"))
            .args(["run", "--config"])
            .arg(&config_path)
            .env_clear()
            .env("OM_GATEWAY_LOG", log_filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        let serving = loop {
            let found = lines.lock().unwrap().iter().find_map(|line| {
                let event: Value = serde_json::from_str(line).ok()?;
                (event["message"] == "om-gateway serving").then_some(event)
            });
            if let Some(event) = found {
                break event;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not start: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        GatewayProcess {
            child,
            proxy: serving["proxy"].as_str().unwrap().parse().unwrap(),
            admin: serving["admin"].as_str().unwrap().parse().unwrap(),
            lines,
            _directory: directory,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy)
    }

    /// The child's process id (for /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ready = client()
                .get(format!("http://{}/readyz", self.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "not ready: {:?}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Send a signal with kill(1): the test owns this child and names it by pid.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for exit, polling; `None` if still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn logs(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Poll the captured output until a line contains `text`.
    pub async fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.logs().iter().any(|line| line.contains(text)) {
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?}: {:?}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn with_loopback_listeners(yaml: &str) -> String {
    format!("server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\n{yaml}")
}

/// Key A behind a key endpoint, an upstream, and a ready gateway; `extra_yaml` adds top-level
/// sections, `min_refresh` sets `jwks.minRefreshInterval`.
async fn gateway_with_key_a(
    extra_yaml: &str,
    min_refresh: &str,
) -> (TestKey, JwksServer, Upstream, TestGateway) {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = format!(
        "{}{extra_yaml}",
        basic_yaml(&upstream.url(), &[source.url()]).replace(
            "minRefreshInterval: 1s",
            &format!("minRefreshInterval: {min_refresh}")
        )
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    (key, source, upstream, gateway)
}

// === forged tokens, kid tricks, embedded keys ===

#[tokio::test]
async fn forged_tampered_and_spliced_tokens_are_refused() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let (key, _source, upstream, gateway) = gateway_with_key_a("", "1s").await;
    let url = gateway.url("/api/v1/tables");
    let header = json!({"alg": "RS256", "kid": "key-a"});
    let genuine = signed(&key, &header, &alice_claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    // Claims raised to a bot admin, the genuine signature kept.
    let mut raised = alice_claims();
    raised["isBot"] = json!(true);
    raised["roles"] = json!(["Admin"]);
    raised["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(raised.to_string()),
        parts[2]
    );
    // Another genuine token's signature spliced onto these claims.
    let other = signed(&key, &header, &json!({"sub": "bob", "exp": now() + 60}));
    let spliced = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        other.split('.').nth(2).unwrap()
    );
    // Signed by an untrusted key that claims the trusted kid.
    let impostor = signed(&TestKey::rsa_b(), &header, &alice_claims());
    let truncated = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        &parts[2][..parts[2].len() / 2]
    );
    let padded = format!("{genuine}==");
    let four_parts = format!("{genuine}.{}", parts[2]);
    for (name, token) in [
        ("tampered", tampered),
        ("spliced", spliced),
        ("impostor", impostor),
        ("truncated", truncated),
        ("padded", padded),
        ("four parts", four_parts),
    ] {
        assert_eq!(status(&url, &token).await, 401, "{name}");
    }
    assert!(upstream.received().is_empty());
    assert_eq!(status(&url, &genuine).await, 200);
}

#[tokio::test]
async fn alg_confusion_hmac_with_the_public_key_and_mismatched_algs_are_refused() {
    let (key, _source, upstream, gateway) = gateway_with_key_a("", "1s").await;
    let url = gateway.url("/api/v1/tables");
    // The classic: HS256 "signed" with the RSA public key (PEM and modulus) as the HMAC secret.
    let secrets: [&[u8]; 2] = [&key.public_pem, &key.modulus()];
    for secret in secrets {
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header {
                    kid: Some("key-a".into()),
                    ..jsonwebtoken::Header::new(algorithm)
                },
                &alice_claims(),
                &EncodingKey::from_secret(secret),
            )
            .unwrap();
            assert_eq!(status(&url, &token).await, 401, "{algorithm:?}");
        }
    }
    // A genuine RS256 signature under a header that names another algorithm (the JWK says RS256).
    for alg in [
        "RS384", "RS512", "ES256", "PS256", "rs256", "RS256 ", "none", "None", "NONE", "",
    ] {
        let token = signed(&key, &json!({"alg": alg, "kid": "key-a"}), &alice_claims());
        assert_eq!(status(&url, &token).await, 401, "alg {alg:?}");
    }
    let no_alg = signed(&key, &json!({"kid": "key-a"}), &alice_claims());
    assert_eq!(status(&url, &no_alg).await, 401);
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn kid_injection_and_path_tricks_never_find_a_key() {
    let (key, source, upstream, gateway) = gateway_with_key_a("", "30s").await;
    let url = gateway.url("/api/v1/tables");
    let hits_before = source.hits();
    let long_kid = "k".repeat(300);
    let kids: Vec<Value> = vec![
        json!("../../../../etc/passwd"),
        json!("/etc/passwd"),
        json!("key-a/../key-a"),
        json!("key-a\u{0000}"),
        json!("key-a%00"),
        json!("key-a "),
        json!("KEY-A"),
        json!("file:///etc/passwd"),
        json!("' OR '1'='1"),
        json!(long_kid),
        json!(7),
        json!({"kid": "key-a"}),
        json!(["key-a"]),
    ];
    for kid in &kids {
        let token = signed(&key, &json!({"alg": "RS256", "kid": kid}), &alice_claims());
        assert_eq!(status(&url, &token).await, 401, "kid {kid}");
    }
    // The same key with its real kid passes: only the kid trick was refused.
    let token = signed(
        &key,
        &json!({"alg": "RS256", "kid": "key-a"}),
        &alice_claims(),
    );
    assert_eq!(status(&url, &token).await, 200);
    assert!(
        upstream.received().len() == 1,
        "only the honest token reached the upstream"
    );
    // Thirteen unknown kids inside minRefreshInterval cost no fetch at all.
    assert_eq!(source.hits(), hits_before, "unknown kids caused fetches");
}

#[tokio::test]
async fn embedded_key_headers_jku_x5u_jwk_x5c_are_never_used() {
    let (_key, _source, upstream, gateway) = gateway_with_key_a("", "1s").await;
    let attacker = TestKey::rsa_b().with_kid("attacker");
    let attacker_source = JwksServer::start(jwks(&[attacker.jwk()])).await;
    let url = gateway.url("/api/v1/tables");
    let headers = [
        json!({"alg": "RS256", "kid": "attacker", "jku": attacker_source.url()}),
        json!({"alg": "RS256", "kid": "attacker", "x5u": attacker_source.url()}),
        json!({"alg": "RS256", "kid": "attacker", "jwk": attacker.jwk()}),
        json!({"alg": "RS256", "jwk": attacker.jwk()}),
        json!({"alg": "RS256", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
        // A trusted kid, but the attacker's signature and key in the header.
        json!({"alg": "RS256", "kid": "key-a", "jwk": attacker.jwk(), "jku": attacker_source.url()}),
    ];
    for header in &headers {
        let token = signed(&attacker, header, &alice_claims());
        assert_eq!(status(&url, &token).await, 401, "header {header}");
    }
    assert_eq!(
        attacker_source.hits(),
        0,
        "the gateway fetched an attacker's URL"
    );
    assert!(upstream.received().is_empty());
}

#[tokio::test]
async fn a_key_bound_to_one_issuer_never_vouches_for_another() {
    let om_key = TestKey::rsa_a().with_kid("om");
    let idp_key = TestKey::rsa_b().with_kid("idp");
    let om_source = JwksServer::start(jwks(&[om_key.jwk()])).await;
    let idp_source = JwksServer::start(jwks(&[idp_key.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = format!(
        "upstream:\n  url: {}\nopenmetadata:\n  trustServerKey: false\nauthenticationConfiguration:\n  keySources:\n    - {{ url: \"{}\", issuers: [ open-metadata.org ] }}\n    - {{ url: \"{}\", issuers: [ \"https://idp.example\" ], audiences: [ om-client ] }}\njwks:\n  minRefreshInterval: 1s\n",
        upstream.url(),
        om_source.url(),
        idp_source.url()
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let url = gateway.url("/api/v1/tables");
    let claims_with = |iss: &str, aud: Option<&str>| {
        let mut claims = alice_claims();
        claims["iss"] = json!(iss);
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        claims
    };
    let header = json!({"alg": "RS256", "kid": "idp"});
    // The identity provider's key minting an OpenMetadata-issued token: refused.
    let forged = signed(
        &idp_key,
        &header,
        &claims_with("open-metadata.org", Some("om-client")),
    );
    assert_eq!(status(&url, &forged).await, 401);
    // Its own issuer, but the wrong audience, or none: refused.
    let wrong_audience = signed(
        &idp_key,
        &header,
        &claims_with("https://idp.example", Some("other")),
    );
    assert_eq!(status(&url, &wrong_audience).await, 401);
    let no_issuer = {
        let mut claims = claims_with("x", Some("om-client"));
        claims.as_object_mut().unwrap().remove("iss");
        signed(&idp_key, &header, &claims)
    };
    assert_eq!(status(&url, &no_issuer).await, 401);
    // Each key for its own issuer: accepted.
    let honest_idp = signed(
        &idp_key,
        &header,
        &claims_with("https://idp.example", Some("om-client")),
    );
    assert_eq!(status(&url, &honest_idp).await, 200);
    let honest_om = signed(
        &om_key,
        &json!({"alg": "RS256", "kid": "om"}),
        &claims_with("open-metadata.org", None),
    );
    assert_eq!(status(&url, &honest_om).await, 200);
    assert_eq!(upstream.received().len(), 2);
}

#[tokio::test]
async fn tokens_without_exp_pass_only_as_the_expiry_policy_allows() {
    for (policy, user_status, bot_status) in
        [("bots", 401, 200), ("none", 401, 401), ("all", 200, 200)]
    {
        let key = TestKey::rsa_a();
        let source = JwksServer::start(jwks(&[key.jwk()])).await;
        let upstream = Upstream::start().await;
        let yaml = format!(
            "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n  allowTokensWithoutExpiry: {policy}\njwks:\n  minRefreshInterval: 1s\n",
            upstream.url(),
            source.url()
        );
        let gateway = TestGateway::start_ready(&yaml).await;
        let url = gateway.url("/api/v1/tables");
        let header = json!({"alg": "RS256", "kid": "key-a"});
        let mut user = alice_claims();
        user.as_object_mut().unwrap().remove("exp");
        let mut bot = alice_claims();
        bot["exp"] = Value::Null;
        bot["isBot"] = json!(true);
        bot["tokenType"] = json!("BOT");
        assert_eq!(
            status(&url, &signed(&key, &header, &user)).await,
            user_status,
            "{policy}: user"
        );
        assert_eq!(
            status(&url, &signed(&key, &header, &bot)).await,
            bot_status,
            "{policy}: bot"
        );
        // A string or negative exp is never "no expiry".
        for exp in [json!("9999999999"), json!(-1), json!(true)] {
            let mut odd = alice_claims();
            odd["exp"] = exp.clone();
            assert_eq!(
                status(&url, &signed(&key, &header, &odd)).await,
                401,
                "{policy}: exp {exp}"
            );
        }
    }
}

// === paths ===

/// The property of `properties.rs`, end to end: through the real gateway, over raw TCP (a client
/// library would normalise the path first), a disguised path gets exactly the normal form's status.
#[test]
fn disguised_paths_get_the_same_status_as_their_normal_form_through_the_gateway() {
    use proptest::strategy::{Strategy, ValueTree};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (key, _source, _upstream, gateway) = runtime.block_on(gateway_with_key_a(
        "routes:\n  - name: bots\n    match: { pathPrefix: /api/v1/bots }\n    require: { isBot: true }\n  - name: tables\n    match: { pathPrefix: /api/v1/tables }\n    require: {}\ndefaultRoute: { deny: true }\n",
        "1s",
    ));
    let token = key.tokens().personal();
    let mut runner = crate::properties::runner(48);
    let strategy = (
        prop_normal(),
        proptest::collection::vec(crate::properties::disguise_strategy(), 1..5),
    );
    let mut statuses_seen = std::collections::BTreeSet::new();
    for _ in 0..48 {
        let (normal, disguises) = strategy.new_tree(&mut runner).unwrap().current();
        let disguised = disguises.iter().fold(normal.clone(), |path, step| {
            crate::properties::disguise_path(&path, step)
        });
        let (want, got) = runtime.block_on(async {
            (
                raw_get(gateway.proxy(), &normal, &token).await,
                raw_get(gateway.proxy(), &disguised, &token).await,
            )
        });
        assert_eq!(got, want, "{disguised:?} vs {normal:?}");
        statuses_seen.insert(want);
    }
    // Fixed cases a rule must never be dodged by.
    runtime.block_on(async {
        let proxy = gateway.proxy();
        assert_eq!(raw_get(proxy, "/api/v1/bots", &token).await, 403);
        assert_eq!(raw_get(proxy, "/api/v1/%62ots", &token).await, 403);
        assert_eq!(raw_get(proxy, "/api/v1/tables/../bots", &token).await, 403);
        assert_eq!(raw_get(proxy, "//api/v1/./bots/", &token).await, 403);
        // An encoded separator is judged under every reading: as data (the default route,
        // deny) and as a separator (the bots rule); both refuse.
        assert_eq!(raw_get(proxy, "/api/v1/bots%2fx", &token).await, 403);
        assert_eq!(raw_get(proxy, "/api/v1/bots;x=1", &token).await, 400);
        assert_eq!(
            raw_get(proxy, "/api/v1/%2e%2e/%2e%2e/../api/v1/bots", &token).await,
            400
        );
        assert_eq!(
            raw_get(proxy, "/api/v1/tables%5c..%5cbots", &token).await,
            403
        );
        assert_eq!(raw_get(proxy, "/api/v1/tables", &token).await, 200);
    });
    assert!(
        statuses_seen.contains(&403) && statuses_seen.contains(&200),
        "{statuses_seen:?}"
    );
}

fn prop_normal() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    (
        prop_oneof![
            Just("/api/v1/bots"),
            Just("/api/v1/tables"),
            Just("/api/v1/other"),
            Just("/api/v1/botsx")
        ],
        proptest::collection::vec("[a-z0-9_~-]{1,5}", 0..3),
    )
        .prop_map(|(prefix, tail)| {
            let mut path = prefix.to_string();
            for segment in tail {
                path.push('/');
                path.push_str(&segment);
            }
            path
        })
}

// === the wire: smuggling, slowloris, floods ===

// Request smuggling (ambiguous framing, CL+TE) is tested once, in smuggling.rs.

#[tokio::test]
async fn slowloris_connections_are_cut_and_a_flood_of_idle_connections_does_not_starve_requests() {
    let (key, _source, _upstream, gateway) =
        gateway_with_key_a("server:\n  headerReadTimeout: 2s\n", "1s").await;
    let token = key.tokens().personal();
    // 200 idle connections and one slowloris trickling a header line every 300 ms.
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(gateway.proxy()).await.unwrap());
    }
    let mut slow = TcpStream::connect(gateway.proxy()).await.unwrap();
    slow.write_all(b"GET /api/v1/tables HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // Meanwhile an honest request is answered promptly.
    let started = Instant::now();
    assert_eq!(status(&gateway.url("/api/v1/tables"), &token).await, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let mut closed = false;
    for n in 0..40 {
        if slow
            .write_all(format!("X-Slow-{n}: a\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut byte = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {} // a 408 may precede the close
            Err(_) => {}
        }
    }
    assert!(closed, "the slowloris connection stayed open");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // The idle ones were cut by the same header-read timeout.
    let mut cut = 0;
    for mut stream in idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
        {
            cut += 1;
        }
    }
    assert!(cut >= 190, "only {cut} of 200 idle connections were closed");
    assert_eq!(status(&gateway.url("/api/v1/tables"), &token).await, 200);
}

// === keys: amplification, poisoning ===

#[tokio::test]
async fn unknown_kid_floods_cause_at_most_one_fetch_per_min_refresh_interval() {
    let (key, source, _upstream, gateway) = gateway_with_key_a("", "2s").await;
    let url = gateway.url("/api/v1/tables");
    // Wait out the floor after the initial fetch, so the flood may trigger exactly one refetch.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let before = source.hits();
    let mut requests = Vec::new();
    for n in 0..100 {
        let token = signed(
            &key,
            &json!({"alg": "RS256", "kid": format!("random-{n}")}),
            &alice_claims(),
        );
        let url = url.clone();
        requests.push(tokio::spawn(async move { status(&url, &token).await }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), 401);
    }
    let fetched = source.hits() - before;
    assert!(fetched <= 1, "100 unknown kids caused {fetched} fetches");
}

#[tokio::test]
async fn poisoned_key_documents_are_refused_whole_or_key_by_key() {
    let key = TestKey::rsa_a();
    let upstream = Upstream::start().await;
    // A source that mixes an HMAC secret under the trusted kid, an encryption key and a
    // 1024-bit RSA key.
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let short_modulus = URL_SAFE_NO_PAD.encode([0xC3u8; 128]);
    let poisoned = jwks(&[
        json!({"kty": "oct", "kid": "key-a", "k": "c2VjcmV0", "alg": "HS256"}),
        json!({"kty": "RSA", "kid": "key-a", "use": "enc", "n": key.jwk()["n"], "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "short", "n": short_modulus, "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "empty", "n": "", "e": "AQAB"}),
    ]);
    let poison_source = JwksServer::start(poisoned).await;
    let honest = JwksServer::start(jwks(&[key.jwk()])).await;
    let too_many: Vec<Value> = (0..101)
        .map(|n| key.clone().with_kid(&format!("k{n}")).jwk())
        .collect();
    let oversize_source = JwksServer::start(jwks(&too_many)).await;
    let huge = format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(2 << 20));
    let huge_source = JwksServer::start(huge).await;
    let yaml = basic_yaml(
        &upstream.url(),
        &[
            poison_source.url(),
            oversize_source.url(),
            huge_source.url(),
            honest.url(),
        ],
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let url = gateway.url("/api/v1/tables");
    // HS256 with the "secret" from the poisoned document: refused.
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header {
            kid: Some("key-a".into()),
            ..jsonwebtoken::Header::new(Algorithm::HS256)
        },
        &alice_claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert_eq!(status(&url, &hmac).await, 401);
    // The honest key still verifies.
    assert_eq!(status(&url, &key.tokens().personal()).await, 200);
    // /readyz names why the hostile documents were refused.
    let readyz: Value = client()
        .get(gateway.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    let keys: Value = gateway.keys().await;
    let text = format!("{readyz} {keys}");
    assert!(
        !text.contains("\"k100\""),
        "a 101-key document was loaded: {text}"
    );
    for kid in ["short", "empty"] {
        assert!(
            !keys.to_string().contains(&format!("\"{kid}\"")),
            "{kid} trusted: {keys}"
        );
    }
    // Exactly the honest key (and no HMAC or encryption key under its kid) is trusted.
    let trusted = keys["keys"].as_array().expect("a key list");
    assert_eq!(trusted.len(), 1, "{keys}");
    assert_eq!(trusted[0]["kid"], "key-a");
    assert_eq!(trusted[0]["family"], "Rsa");
    // The document with the malformed key still loaded its other keys' verdicts: no dead source.
    assert!(
        !keys.to_string().contains("\"loading\""),
        "a source never finished loading: {keys}"
    );
}

// === logs ===

#[tokio::test]
async fn tokens_never_reach_the_logs_and_every_log_line_is_one_json_object() {
    let key = TestKey::rsa_a();
    let source = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let mut process = GatewayProcess::start(
        &basic_yaml(&upstream.url(), &[source.url()]),
        "debug,hyper=info,reqwest=info,h2=info,rustls=info",
    );
    process.wait_ready().await;
    let good = key.tokens().personal();
    let expired = key.tokens().expired();
    let forged = {
        let mut parts: Vec<&str> = good.split('.').collect();
        parts[2] = "AAAA";
        parts.join(".")
    };
    let unknown_kid = signed(
        &key,
        &json!({"alg": "RS256", "kid": "nope\n{\"level\":\"ERROR\"}"}),
        &alice_claims(),
    );
    for token in [&good, &expired, &forged, &unknown_kid] {
        let _ = status(&process.url("/api/v1/tables"), token).await;
    }
    // Injection attempts in what a log might echo: request id, path, impersonation header, query.
    let _ = client()
        .get(process.url(&format!("/api/v1/%0a%0d{{\"evil\":1}}/x?token={good}")))
        .header(
            "x-request-id",
            "id\"}{\"level\":\"ERROR\",\"message\":\"forged",
        )
        .header("x-impersonate-user", "admin\"}{\"a\":1")
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    let _ = raw_exchange(
        process.proxy,
        b"GET /api/v1/tables\x1b[31m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    let fingerprint = om_gateway::verify::fingerprint(&good);
    process.wait_for_log(&fingerprint).await;
    process.signal("TERM");
    assert_eq!(process.wait_exit(Duration::from_secs(15)), Some(0));
    let logs = process.logs();
    assert!(logs.len() > 5, "{logs:?}");
    for line in &logs {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("log line is not one JSON object ({error}): {line}"));
        assert!(event.is_object(), "{line}");
        assert_ne!(event["message"], "forged", "a forged log event: {line}");
        for token in [&good, &expired, &forged, &unknown_kid] {
            for part in token.split('.') {
                assert!(
                    part.len() < 8 || !line.contains(part),
                    "token part in a log line: {line}"
                );
            }
        }
    }
}
