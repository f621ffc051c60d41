//! Route policies: no encoding trick dodges a rule, what reaches the upstream is the
//! path the rules read, 403s name the rule, every decision is counted, and the OpenMetadata
//! preset loads and decides as its comments promise.

use crate::support::client;
use crate::support::keys::TestKey;
use crate::support::raw::raw_request;
use om_gateway::cli::TokenRequest;
use om_gateway::config::{load, ConfigText, LoadInput};
use om_gateway::policy::Policy;
use om_gateway::verify::Principal;
use std::collections::HashMap;
use std::sync::Arc;

const BOTS_RULE: &str = "authorizerConfiguration:\n  adminPrincipals: [ admin ]\n\
routes:\n  - name: bots-admin\n    match: { pathPrefix: /api/v1/bots }\n    require: { rolesAny: [ Admin ] }\n";

use crate::support::gateway::Stack as Setup;

const FORBIDDEN: &str = "Forbidden: route `bots-admin` requires a role among [Admin]";
const PARAMETERS: &str = "Bad request: path contains `;` path parameters";

async fn setup(extra_yaml: &str) -> Setup {
    Setup::start(extra_yaml).await
}

fn admin_token(key: &TestKey) -> String {
    let tokens = key.tokens();
    tokens.mint(&TokenRequest {
        subject: "admin".into(),
        email: Some("admin@open-metadata.org".into()),
        ..tokens.request()
    })
}

#[tokio::test]
async fn no_encoding_trick_dodges_a_route_rule() {
    let setup = setup(BOTS_RULE).await;
    let alice = format!("Bearer {}", setup.key.tokens().personal());
    // (target, status, exact message): every spelling of the rule's path is judged by the rule,
    // every ambiguous one is a 400 naming what is wrong; never a 200, never "400 or 403".
    let tricks: &[(&str, u16, &str)] = &[
        // Every spelling of the rule's path meets the rule.
        ("/api/v1/bots", 403, FORBIDDEN),
        ("/api/v1/%62ots", 403, FORBIDDEN),
        ("/api/v1/%62%6F%74%73/x", 403, FORBIDDEN),
        ("/api/v1/x/../bots", 403, FORBIDDEN),
        ("/api/v1/x/%2e%2e/bots", 403, FORBIDDEN),
        ("/api/v1/x/%2E%2E/bots", 403, FORBIDDEN),
        ("/api/v1/%2e%2e/v1/bots", 403, FORBIDDEN),
        ("/api//v1/bots", 403, FORBIDDEN),
        ("/api/v1//bots", 403, FORBIDDEN),
        ("//api/v1/bots", 403, FORBIDDEN),
        ("/api/v1/./bots", 403, FORBIDDEN),
        ("/api/v1/%2e/bots", 403, FORBIDDEN),
        ("/api/v1/bots/", 403, FORBIDDEN),
        ("/api/v1/bots/.", 403, FORBIDDEN),
        // Encoded separators (entity names hold them): judged under every reading, the escape
        // as data and as a separator (or `%3B` as parameters); the rule's reading refuses.
        ("/api/v1/bots%2f", 403, FORBIDDEN),
        ("/api/v1/bots%2Fx", 403, FORBIDDEN),
        ("/api/v1/bots%5c", 403, FORBIDDEN),
        ("/api/v1/bots%3bx=1", 403, FORBIDDEN),
        ("/api/v1/bots/..%2f..%2fx", 403, FORBIDDEN),
        // Ambiguous: refused as a bad request, whatever the rule would say.
        ("/api/v1/bots\\x", 400, "Bad request: path contains a `\\`"),
        ("/api/v1/bots;x=1", 400, PARAMETERS),
        (
            "/api/v1/bots%00",
            400,
            "Bad request: path contains a NUL byte",
        ),
        (
            "/api/v1/bots%",
            400,
            "Bad request: path has a malformed percent-encoding",
        ),
        (
            "/%2e%2e/api/v1/bots",
            400,
            "Bad request: path climbs above the root with `..`",
        ),
        // A public prefix cannot smuggle a protected path.
        ("/signin/../api/v1/bots", 403, FORBIDDEN),
        ("/assets/%2e%2e/api/v1/bots", 403, FORBIDDEN),
        ("/api/v1/system/config/jwks/../../../bots", 403, FORBIDDEN),
    ];
    let mut failures = Vec::new();
    for (target, status, message) in tricks {
        let response = raw_request(
            setup.gateway.proxy(),
            "GET",
            target,
            &[("Authorization", &alice)],
        )
        .await;
        let want = serde_json::json!({"code": status, "message": message});
        let body: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
        if response.status != *status || body.as_ref() != Some(&want) {
            failures.push(format!(
                "{target}: got {} {}, want {status} {want}",
                response.status, response.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tricks were not answered as expected:\n{}",
        failures.len(),
        tricks.len(),
        failures.join("\n")
    );
    assert!(
        setup.upstream.received().is_empty(),
        "no trick reached the upstream: {:?}",
        setup.upstream.received()
    );
    // The rule really guards the path: an admin passes, and the upstream sees the normal form.
    let admin = format!("Bearer {}", admin_token(&setup.key));
    for (target, forwarded) in [
        ("/api/v1/%62ots", "/api/v1/bots"),
        ("/api/v1/x/../bots/", "/api/v1/bots/"),
    ] {
        let response = raw_request(
            setup.gateway.proxy(),
            "GET",
            target,
            &[("Authorization", &admin)],
        )
        .await;
        assert_eq!(response.status, 200, "{target}: {}", response.body);
        assert_eq!(setup.upstream.last().uri, forwarded);
    }
}

#[tokio::test]
async fn upstream_receives_the_normalised_path_and_the_query_byte_for_byte() {
    let setup = setup("").await;
    let token = format!("Bearer {}", setup.key.tokens().personal());
    let cases = [
        (
            "/api//v1/./tables/x/../%61b?q=%2F%2e%2e&x=a+b&&y=%zz;z#",
            "/api/v1/tables/ab?q=%2F%2e%2e&x=a+b&&y=%zz;z",
        ),
        (
            "/api/v1/tables/name/s%c3%a9rvice.db?fields=owners,tags",
            "/api/v1/tables/name/s%C3%A9rvice.db?fields=owners,tags",
        ),
        ("/api/v1/tables?", "/api/v1/tables?"),
        ("/api/v1/tables", "/api/v1/tables"),
    ];
    for (target, expected) in cases {
        // `#` never goes on the wire; strip it as a client would.
        let target = target.trim_end_matches('#');
        let response = raw_request(
            setup.gateway.proxy(),
            "GET",
            target,
            &[("Authorization", &token)],
        )
        .await;
        assert_eq!(response.status, 200, "{target}: {}", response.body);
        assert_eq!(setup.upstream.last().uri, expected, "{target}");
    }
}

#[tokio::test]
async fn refusals_name_the_rule_and_every_decision_is_counted() {
    let setup = setup(BOTS_RULE).await;
    let alice = setup.key.tokens().personal();
    let response = client()
        .get(setup.gateway.url("/api/v1/bots/name/ingestion-bot"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Forbidden: route `bots-admin` requires a role among [Admin]"
    );
    // One of each other outcome.
    let allowed = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let missing = client()
        .get(setup.gateway.url("/api/v1/tables"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let public = client()
        .get(setup.gateway.url("/api/v1/system/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200);
    let bad_path = raw_request(setup.gateway.proxy(), "GET", "/api/v1/bots;x=1", &[]).await;
    assert_eq!(bad_path.status, 400);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&bad_path.body).ok(),
        Some(
            serde_json::json!({"code": 400, "message": "Bad request: path contains `;` path parameters"})
        ),
        "{}",
        bad_path.body
    );

    let metrics = setup.gateway.metrics().await;
    for (result, reason) in [
        ("deny", "require_roles"),
        ("allow", "authorized"),
        ("deny", "token_missing"),
        ("allow", "public_path"),
        ("deny", "bad_path"),
    ] {
        assert_eq!(
            metrics.value(
                "om_gateway_auth_decisions_total",
                &[("reason", reason), ("result", result)]
            ),
            Some(1.0),
            "{result}/{reason}:\n{}",
            metrics.family("om_gateway_auth_decisions_total")
        );
    }
    assert_eq!(
        metrics.value(
            "om_gateway_requests_total",
            &[
                ("method", "GET"),
                ("route", "bots-admin"),
                ("status", "403")
            ]
        ),
        Some(1.0),
        "{}",
        metrics.family("om_gateway_requests_total")
    );
}

#[test]
fn rule_paths_that_are_not_normalised_are_configuration_errors() {
    let environment: HashMap<String, String> = HashMap::new();
    let error = load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "gateway.yaml".into(),
            text: "routes:\n  - name: r\n    match: { pathPrefix: /api//v1/%62ots }\n".into(),
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("routes[0].match.pathPrefix") && error.contains("/api/v1/bots"),
        "{error}"
    );
}

// === The OpenMetadata preset ===

fn preset_policy() -> Policy {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/openmetadata-preset.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let environment: HashMap<String, String> = HashMap::new();
    let config = load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "config/openmetadata-preset.yaml".into(),
            text,
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .unwrap_or_else(|error| panic!("the preset loads: {error}"));
    assert_eq!(config.routes.len(), 9, "the preset's nine routes");
    config.policy()
}

fn who(name: &str, is_bot: bool, roles: &[&str]) -> Principal {
    Principal {
        issued_by_openmetadata: false,
        server_uses_token_roles: false,
        name: name.into(),
        email: Some(format!("{name}@open-metadata.org").into()),
        is_bot,
        token_type: Some(if is_bot { "BOT" } else { "OM_USER" }.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        issuer: Some("open-metadata.org".into()),
        expires_at: None,
        kid: None,
        key_source: Arc::from("test"),
        key_thumbprint: Arc::from(""),
        extra_claims: Vec::new(),
    }
}

#[test]
fn openmetadata_preset_loads_and_decides_as_documented() {
    let policy = preset_policy();
    let admin = who("admin", false, &[]);
    let user = who("alice", false, &["DataConsumer"]);
    let ingestion = who("ingestion-bot", true, &["IngestionBotRole"]);
    let profiler = who("profiler-bot", true, &["ProfilerBotRole"]);
    let role_admin = who("ops", false, &["Admin"]);
    // (principal, method, path, allowed, deciding route)
    let cases: Vec<(&Principal, &str, &str, bool, &str)> = vec![
        (&user, "GET", "/api/v1/tables", true, "default"),
        (&user, "PUT", "/api/v1/tables", true, "default"),
        // Bot tokens: admins only.
        (
            &user,
            "PUT",
            "/api/v1/users/generateToken/123",
            false,
            "bot-token-admin",
        ),
        (
            &user,
            "GET",
            "/api/v1/users/token/123/",
            false,
            "bot-token-admin",
        ),
        (
            &user,
            "GET",
            "/api/v1/users/auth-mechanism/123",
            false,
            "bot-token-admin",
        ),
        (
            &user,
            "PUT",
            "/api/v1/users/revokeToken",
            false,
            "bot-token-admin",
        ),
        (
            &admin,
            "PUT",
            "/api/v1/users/generateToken/123",
            true,
            "bot-token-admin",
        ),
        (
            &role_admin,
            "GET",
            "/api/v1/users/token/123",
            true,
            "bot-token-admin",
        ),
        // Personal access tokens: humans only, admins included.
        (
            &user,
            "PUT",
            "/api/v1/users/security/token",
            true,
            "personal-access-tokens-humans-only",
        ),
        (
            &ingestion,
            "GET",
            "/api/v1/users/security/token",
            false,
            "personal-access-tokens-humans-only",
        ),
        (
            &admin,
            "PUT",
            "/api/v1/users/security/token/revoke",
            true,
            "personal-access-tokens-humans-only",
        ),
        // Settings: the list and writes are admin-only; single reads stay open.
        (
            &user,
            "GET",
            "/api/v1/system/settings",
            false,
            "system-settings-list-admin",
        ),
        (
            &user,
            "GET",
            "/api/v1/system/settings/",
            false,
            "system-settings-list-admin",
        ),
        (
            &user,
            "GET",
            "/api/v1/system/settings/lineageSettings",
            true,
            "default",
        ),
        (
            &user,
            "GET",
            "/api/v1/system/settings/profilerConfiguration",
            true,
            "default",
        ),
        (
            &user,
            "PUT",
            "/api/v1/system/settings",
            false,
            "system-settings-write-admin",
        ),
        (
            &user,
            "PATCH",
            "/api/v1/system/settings/emailConfiguration",
            false,
            "system-settings-write-admin",
        ),
        (
            &admin,
            "PATCH",
            "/api/v1/system/settings/emailConfiguration",
            true,
            "system-settings-write-admin",
        ),
        (
            &user,
            "PUT",
            "/api/v1/system/email/test",
            false,
            "system-email-test-admin",
        ),
        (
            &user,
            "PUT",
            "/api/v1/system/email/test/",
            false,
            "system-email-test-admin",
        ),
        // Bots: reads open, writes admin-only.
        (&user, "GET", "/api/v1/bots", true, "default"),
        (&user, "POST", "/api/v1/bots", false, "bots-write-admin"),
        (
            &user,
            "DELETE",
            "/api/v1/bots/123",
            false,
            "bots-write-admin",
        ),
        (&admin, "PUT", "/api/v1/bots", true, "bots-write-admin"),
        (&user, "POST", "/api/v1/botsx", true, "default"),
        // Ingestion: status and logs from any bot, never a user (not even an admin).
        (
            &ingestion,
            "PUT",
            "/api/v1/services/ingestionPipelines/svc.p/pipelineStatus",
            true,
            "ingestion-pipeline-status-and-logs-bots",
        ),
        (
            &profiler,
            "POST",
            "/api/v1/services/ingestionPipelines/logs/svc.p/run-1",
            true,
            "ingestion-pipeline-status-and-logs-bots",
        ),
        (
            &admin,
            "PUT",
            "/api/v1/services/ingestionPipelines/svc.p/pipelineStatus",
            false,
            "ingestion-pipeline-status-and-logs-bots",
        ),
        // Other pipeline writes: IngestionBotRole or admins, reads open.
        (
            &ingestion,
            "POST",
            "/api/v1/services/ingestionPipelines/deploy/1",
            true,
            "ingestion-pipelines-write",
        ),
        (
            &admin,
            "POST",
            "/api/v1/services/ingestionPipelines/trigger/1",
            true,
            "ingestion-pipelines-write",
        ),
        (
            &user,
            "POST",
            "/api/v1/services/ingestionPipelines/trigger/1",
            false,
            "ingestion-pipelines-write",
        ),
        (
            &profiler,
            "DELETE",
            "/api/v1/services/ingestionPipelines/1",
            false,
            "ingestion-pipelines-write",
        ),
        (
            &user,
            "GET",
            "/api/v1/services/ingestionPipelines/1",
            true,
            "default",
        ),
        // MCP: any valid token, people and bots alike, as the server decides.
        (&user, "POST", "/mcp", true, "mcp"),
        (&ingestion, "POST", "/mcp", true, "mcp"),
        (&admin, "GET", "/mcp/sse", true, "mcp"),
        (&user, "POST", "/mcpx", true, "default"),
    ];
    for (principal, method, path, allowed, route) in cases {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let decision = policy.authorize(principal, &method, path);
        let decided_by = match &decision {
            Ok(rule) => rule.name.clone(),
            Err(denied) => denied.route.clone(),
        };
        assert_eq!(
            (decision.is_ok(), decided_by.as_str()),
            (allowed, route),
            "{} {method} {path}: {decision:?}",
            principal.name
        );
    }
    // The sign-in servlets and the UI stay public with the preset; the feed is not public.
    for path in [
        "/api/v1/auth/login",
        "/api/v1/saml/acs",
        "/signin",
        "/api/v1/system/version",
    ] {
        assert!(policy.is_public(path), "{path}");
    }
    assert!(!policy.is_public("/api/v1/push/feed/"));
    // MCP is protected like /api; its OAuth flow is public.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server/mcp",
        "/mcp/.well-known/oauth-authorization-server",
        "/mcp/token",
        "/mcp/authorize",
        "/mcp/callback",
    ] {
        assert!(policy.is_public(path), "{path}");
    }
    for path in ["/mcp", "/mcp/", "/mcp/sse", "/mcp/messages", "/mcp/token/x"] {
        assert!(!policy.is_public(path), "{path}");
    }
}
