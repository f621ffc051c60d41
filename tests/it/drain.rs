//! Issue 14, part 2: the drain view. After a rotation an operator must know when the old key
//! has drained before removing it (bot tokens never expire): per kid, how many verifications,
//! the last use and the distinct principals seen in the last 24 h (`/keys`,
//! `om_gateway_token_verifications_total{kid,source}`, `om-gateway keys`); and, once a kid is no
//! longer published by any source, whether tokens still present it
//! (`om_gateway_retired_kid_presentations_total{kid}`, the alert in deploy/prometheus).

use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, TestGateway, Upstream};
use om_gateway::cli::TokenRequest;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

async fn status(gateway: &TestGateway, token: &str) -> u16 {
    client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// The /keys entry of the key with `kid`.
fn key_entry(keys: &Value, kid: &str) -> Value {
    keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid)
        .cloned()
        .unwrap_or_else(|| panic!("no key {kid} in {keys}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `subject` signed by `key` (a personal access token, or a bot's).
fn token_for(key: &TestKey, subject: &str, is_bot: bool) -> String {
    let tokens = key.tokens();
    tokens.mint(&TokenRequest {
        subject: subject.into(),
        email: Some(format!("{subject}@open-metadata.org")),
        is_bot,
        token_type: Some(if is_bot { "BOT" } else { "PERSONAL_ACCESS" }.into()),
        ..tokens.request()
    })
}

/// Run `om-gateway keys --admin-url URL` (the real binary, on a blocking thread so the
/// gateway in this test keeps answering it): exit code and stdout + stderr.
async fn keys_command(admin_url: String) -> (Option<i32>, String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_om-gateway"))
            .args(["keys", "--admin-url", &admin_url])
            .env_remove("OM_GATEWAY_ADMIN_LISTEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_view_follows_a_key_from_use_through_retirement() {
    let old_key = TestKey::rsa_a(); // kid key-a
    let new_key = TestKey::rsa_b().with_kid("om-2026");
    let source = JwksServer::start(jwks(&[old_key.jwk(), new_key.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = format!(
        "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\njwks:\n  refreshInterval: 300ms\n  minRefreshInterval: 200ms\n",
        upstream.url(),
        source.url()
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    let url = source.url();

    // Both keys in use: alice twice with one token (the second a cache hit), the ingestion bot
    // on the old key; bob already on the new one.
    let alice = token_for(&old_key, "alice", false);
    let bot = token_for(&old_key, "ingestion-bot", true);
    let bob = token_for(&new_key, "bob", false);
    for token in [&alice, &alice, &bot, &bob] {
        assert_eq!(status(&gateway, token).await, 200);
    }
    // A kid no source ever published: refused, and never a label value.
    let made_up = old_key.tokens().mint(&TokenRequest {
        kid: Some("made-up-kid".into()),
        ..old_key.tokens().request()
    });
    assert_eq!(status(&gateway, &made_up).await, 401);

    let view = gateway.keys().await;
    let old_usage = &key_entry(&view, "key-a")["usage"];
    assert_eq!(old_usage["verifications"], 3, "{old_usage}");
    assert_eq!(old_usage["principalsLast24h"], 2, "{old_usage}");
    let mut names: Vec<&str> = old_usage["principals"]
        .as_array()
        .expect("principal names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "ingestion-bot"], "{old_usage}");
    let last_use = old_usage["lastUse"].as_u64().expect("lastUse");
    assert!(now().abs_diff(last_use) < 60, "{old_usage}");
    let new_usage = &key_entry(&view, "om-2026")["usage"];
    assert_eq!(new_usage["verifications"], 1, "{new_usage}");
    assert_eq!(new_usage["principals"], serde_json::json!(["bob"]));
    assert_eq!(view["retiredKids"], serde_json::json!([]), "{view}");

    let metrics = gateway.metrics().await;
    let verifications = |kid: &str| {
        metrics.value(
            "om_gateway_token_verifications_total",
            &[("kid", kid), ("source", &url)],
        )
    };
    let family = metrics.family("om_gateway_token_verifications_total");
    assert_eq!(verifications("key-a"), Some(3.0), "{family}");
    assert_eq!(verifications("om-2026"), Some(1.0));
    assert!(
        metrics
            .samples
            .iter()
            .all(|sample| !sample.labels.values().any(|value| value == "made-up-kid")),
        "a kid nobody published became a label"
    );

    let (code, printed) = keys_command(gateway.admin_url("")).await;
    assert_eq!(code, Some(0), "{printed}");
    let old_line = printed
        .lines()
        .find(|line| line.contains("kid key-a"))
        .unwrap_or_else(|| panic!("no line for key-a:\n{printed}"));
    assert!(
        old_line.contains("2 principals in the last 24 h: ")
            && old_line.contains("alice")
            && old_line.contains("ingestion-bot"),
        "{old_line}"
    );
    assert!(
        printed.lines().any(|line| line.contains("kid om-2026")
            && line.contains("1 principal in the last 24 h: bob")),
        "{printed}"
    );

    // The old key is retired at its source. Alice's token, cached before, now gets 401.
    source.set_body(jwks(&[new_key.jwk()]));
    eventually("key-a to leave", Duration::from_secs(5), async || {
        gateway.keys().await["keys"].as_array().map(Vec::len) == Some(1)
    })
    .await;
    assert_eq!(status(&gateway, &alice).await, 401);

    let view = gateway.keys().await;
    let retired = view["retiredKids"].as_array().expect("retiredKids");
    assert_eq!(retired.len(), 1, "{view}");
    let retired = &retired[0];
    assert_eq!(retired["kid"], "key-a", "{retired}");
    assert_eq!(retired["sources"], serde_json::json!([url]), "{retired}");
    assert_eq!(retired["presentedSinceRetired"], 1, "{retired}");
    assert!(retired["lastPresented"].as_u64().is_some(), "{retired}");
    assert_eq!(retired["verifications"], 3, "{retired}");
    assert_eq!(retired["principalsLast24h"], 2, "{retired}");
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value(
            "om_gateway_retired_kid_presentations_total",
            &[("kid", "key-a")]
        ),
        Some(1.0),
        "{}",
        metrics.family("om_gateway_retired_kid_presentations_total")
    );

    let (code, printed) = keys_command(gateway.admin_url("")).await;
    assert_eq!(code, Some(0), "{printed}");
    let retired_line = printed
        .lines()
        .find(|line| line.contains("kid key-a"))
        .unwrap_or_else(|| panic!("no line for key-a:\n{printed}"));
    assert!(
        retired_line.contains("no source publishes it")
            && retired_line.contains("still presented 1 time"),
        "{retired_line}"
    );
}

#[tokio::test]
async fn the_keys_command_says_plainly_when_no_gateway_answers() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (code, printed) = keys_command(format!("http://{closed}")).await;
    assert_eq!(code, Some(1), "{printed}");
    assert!(
        printed.contains(&format!("http://{closed}/keys")),
        "{printed}"
    );
}

/// The runbook retires OpenMetadata's old key by removing it from `publicKeyFiles` (OpenMetadata
/// publishes only its current key): a reload that builds a new key store must keep the drain
/// view, and must see the old kid retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_a_key_file_by_reload_keeps_the_drain_view_and_watches_the_old_kid() {
    let old_key = TestKey::rsa_a(); // kid key-a, from a PEM file
    let new_key = TestKey::rsa_b().with_kid("om-2026");
    let openmetadata = JwksServer::start(jwks(&[new_key.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = |with_old_key: bool| {
        let files = if with_old_key {
            format!(
                "  publicKeyFiles:\n    - {{ file: \"{}\", kid: key-a }}\n",
                old_key.public_pem_path().display()
            )
        } else {
            String::new()
        };
        format!(
            "upstream:\n  url: {}\nauthenticationConfiguration:\n  publicKeyUrls: [ \"{}\" ]\n{files}jwks:\n  minRefreshInterval: 200ms\n",
            upstream.url(),
            openmetadata.url()
        )
    };
    let gateway = TestGateway::start_ready(&yaml(true)).await;
    eventually("OpenMetadata's key", Duration::from_secs(5), async || {
        gateway.keys().await["keys"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    let bot = token_for(&old_key, "ingestion-bot", true);
    assert_eq!(status(&gateway, &bot).await, 200);
    assert_eq!(
        status(&gateway, &token_for(&new_key, "bob", false)).await,
        200
    );
    let file_source = key_entry(&gateway.keys().await, "key-a")["source"].clone();

    // Retire the old key: the file leaves the configuration; the reload builds a new key store.
    let config = crate::support::gateway::config_from(&yaml(false), &[]).unwrap();
    om_gateway::server::reload_with(&gateway.server.gateway, config).unwrap();
    eventually(
        "the new key store to load",
        Duration::from_secs(5),
        async || gateway.keys().await["keys"].as_array().map(Vec::len) == Some(1),
    )
    .await;
    assert_eq!(status(&gateway, &bot).await, 401);

    let view = gateway.keys().await;
    let new_usage = &key_entry(&view, "om-2026")["usage"];
    assert_eq!(
        (&new_usage["verifications"], &new_usage["principals"]),
        (&serde_json::json!(1), &serde_json::json!(["bob"])),
        "the new key's history survived the reload: {view}"
    );
    let retired = view["retiredKids"].as_array().expect("retiredKids");
    assert_eq!(retired.len(), 1, "{view}");
    assert_eq!(retired[0]["kid"], "key-a", "{view}");
    assert_eq!(
        retired[0]["sources"],
        serde_json::json!([file_source]),
        "{view}"
    );
    assert_eq!(
        retired[0]["principals"],
        serde_json::json!(["ingestion-bot"])
    );
    assert_eq!(retired[0]["presentedSinceRetired"], 1, "{view}");
    assert!(
        !view["retiredKids"].to_string().contains("om-2026"),
        "a kid of a source still loading is not retired: {view}"
    );
}
