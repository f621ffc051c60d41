//! Compiled only under `#[cfg(test)]` (declared in this directory's mod.rs): tests may unwrap.
//! Route matching, requirements and path normalisation, as tables through one `check` helper each.

use super::*;
use std::collections::HashMap;
use std::sync::Arc;

/// A policy compiled from `routes` YAML exactly as the loader compiles it.
fn policy(yaml: &str) -> Policy {
    let environment: HashMap<String, String> = HashMap::new();
    let text = format!(
        "authenticationConfiguration:\n  publicKeyUrls: [ \"http://127.0.0.1:9/jwks\" ]\n\
         authorizerConfiguration:\n  adminPrincipals: [ boss ]\n{yaml}"
    );
    let config = crate::config::load(crate::config::LoadInput {
        gateway_file: Some(crate::config::ConfigText {
            name: "policy.yaml".into(),
            text,
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .unwrap_or_else(|error| panic!("test policy loads: {error}"));
    config.policy()
}

/// A principal named `name`, a human with the DataConsumer role unless changed.
fn principal(name: &str) -> Principal {
    Principal {
        issued_by_openmetadata: false,
        server_uses_token_roles: false,
        name: name.into(),
        email: Some(format!("{name}@open-metadata.org").into()),
        is_bot: false,
        token_type: Some("PERSONAL_ACCESS".into()),
        roles: vec!["DataConsumer".into()].into(),
        issuer: Some("open-metadata.org".into()),
        expires_at: None,
        kid: Some("k".into()),
        key_source: Arc::from("test"),
        key_thumbprint: "t".into(),
        extra_claims: Vec::new(),
    }
}

fn bot(name: &str) -> Principal {
    Principal {
        issued_by_openmetadata: false,
        server_uses_token_roles: false,
        is_bot: true,
        token_type: Some("BOT".into()),
        roles: vec!["IngestionBotRole".into()].into(),
        ..principal(name)
    }
}

/// What a case expects: allowed by the named route, or denied by it with a reason label.
#[derive(Debug)]
enum Expect {
    Allow(&'static str),
    Deny(&'static str, &'static str),
}

fn check(policy: &Policy, who: &Principal, method: &str, path: &str, expect: Expect) {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let got = policy.authorize(who, &method, path);
    match (&got, &expect) {
        (Ok(route), Expect::Allow(name)) if route.name == *name => {}
        (Err(denied), Expect::Deny(route, reason))
            if denied.route == *route && denied.reason == *reason => {}
        _ => panic!(
            "{} {method} {path}: expected {expect:?}, got {got:?}",
            who.name
        ),
    }
}

const ROUTES: &str = r#"
routes:
  - name: bots-admin
    match: { pathPrefix: /api/v1/bots }
    require: { rolesAny: [ Admin ] }
  - name: exact-email-test
    match: { path: /api/v1/system/email/test, methods: [ PUT ] }
    require: { principals: [ Carol ] }
  - name: settings-list
    match: { pathRegex: '/api/v1/system/settings' }
    require: { rolesAll: [ DataSteward, DataConsumer ] }
  - name: pipelines-write
    match: { pathPrefix: /api/v1/services/ingestionPipelines, methods: [ POST, PUT, PATCH, DELETE ] }
    require: { isBot: true }
  - name: pat-humans
    match: { pathPrefix: /api/v1/users/security/token }
    require: { tokenTypes: [ PERSONAL_ACCESS ] }
  - name: corp-only
    match: { pathPrefix: /api/v1/glossaries }
    require: { emailDomains: [ "@corp.example" ] }
  - name: tenant
    match: { pathPrefix: /api/v1/domains }
    require: { claims: { tenant: [ blue, green ], tier: 1 } }
  - name: closed
    match: { pathPrefix: /api/v1/secrets }
    deny: true
  - name: first-wins-a
    match: { pathPrefix: /api/v1/tags }
    require: { principals: [ alice ] }
  - name: first-wins-b
    match: { pathPrefix: /api/v1/tags }
    require: {}
"#;

#[test]
fn every_requirement_kind_first_match_and_admins() {
    let policy = policy(ROUTES);
    let alice = principal("alice");
    let boss = principal("boss");
    let carol = principal("carol");
    let steward = Principal {
        roles: vec!["DataSteward".into(), "DataConsumer".into()].into(),
        ..principal("steve")
    };
    let ingestion = bot("ingestion-bot");
    let corp = Principal {
        email: Some("dana@Corp.Example".into()),
        ..principal("dana")
    };
    let tenant = |value: serde_json::Value| Principal {
        extra_claims: vec![
            ("tenant".into(), value),
            ("tier".into(), serde_json::json!(1)),
        ],
        ..principal("tess")
    };
    use Expect::*;
    let (green, blue_list, red, red_list) = (
        tenant(serde_json::json!("green")),
        tenant(serde_json::json!(["red", "blue"])),
        tenant(serde_json::json!("red")),
        tenant(serde_json::json!(["red"])),
    );
    let cases: Vec<(&Principal, &str, &str, Expect)> = vec![
        // Segment-aware prefix: /api/v1/botsx is not under /api/v1/bots.
        (
            &alice,
            "GET",
            "/api/v1/bots",
            Deny("bots-admin", "require_roles"),
        ),
        (
            &alice,
            "GET",
            "/api/v1/bots/x",
            Deny("bots-admin", "require_roles"),
        ),
        (
            &alice,
            "GET",
            "/api/v1/bots/",
            Deny("bots-admin", "require_roles"),
        ),
        (&alice, "GET", "/api/v1/botsx", Allow("default")),
        // Admin principals satisfy role requirements (case-insensitively)...
        (&boss, "DELETE", "/api/v1/bots/x", Allow("bots-admin")),
        // ...but not isBot, tokenTypes or principals.
        (
            &boss,
            "POST",
            "/api/v1/services/ingestionPipelines",
            Deny("pipelines-write", "require_is_bot"),
        ),
        (
            &boss,
            "PUT",
            "/api/v1/system/email/test",
            Deny("exact-email-test", "require_principal"),
        ),
        // Exact path, methods, principals (case-insensitive), trailing slash cannot dodge.
        (
            &carol,
            "PUT",
            "/api/v1/system/email/test",
            Allow("exact-email-test"),
        ),
        (
            &alice,
            "PUT",
            "/api/v1/system/email/test",
            Deny("exact-email-test", "require_principal"),
        ),
        (
            &alice,
            "PUT",
            "/api/v1/system/email/test/",
            Deny("exact-email-test", "require_principal"),
        ),
        (&alice, "GET", "/api/v1/system/email/test", Allow("default")),
        (
            &alice,
            "PUT",
            "/api/v1/system/email/testx",
            Allow("default"),
        ),
        // Regex is anchored at both ends; a trailing slash is tried without it.
        (
            &alice,
            "GET",
            "/api/v1/system/settings",
            Deny("settings-list", "require_roles"),
        ),
        (
            &alice,
            "GET",
            "/api/v1/system/settings/",
            Deny("settings-list", "require_roles"),
        ),
        (&alice, "GET", "/api/v1/system/settings/x", Allow("default")),
        (&alice, "GET", "/x/api/v1/system/settings", Allow("default")),
        (
            &steward,
            "GET",
            "/api/v1/system/settings",
            Allow("settings-list"),
        ),
        (
            &boss,
            "GET",
            "/api/v1/system/settings",
            Allow("settings-list"),
        ),
        // isBot with methods.
        (
            &ingestion,
            "PUT",
            "/api/v1/services/ingestionPipelines/p/pipelineStatus",
            Allow("pipelines-write"),
        ),
        (
            &alice,
            "PUT",
            "/api/v1/services/ingestionPipelines/p/pipelineStatus",
            Deny("pipelines-write", "require_is_bot"),
        ),
        (
            &alice,
            "GET",
            "/api/v1/services/ingestionPipelines",
            Allow("default"),
        ),
        // tokenTypes.
        (
            &alice,
            "PUT",
            "/api/v1/users/security/token",
            Allow("pat-humans"),
        ),
        (
            &ingestion,
            "PUT",
            "/api/v1/users/security/token",
            Deny("pat-humans", "require_token_type"),
        ),
        // emailDomains, case-insensitive, the `@` in config optional.
        (&corp, "GET", "/api/v1/glossaries", Allow("corp-only")),
        (
            &alice,
            "GET",
            "/api/v1/glossaries",
            Deny("corp-only", "require_email_domain"),
        ),
        // claims: one of the values, list-valued claims match any element, numbers.
        (&green, "GET", "/api/v1/domains", Allow("tenant")),
        (&blue_list, "GET", "/api/v1/domains", Allow("tenant")),
        (
            &red,
            "GET",
            "/api/v1/domains",
            Deny("tenant", "require_claim"),
        ),
        (
            &red_list,
            "GET",
            "/api/v1/domains",
            Deny("tenant", "require_claim"),
        ),
        (
            &alice,
            "GET",
            "/api/v1/domains",
            Deny("tenant", "require_claim"),
        ),
        // deny: true refuses even admins.
        (
            &boss,
            "GET",
            "/api/v1/secrets/x",
            Deny("closed", "route_deny"),
        ),
        // First match wins even when a later route would allow.
        (
            &carol,
            "GET",
            "/api/v1/tags",
            Deny("first-wins-a", "require_principal"),
        ),
        (&alice, "GET", "/api/v1/tags", Allow("first-wins-a")),
    ];
    for (who, method, path, expect) in cases {
        check(&policy, who, method, path, expect);
    }
}

#[test]
fn deny_default_route_closes_everything_unlisted() {
    let policy = policy(
        "routes:\n  - name: tables\n    match: { pathPrefix: /api/v1/tables, methods: [ GET ] }\n\
         defaultRoute: { deny: true }\n",
    );
    use Expect::*;
    let alice = principal("alice");
    let boss = principal("boss");
    let cases: Vec<(&Principal, &str, &str, Expect)> = vec![
        (&alice, "GET", "/api/v1/tables", Allow("tables")),
        (
            &alice,
            "POST",
            "/api/v1/tables",
            Deny("default", "route_deny"),
        ),
        (&boss, "GET", "/api/v1/users", Deny("default", "route_deny")),
    ];
    for (who, method, path, expect) in cases {
        check(&policy, who, method, path, expect);
    }
}

#[test]
fn denied_names_the_rule_and_the_unmet_requirement() {
    let policy = policy(ROUTES);
    let denied = policy
        .authorize(&principal("alice"), &http::Method::GET, "/api/v1/bots")
        .unwrap_err();
    assert_eq!(
        denied.to_string(),
        "route `bots-admin` requires a role among [Admin]"
    );
}

#[test]
fn public_paths_are_exact_or_segment_prefixes_and_never_the_forward_auth_path() {
    let policy = policy("publicPaths: [ /api/v1/open/** , /api/v1/exact ]\n");
    let cases = [
        ("/", true),
        ("/signin", true),
        ("/assets/x.js", true),
        ("/apix", true),
        ("/api", false),
        ("/api/v1/tables", false),
        ("/api/v1/system/config/jwks", true),
        ("/api/v1/system/config/jwks/", false),
        ("/api/v1/auth/login", true),
        ("/api/v1/saml/acs", true),
        ("/api/v1/open", true),
        ("/api/v1/open/x/y", true),
        ("/api/v1/openx", false),
        ("/api/v1/exact", true),
        ("/api/v1/exact/x", false),
        ("/_gateway/auth", false),
    ];
    for (path, public) in cases {
        assert_eq!(policy.is_public(path), public, "{path}");
    }
}

fn check_path(raw: &str, expected: Result<&str, PathError>) {
    let got = normalize_path(raw).map(|path| path.into_owned());
    assert_eq!(
        got.as_deref().map_err(Clone::clone),
        expected,
        "normalize_path({raw:?})"
    );
}

#[test]
fn path_normalisation() {
    use PathError::*;
    let cases: Vec<(&str, Result<&str, PathError>)> = vec![
        ("/", Ok("/")),
        ("/api/v1/bots", Ok("/api/v1/bots")),
        ("/api/v1/%62ots", Ok("/api/v1/bots")),
        ("/api/v1/%62%6F%74%73", Ok("/api/v1/bots")),
        ("/api/v1/x/../bots", Ok("/api/v1/bots")),
        ("/api/v1/x/%2e%2e/bots", Ok("/api/v1/bots")),
        ("/api/v1/x/%2E./bots", Ok("/api/v1/bots")),
        ("/api//v1///bots", Ok("/api/v1/bots")),
        ("/api/v1/./bots", Ok("/api/v1/bots")),
        ("/api/v1/bots/.", Ok("/api/v1/bots/")),
        ("/api/v1/bots/x/..", Ok("/api/v1/bots/")),
        ("/api/v1/bots/", Ok("/api/v1/bots/")),
        ("//", Ok("/")),
        ("/..", Err(AboveRoot)),
        ("/api/../..", Err(AboveRoot)),
        ("/%2e%2e/api", Err(AboveRoot)),
        ("/api/v1/bots%2f", Ok("/api/v1/bots%2F")),
        ("/api/v1/bots%2Fx", Ok("/api/v1/bots%2Fx")),
        ("/api/v1/bots%5c", Ok("/api/v1/bots%5C")),
        ("/api/v1/bots\\x", Err(Backslash)),
        ("/api/v1/bots;x=1", Err(PathParameter)),
        ("/api/v1/bots%3bx=1", Ok("/api/v1/bots%3Bx=1")),
        ("/api/v1/bots%00", Err(Nul)),
        ("/api/v1/bots\0", Err(Nul)),
        ("/api/v1/bots%", Err(BadEncoding)),
        ("/api/v1/bots%4", Err(BadEncoding)),
        ("/api/v1/bots%zz", Err(BadEncoding)),
        ("api/v1/bots", Err(NotAbsolute)),
        ("", Err(NotAbsolute)),
        // Escapes of reserved or non-ASCII bytes stay escaped (hex upper-cased): decoding them would
        // change what the server reads, or produce invalid UTF-8.
        ("/api/v1/tables/name/a%20b", Ok("/api/v1/tables/name/a%20b")),
        ("/api/v1/tables/name/a%2fb", Ok("/api/v1/tables/name/a%2Fb")),
        (
            "/api/v1/tables/name/%c3%a9",
            Ok("/api/v1/tables/name/%C3%A9"),
        ),
        ("/api/v1/tables/name/%ff", Ok("/api/v1/tables/name/%FF")),
        ("/api/v1/tables/name/%25", Ok("/api/v1/tables/name/%25")),
        (
            "/api/v1/tables/name/%252e%252e",
            Ok("/api/v1/tables/name/%252e%252e"),
        ),
        ("/api/v1/tables/name/a.b", Ok("/api/v1/tables/name/a.b")),
        ("/api/v1/tables/name/..a", Ok("/api/v1/tables/name/..a")),
        ("/.well-known/x", Ok("/.well-known/x")),
    ];
    for (raw, expected) in cases {
        check_path(raw, expected);
    }
}

#[test]
fn normalisation_borrows_when_nothing_changes() {
    assert!(matches!(
        normalize_path("/api/v1/tables/name/a.b"),
        Ok(std::borrow::Cow::Borrowed(_))
    ));
}
