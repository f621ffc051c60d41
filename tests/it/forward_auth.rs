//! Issue 4, forward-auth: the gateway as the authorizer of nginx, ingress-nginx, Traefik and Envoy.
//! Each style's headers, allow with identity headers, 401, 403, path tricks in the original URI,
//! conflicting descriptions refused, and the upstream never called. Then a real nginx running the
//! shipped deploy/nginx/om-gateway-auth.conf in front of an upstream.

use crate::support::client;
use crate::support::raw::{raw_request, RawResponse};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "routes:\n  - name: bots-admin\n    match: { pathPrefix: /api/v1/bots }\n    require: { rolesAny: [ Admin ] }\n";

use crate::support::gateway::Stack as Setup;

async fn setup() -> Setup {
    Setup::start(RULES).await
}

/// One forward-auth question and the answer expected.
struct Case {
    style: &'static str,
    method: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    token: bool,
    status: u16,
}

fn case(
    style: &'static str,
    method: &'static str,
    target: &'static str,
    headers: &[(&'static str, &'static str)],
    token: bool,
    status: u16,
) -> Case {
    Case {
        style,
        method,
        target,
        headers: headers.to_vec(),
        token,
        status,
    }
}

async fn check(setup: &Setup, token: &str, case: &Case) -> RawResponse {
    let bearer = format!("Bearer {token}");
    let mut headers: Vec<(&str, &str)> = case.headers.clone();
    if case.token {
        headers.push(("Authorization", &bearer));
    }
    let response = raw_request(setup.gateway.proxy(), case.method, case.target, &headers).await;
    assert_eq!(
        response.status, case.status,
        "{}: {} {} {:?}: {}",
        case.style, case.method, case.target, case.headers, response.body
    );
    if response.status == 200 && !case.token {
        // Anonymous: all five identity headers, empty, so the ingress overwrites a client's own.
        for name in [
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-roles",
            "x-auth-request-is-bot",
            "x-auth-request-token-type",
        ] {
            assert_eq!(
                response.header(name).as_deref(),
                Some(""),
                "public: {name} empty"
            );
        }
    } else if response.status == 200 {
        assert_eq!(
            response.header("x-auth-request-user").as_deref(),
            Some("alice"),
            "{}",
            case.style
        );
        assert_eq!(
            response.header("x-auth-request-email").as_deref(),
            Some("alice@open-metadata.org")
        );
        assert_eq!(
            response.header("x-auth-request-roles").as_deref(),
            Some("DataConsumer")
        );
        assert_eq!(
            response.header("x-auth-request-is-bot").as_deref(),
            Some("false")
        );
        assert_eq!(
            response.header("x-auth-request-token-type").as_deref(),
            Some("PERSONAL_ACCESS")
        );
    } else {
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("application/json")
        );
        assert!(
            response.header("x-auth-request-user").is_none(),
            "{}",
            case.style
        );
    }
    if response.status == 401 {
        assert!(response
            .header("www-authenticate")
            .is_some_and(|value| value.starts_with("Bearer realm=\"om-gateway\"")));
    }
    if response.status == 403 {
        assert!(response.body.contains("bots-admin"), "{}", response.body);
    }
    response
}

#[tokio::test]
async fn every_ingress_style_allows_with_identity_and_refuses_with_401_403_and_400() {
    let setup = setup().await;
    let token = setup.key.tokens().personal();
    const AUTH: &str = "/_gateway/auth";
    let cases = vec![
        // nginx auth_request (deploy/nginx): X-Original-Method + X-Original-URI.
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables?q=1"),
            ],
            true,
            200,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
            ],
            false,
            401,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "DELETE"),
                ("X-Original-URI", "/api/v1/bots/1"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "HEAD",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
            ],
            true,
            200,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/x/../bots"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/%62ots"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api//v1/./bots"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/bots%2f"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/bots;x=1"),
            ],
            true,
            400,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/%2e%2e/api/v1/bots"),
            ],
            true,
            400,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/signin/../api/v1/bots"),
            ],
            true,
            403,
        ),
        case(
            "nginx",
            "GET",
            AUTH,
            &[("X-Original-Method", "GET"), ("X-Original-URI", "/signin")],
            false,
            200,
        ),
        // ingress-nginx: X-Original-URL (absolute) always; X-Original-URI only with auth-method.
        case(
            "ingress-nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "https://om.example.com/api/v1/tables?x=1"),
            ],
            true,
            200,
        ),
        case(
            "ingress-nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "https://om.example.com/api/v1/%62ots?x=1"),
            ],
            true,
            403,
        ),
        case(
            "ingress-nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "https://om.example.com/api/v1/tables"),
                ("X-Original-URI", "/api/v1/tables"),
            ],
            false,
            401,
        ),
        case(
            "ingress-nginx",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "om.example.com/api/v1/tables"),
            ],
            true,
            400,
        ),
        // Traefik: X-Forwarded-Method + X-Forwarded-Uri.
        case(
            "traefik",
            "GET",
            AUTH,
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/v1/tables"),
            ],
            true,
            200,
        ),
        case(
            "traefik",
            "GET",
            AUTH,
            &[
                ("X-Forwarded-Method", "PUT"),
                ("X-Forwarded-Uri", "/api/v1/bots"),
            ],
            true,
            403,
        ),
        case(
            "traefik",
            "GET",
            AUTH,
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/v1/tables"),
            ],
            false,
            401,
        ),
        case(
            "traefik",
            "GET",
            AUTH,
            &[
                ("X-Forwarded-Method", "GET"),
                ("X-Forwarded-Uri", "/api/v1/bots%5c"),
            ],
            true,
            403,
        ),
        // Envoy ext_authz: our path + the original path, the original method.
        case(
            "envoy",
            "GET",
            "/_gateway/auth/api/v1/tables?fields=owners",
            &[],
            true,
            200,
        ),
        case(
            "envoy",
            "POST",
            "/_gateway/auth/api/v1/tables",
            &[],
            true,
            200,
        ),
        case(
            "envoy",
            "DELETE",
            "/_gateway/auth/api/v1/bots/1",
            &[],
            true,
            403,
        ),
        case(
            "envoy",
            "GET",
            "/_gateway/auth/api/v1/tables",
            &[],
            false,
            401,
        ),
        case(
            "envoy",
            "GET",
            "/_gateway/auth/api/v1/x/%2e%2e/bots",
            &[],
            true,
            403,
        ),
        case(
            "envoy",
            "GET",
            "/_gateway/auth/api/v1/bots%2f",
            &[],
            true,
            403,
        ),
        // A client's extra description that disagrees with the ingress's own is refused, never
        // preferred: behind ingress-nginx a client can add X-Forwarded-Uri, behind Traefik X-Original-URI.
        case(
            "forged",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "https://h/api/v1/bots"),
                ("X-Forwarded-Uri", "/api/v1/tables"),
            ],
            true,
            400,
        ),
        case(
            "forged",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
                ("X-Forwarded-Uri", "/api/v1/bots"),
            ],
            true,
            400,
        ),
        case(
            "forged",
            "GET",
            "/_gateway/auth/api/v1/bots",
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
            ],
            true,
            400,
        ),
        case(
            "forged",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Forwarded-Method", "DELETE"),
                ("X-Original-URI", "/api/v1/bots"),
            ],
            true,
            400,
        ),
        case(
            "forged",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URL", "https://h/api/v1/tables"),
                ("X-Forwarded-Uri", "/api/v1/tables?other"),
            ],
            true,
            400,
        ),
        // Spoofed identity headers in the question never come back in the answer.
        case(
            "spoof",
            "GET",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
                ("X-Auth-Request-User", "admin"),
            ],
            true,
            200,
        ),
        // Malformed questions.
        case("bad", "GET", AUTH, &[], true, 400),
        // No method header: 400, never judged as GET.
        case(
            "bad",
            "GET",
            AUTH,
            &[("X-Original-URI", "/api/v1/bots/1")],
            true,
            400,
        ),
        case(
            "bad",
            "POST",
            AUTH,
            &[
                ("X-Original-Method", "GET"),
                ("X-Original-URI", "/api/v1/tables"),
            ],
            true,
            400,
        ),
    ];
    for case in &cases {
        check(&setup, &token, case).await;
    }
    assert!(
        setup.upstream.received().is_empty(),
        "forward-auth never calls the upstream: {:?}",
        setup.upstream.received()
    );
    let metrics = setup.gateway.metrics().await;
    assert!(
        metrics.contains(
            "om_gateway_requests_total{method=\"GET\",route=\"bots-admin\",status=\"403\"}"
        ),
        "forward-auth answers are counted under the judged route"
    );
}

// === A real nginx running deploy/nginx/om-gateway-auth.conf ===

/// nginx as a child process with everything in a temp dir; killed on drop.
struct Nginx {
    child: Child,
    address: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> String {
    for candidate in [
        "nginx",
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ] {
        let found = Command::new(candidate)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if found {
            return candidate.to_string();
        }
    }
    panic!(
        "nginx is not installed, and this test needs a real one: install the Debian package \
         `nginx-light` (apt-get install -y nginx-light) or `nginx`; CI (.ci/run) installs it"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nginx {
    async fn start(gateway: SocketAddr, upstream: SocketAddr) -> Nginx {
        let binary = nginx_binary();
        let dir = tempfile::tempdir().unwrap();
        let shipped = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/nginx/om-gateway-auth.conf"
        ))
        .unwrap();
        let port = free_port();
        let mut site = shipped.clone();
        for (from, to) in [
            ("server om-gateway:8080;", format!("server {gateway};")),
            ("server openmetadata:8585;", format!("server {upstream};")),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
        ] {
            assert!(
                site.contains(from),
                "deploy/nginx/om-gateway-auth.conf has `{from}`"
            );
            site = site.replace(from, &to);
        }
        let root = dir.path().display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root}/nginx.pid;\n\
             error_log {root}/error.log info;\nevents {{ worker_connections 128; }}\n\
             http {{\n  access_log {root}/access.log;\n  client_body_temp_path {root}/body;\n\
             proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n\
             uwsgi_temp_path {root}/uwsgi;\n  scgi_temp_path {root}/scgi;\n{site}\n}}\n"
        );
        let config_path = dir.path().join("nginx.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(&binary)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        let mut nginx = Nginx {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        nginx.wait_ready().await;
        nginx
    }

    /// Poll a public path through nginx until it answers, or fail with nginx's error log.
    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status}: {}", self.error_log());
            }
            let answered = client()
                .get(format!("http://{}/api/v1/system/version", self.address))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx not ready within 10 s: {}",
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

#[tokio::test]
async fn real_nginx_with_the_shipped_auth_request_config() {
    let setup = setup().await;
    let nginx = Nginx::start(setup.gateway.proxy(), setup.upstream.address).await;
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
    // Tricks nginx passes on raw in $request_uri: refused (403, or 500 for the gateway's 400).
    for target in [
        "/api/v1/%62ots",
        "/api/v1/x/../bots",
        "/api//v1/bots",
        "/api/v1/bots%2fx",
        "/api/v1/bots;x=1",
    ] {
        let response = raw_request(
            nginx.address,
            "GET",
            target,
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .await;
        assert!(
            [400, 403, 500].contains(&response.status),
            "{target} through nginx: {} {}",
            response.status,
            response.body
        );
    }
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
