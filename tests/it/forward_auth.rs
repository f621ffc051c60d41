//! Forward-auth: the gateway as the authorizer of nginx, ingress-nginx, Traefik and Envoy.
//! Each style's headers, allow with identity headers, 401, 403, path tricks in the original URI,
//! conflicting descriptions refused, and the upstream never called. Then a real nginx running the
//! shipped deploy/nginx/om-gateway-auth.conf in front of an upstream.

use crate::support::client;
use crate::support::nginx::Nginx;
use crate::support::raw::raw_request;

const RULES: &str = "routes:\n  - name: bots-admin\n    match: { pathPrefix: /api/v1/bots }\n    require: { rolesAny: [ Admin ] }\n";

use crate::support::gateway::Stack as Setup;

async fn setup() -> Setup {
    Setup::start(RULES).await
}

const AUTH: &str = "/_gateway/auth";
const FORBIDDEN: &str = "Forbidden: route `bots-admin` requires a role among [Admin]";
const NO_TOKEN: &str = "Not Authorized! Token not present";

/// What a forward-auth question must be answered with.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with alice's identity headers (the question carried her token).
    Alice,
    /// 200 without identity headers (a public path, no token).
    Public,
    /// The gateway's JSON refusal: this status and exactly this message.
    Refused(u16, &'static str),
}

/// One named forward-auth question: how the ingress asks (method, target, headers), whether
/// alice's token comes along, and the answer expected.
struct Case {
    name: &'static str,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    token: bool,
    answer: Answer,
}

/// Every forward-auth question every supported ingress asks, by name.
const CASES: &[Case] = &[
    // nginx auth_request (deploy/nginx): X-Original-Method + X-Original-URI.
    Case {
        name: "nginx: allowed, with identity headers",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/api/v1/tables?q=1"),
        ],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "nginx: no token",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/api/v1/tables"),
        ],
        token: false,
        answer: Answer::Refused(401, NO_TOKEN),
    },
    Case {
        name: "nginx: the original method is judged (DELETE on a rule's path)",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "DELETE"),
            ("X-Original-URI", "/api/v1/bots/1"),
        ],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: HEAD question",
        method: "HEAD",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Original-URI", "/api/v1/tables"),
        ],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "nginx: dot-dot into a rule's path",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/x/../bots")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: percent-encoded letter",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/%62ots")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: doubled slash and dot segment",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api//v1/./bots")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: encoded slash",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/bots%2f")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: path parameters",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/bots;x=1")],
        token: true,
        answer: Answer::Refused(400, "Bad request: path contains `;` path parameters"),
    },
    Case {
        name: "nginx: encoded dot-dot above the root",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/%2e%2e/api/v1/bots")],
        token: true,
        answer: Answer::Refused(400, "Bad request: path climbs above the root with `..`"),
    },
    Case {
        name: "nginx: a public path does not cover what follows its dot-dot",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/signin/../api/v1/bots")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "nginx: public path without a token",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/signin")],
        token: false,
        answer: Answer::Public,
    },
    // ingress-nginx: X-Original-URL (absolute) always; X-Original-URI only with auth-method.
    Case {
        name: "ingress-nginx: allowed",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Original-URL", "https://om.example.com/api/v1/tables?x=1"),
        ],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "ingress-nginx: percent-encoded letter in the URL",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Original-URL", "https://om.example.com/api/v1/%62ots?x=1"),
        ],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "ingress-nginx: no token (URL and URI agree)",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URL", "https://om.example.com/api/v1/tables"),
            ("X-Original-URI", "/api/v1/tables")],
        token: false,
        answer: Answer::Refused(401, NO_TOKEN),
    },
    Case {
        name: "ingress-nginx: a URL that is not absolute",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URL", "om.example.com/api/v1/tables")],
        token: true,
        answer: Answer::Refused(400, "Bad request: X-Original-URL is not an absolute http(s) URL"),
    },
    // Traefik: X-Forwarded-Method + X-Forwarded-Uri.
    Case {
        name: "traefik: allowed",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/api/v1/tables"),
        ],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "traefik: the original method is judged (PUT on a rule's path)",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Forwarded-Method", "PUT"),
            ("X-Forwarded-Uri", "/api/v1/bots"),
        ],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "traefik: no token",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Uri", "/api/v1/tables"),
        ],
        token: false,
        answer: Answer::Refused(401, NO_TOKEN),
    },
    Case {
        name: "traefik: encoded backslash",
        method: "GET",
        target: AUTH,
        headers: &[("X-Forwarded-Method", "GET"), ("X-Forwarded-Uri", "/api/v1/bots%5c")],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    // Envoy ext_authz: our path + the original path, the original method.
    Case {
        name: "envoy: allowed, with a query",
        method: "GET",
        target: "/_gateway/auth/api/v1/tables?fields=owners",
        headers: &[],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "envoy: POST is the original method",
        method: "POST",
        target: "/_gateway/auth/api/v1/tables",
        headers: &[],
        token: true,
        answer: Answer::Alice,
    },
    Case {
        name: "envoy: DELETE on a rule's path",
        method: "DELETE",
        target: "/_gateway/auth/api/v1/bots/1",
        headers: &[],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "envoy: no token",
        method: "GET",
        target: "/_gateway/auth/api/v1/tables",
        headers: &[],
        token: false,
        answer: Answer::Refused(401, NO_TOKEN),
    },
    Case {
        name: "envoy: encoded dot-dot into a rule's path",
        method: "GET",
        target: "/_gateway/auth/api/v1/x/%2e%2e/bots",
        headers: &[],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    Case {
        name: "envoy: encoded slash",
        method: "GET",
        target: "/_gateway/auth/api/v1/bots%2f",
        headers: &[],
        token: true,
        answer: Answer::Refused(403, FORBIDDEN),
    },
    // A client's extra description that disagrees with the ingress's own is refused, never
    // preferred: behind ingress-nginx a client can add X-Forwarded-Uri, behind Traefik X-Original-URI.
    Case {
        name: "forged: X-Forwarded-Uri disagrees with X-Original-URL",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URL", "https://h/api/v1/bots"),
            ("X-Forwarded-Uri", "/api/v1/tables")],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: the headers naming the original request disagree",
        ),
    },
    Case {
        name: "forged: X-Forwarded-Uri disagrees with X-Original-URI",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/tables"),
            ("X-Forwarded-Uri", "/api/v1/bots")],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: the headers naming the original request disagree",
        ),
    },
    Case {
        name: "forged: X-Original-URI disagrees with the Envoy path",
        method: "GET",
        target: "/_gateway/auth/api/v1/bots",
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/tables")],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: the headers naming the original request disagree",
        ),
    },
    Case {
        name: "forged: the method headers disagree",
        method: "GET",
        target: AUTH,
        headers: &[
            ("X-Original-Method", "GET"),
            ("X-Forwarded-Method", "DELETE"),
            ("X-Original-URI", "/api/v1/bots"),
        ],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: the headers naming the original method disagree",
        ),
    },
    Case {
        name: "descriptions that disagree on the query (a feed userId lives there) are refused",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URL", "https://h/api/v1/tables"),
            ("X-Forwarded-Uri", "/api/v1/tables?other")],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: the headers naming the original request disagree",
        ),
    },
    // Spoofed identity headers in the question never come back in the answer.
    Case {
        name: "spoofed X-Auth-Request-User is not echoed",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/tables"),
            ("X-Auth-Request-User", "admin")],
        token: true,
        answer: Answer::Alice,
    },
    // Malformed questions.
    Case {
        name: "bad: nothing names the original request",
        method: "GET",
        target: AUTH,
        headers: &[],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: no X-Original-URL, X-Original-URI or X-Forwarded-Uri header naming the original request",
        ),
    },
    Case {
        name: "bad: POST to the forward-auth path itself",
        method: "POST",
        target: AUTH,
        headers: &[("X-Original-Method", "GET"), ("X-Original-URI", "/api/v1/tables")],
        token: true,
        answer: Answer::Refused(400, "Bad request: forward-auth takes GET or HEAD"),
    },
    Case {
        name: "no method header: never judged as GET",
        method: "GET",
        target: AUTH,
        headers: &[("X-Original-URI", "/api/v1/bots/1")],
        token: true,
        answer: Answer::Refused(
            400,
            "Bad request: no X-Original-Method or X-Forwarded-Method header naming the original method",
        ),
    },
];

fn expect(problems: &mut Vec<String>, what: &str, got: Option<String>, want: Option<&str>) {
    if got.as_deref() != want {
        problems.push(format!("{what}: got {got:?}, want {want:?}"));
    }
}

/// Ask one question; every way the answer differs from the case, one line each.
async fn problems(setup: &Setup, token: &str, case: &Case) -> Vec<String> {
    let bearer = format!("Bearer {token}");
    let mut headers: Vec<(&str, &str)> = case.headers.to_vec();
    if case.token {
        headers.push(("Authorization", &bearer));
    }
    let response = raw_request(setup.gateway.proxy(), case.method, case.target, &headers).await;
    let mut problems = Vec::new();
    let identity = [
        ("x-auth-request-user", "alice"),
        ("x-auth-request-email", "alice@open-metadata.org"),
        ("x-auth-request-roles", "DataConsumer"),
        ("x-auth-request-is-bot", "false"),
        ("x-auth-request-token-type", "PERSONAL_ACCESS"),
    ];
    match case.answer {
        Answer::Alice => {
            expect(
                &mut problems,
                "status",
                Some(response.status.to_string()),
                Some("200"),
            );
            for (name, value) in identity {
                expect(&mut problems, name, response.header(name), Some(value));
            }
        }
        Answer::Public => {
            expect(
                &mut problems,
                "status",
                Some(response.status.to_string()),
                Some("200"),
            );
            // Anonymous: all five identity headers, present and empty, so an ingress that copies
            // only the headers it finds still overwrites a client's own.
            for (name, _) in identity {
                expect(&mut problems, name, response.header(name), Some(""));
            }
        }
        Answer::Refused(status, message) => {
            expect(
                &mut problems,
                "status",
                Some(response.status.to_string()),
                Some(&status.to_string()),
            );
            expect(
                &mut problems,
                "content-type",
                response.header("content-type"),
                Some("application/json"),
            );
            let body: Option<serde_json::Value> = serde_json::from_str(&response.body).ok();
            let want = serde_json::json!({"code": status, "message": message});
            if body.as_ref() != Some(&want) {
                problems.push(format!("body: got {:?}, want {want}", response.body));
            }
            for (name, _) in identity {
                if let Some(value) = response.header(name) {
                    problems.push(format!("a refusal carries {name}: {value}"));
                }
            }
            if status == 401 {
                expect(
                    &mut problems,
                    "www-authenticate",
                    response.header("www-authenticate"),
                    Some("Bearer realm=\"om-gateway\""),
                );
            }
        }
    }
    problems
}

#[tokio::test]
async fn every_ingress_style_allows_with_identity_and_refuses_with_401_403_and_400() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    // Every case runs; the test then fails once, naming each case that went wrong.
    let mut failures = Vec::new();
    for case in CASES {
        let problems = problems(&setup, &token, case).await;
        if !problems.is_empty() {
            failures.push(format!(
                "{} ({} {} {:?}):\n    {}",
                case.name,
                case.method,
                case.target,
                case.headers,
                problems.join("\n    ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} forward-auth cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert!(
        setup.upstream.received().is_empty(),
        "forward-auth never calls the upstream: {:?}",
        setup.upstream.received()
    );
    // Forward-auth answers are counted under the route they judged, by the question's method.
    let metrics = setup.gateway.metrics().await;
    let judged_by_bots_admin = CASES
        .iter()
        .filter(|case| case.method == "GET" && matches!(case.answer, Answer::Refused(403, _)))
        .count();
    assert_eq!(
        metrics.value(
            "om_gateway_requests_total",
            &[
                ("method", "GET"),
                ("route", "bots-admin"),
                ("status", "403")
            ]
        ),
        Some(judged_by_bots_admin as f64),
        "{}",
        metrics.family("om_gateway_requests_total")
    );
}

// === A real nginx running deploy/nginx/om-gateway-auth.conf ===

#[tokio::test]
async fn real_nginx_with_the_shipped_auth_request_config() {
    let setup = setup().await;
    let nginx = Nginx::shipped(setup.gateway.proxy(), setup.upstream.address).await;
    let token = setup.key.tokens().personal();
    let before = setup.upstream.received().len();

    // Allowed: through to the upstream, with identity headers nginx copied from the gateway's
    // answer, overwriting the client's forged ones.
    let allowed = client()
        .get(nginx.url("/api/v1/tables?fields=owners"))
        .bearer_auth(&token)
        .header("X-Auth-Request-User", "admin")
        .header("X-Auth-Request-Roles", "Admin")
        .header("UserId", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200, "{}", nginx.error_log());
    let seen = setup.upstream.last();
    assert_eq!(seen.uri, "/api/v1/tables?fields=owners");
    assert_eq!(seen.header("x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(
        seen.header("x-auth-request-roles").as_deref(),
        Some("DataConsumer")
    );
    assert_eq!(
        seen.header("x-auth-request-token-type").as_deref(),
        Some("PERSONAL_ACCESS")
    );
    assert!(seen.header("userid").is_none());
    assert!(seen
        .header("authorization")
        .is_some_and(|v| v.ends_with(&token)));

    // 401 without a token, with the gateway's challenge passed on.
    let missing = client()
        .get(nginx.url("/api/v1/tables"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers().get("www-authenticate").unwrap(),
        "Bearer realm=\"om-gateway\""
    );
    // 403 from a route rule, also for the original method nginx names.
    let forbidden = client()
        .delete(nginx.url("/api/v1/bots/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    // Tricks nginx passes on raw in $request_uri. The gateway answers each exactly (403 from the
    // rule, an encoded `/` included since every reading is judged, or 400 for a raw `;`); nginx passes a 403 on and turns any other answer into
    // its own 500, so the gateway's side is read from its metrics: a gateway that failed with 500
    // would look the same through nginx, and is told apart there.
    let answered = |metrics: &crate::support::prometheus::Exposition, status: &str| {
        metrics.sum("om_gateway_requests_total", &[("status", status)])
    };
    let counted_before = setup.gateway.metrics().await;
    let tricks = [
        ("/api/v1/%62ots", 403, 403),
        ("/api/v1/x/../bots", 403, 403),
        ("/api//v1/bots", 403, 403),
        ("/api/v1/bots%2fx", 403, 403),
        ("/api/v1/bots;x=1", 500, 400),
    ];
    let mut failures = Vec::new();
    for (target, through_nginx, _) in tricks {
        let response = raw_request(
            nginx.address,
            "GET",
            target,
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
        if response.status != through_nginx {
            failures.push(format!(
                "{target}: nginx answered {} (want {through_nginx}): {}",
                response.status, response.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = setup.gateway.metrics().await;
    for status in ["400", "403"] {
        let want = tricks
            .iter()
            .filter(|(_, _, gateway)| gateway.to_string() == status)
            .count() as f64;
        assert_eq!(
            answered(&after, status) - answered(&counted_before, status),
            want,
            "the gateway's {status} answers to nginx:\n{}",
            after.family("om_gateway_requests_total")
        );
    }
    assert_eq!(
        after.matching("om_gateway_requests_total", &[("status", "500")]),
        Vec::<&crate::support::prometheus::Sample>::new(),
        "the gateway itself never failed"
    );
    // Public paths need no token through nginx either.
    let public = client().get(nginx.url("/signin")).send().await.unwrap();
    assert_eq!(public.status(), 200);
    // Only the allowed and the public request reached the upstream (readiness probes aside).
    let received = setup.upstream.received();
    let forwarded: Vec<&str> = received[before..]
        .iter()
        .map(|recorded| recorded.uri.as_str())
        .filter(|uri| *uri != "/api/v1/system/version")
        .collect();
    assert_eq!(forwarded, ["/api/v1/tables?fields=owners", "/signin"]);
}
