//! The opt-in revocation check: a scripted OpenMetadata that revokes a token mid-test. The gateway
//! asks `GET /api/v1/users/loggedInUser` the first time it sees a token and then at most once per
//! `recheckInterval`; a 401 there is a 401 here; when the server cannot be asked, the check fails
//! open (counted) or closed (503), as configured.

use crate::support::gateway::basic_yaml;
use crate::support::keys::{jwks, TestKey};
use crate::support::{client, JwksServer, TestGateway};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the scripted server does with `loggedInUser`.
#[derive(Default)]
struct Script {
    /// Bearer tokens the server no longer accepts.
    revoked: HashSet<String>,
    /// Answer 500 to every check (the server cannot be asked).
    broken: bool,
}

/// An OpenMetadata stand-in: `loggedInUser` answers per the script, everything else 200.
struct ScriptedOpenMetadata {
    address: SocketAddr,
    script: Arc<Mutex<Script>>,
    checks: Arc<AtomicUsize>,
    forwarded: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedOpenMetadata {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedOpenMetadata {
    async fn start() -> ScriptedOpenMetadata {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let checks = Arc::new(AtomicUsize::new(0));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let (task_script, task_checks, task_forwarded) =
            (script.clone(), checks.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, checks, forwarded) = (
                    task_script.clone(),
                    task_checks.clone(),
                    task_forwarded.clone(),
                );
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (script, checks, forwarded) =
                            (script.clone(), checks.clone(), forwarded.clone());
                        async move {
                            let token = request
                                .headers()
                                .get("authorization")
                                .and_then(|value| value.to_str().ok())
                                .and_then(|value| value.strip_prefix("Bearer "))
                                .unwrap_or("")
                                .to_string();
                            let is_check = request.uri().path() == "/api/v1/users/loggedInUser"
                                && request.headers().get("x-auth-request-user").is_none();
                            let (status, body) = if is_check {
                                checks.fetch_add(1, Ordering::SeqCst);
                                let script = script.lock().unwrap();
                                if script.broken {
                                    (500, r#"{"code":500,"message":"down"}"#)
                                } else if script.revoked.contains(&token) {
                                    (
                                        401,
                                        r#"{"code":401,"message":"Invalid personal access token!"}"#,
                                    )
                                } else {
                                    (
                                        200,
                                        r#"{"id":"0b9e5a9c-3d4f-4e1a-9d7b-1c2e3f4a5b6c","name":"alice"}"#,
                                    )
                                }
                            } else {
                                forwarded.fetch_add(1, Ordering::SeqCst);
                                (200, r#"{"data":[]}"#)
                            };
                            let mut response = Response::new(Full::new(Bytes::from(body)));
                            *response.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedOpenMetadata {
            address,
            script,
            checks,
            forwarded,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

async fn setup(check: &str) -> (TestKey, JwksServer, ScriptedOpenMetadata, TestGateway) {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let server = ScriptedOpenMetadata::start().await;
    let yaml = format!(
        "{}revocationCheck:\n{check}",
        basic_yaml(&server.url(), &[jwks_server.url()])
    );
    let gateway = TestGateway::start_ready(&yaml).await;
    (key, jwks_server, server, gateway)
}

async fn status(gateway: &TestGateway, token: &str) -> (u16, String) {
    let response = client()
        .get(gateway.url("/api/v1/tables"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn answers_are_remembered_per_token_for_the_recheck_interval() {
    // A long interval: nothing here may depend on how fast the requests run.
    let (key, _jwks, server, gateway) = setup("  enabled: true\n  recheckInterval: 10m\n").await;
    let tokens = key.tokens();
    let token = tokens.personal();
    // Twenty requests in a row: one check, twenty forwarded.
    for _ in 0..20 {
        assert_eq!(status(&gateway, &token).await.0, 200);
    }
    assert_eq!(
        server.checks.load(Ordering::SeqCst),
        1,
        "one check per token per interval"
    );
    assert_eq!(server.forwarded.load(Ordering::SeqCst), 20);
    // A token the server already refuses: 401 at its first sight, and the refusal is
    // remembered too (the server is not asked again per request).
    let revoked = tokens.mint(&om_gateway::cli::TokenRequest {
        roles: vec!["DataSteward".into()],
        ..tokens.request()
    });
    server
        .script
        .lock()
        .unwrap()
        .revoked
        .insert(revoked.clone());
    for _ in 0..5 {
        let (code, body) = status(&gateway, &revoked).await;
        assert_eq!(code, 401, "{body}");
        assert!(body.contains("no longer accepts it"), "{body}");
    }
    assert_eq!(server.checks.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.forwarded.load(Ordering::SeqCst),
        20,
        "nothing refused was forwarded"
    );
    let metrics = gateway.metrics().await;
    assert_eq!(
        metrics.value(
            "om_gateway_revocation_checks_total",
            &[("result", "revoked")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metrics.value(
            "om_gateway_auth_decisions_total",
            &[("result", "deny"), ("reason", "revoked")]
        ),
        Some(5.0)
    );
}

#[tokio::test]
async fn a_token_revoked_on_the_server_is_refused_once_the_interval_has_passed() {
    let (key, _jwks, server, gateway) = setup("  enabled: true\n  recheckInterval: 300ms\n").await;
    let token = key.tokens().personal();
    assert_eq!(status(&gateway, &token).await.0, 200);
    // The server revokes it mid-test; the gateway follows once its answer is older than the
    // interval (polled against a deadline, never timed).
    server.script.lock().unwrap().revoked.insert(token.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = status(&gateway, &token).await;
        if code == 401 {
            assert!(body.contains("no longer accepts it"), "{body}");
            break;
        }
        assert_eq!(code, 200, "{body}");
        assert!(Instant::now() < deadline, "the revoked token still passes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn fifty_concurrent_first_sights_of_one_token_ask_the_server_once() {
    let (key, _jwks, server, gateway) = setup("  enabled: true\n").await;
    let token = key.tokens().personal();
    let requests = (0..50).map(|_| {
        let url = gateway.url("/api/v1/tables");
        let token = token.clone();
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    });
    for request in requests.collect::<Vec<_>>() {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(server.checks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn when_the_server_cannot_be_asked_the_check_fails_open_by_default_and_closed_on_request() {
    let (key, _jwks, server, gateway) = setup("  enabled: true\n").await;
    server.script.lock().unwrap().broken = true;
    let token = key.tokens().personal();
    assert_eq!(status(&gateway, &token).await.0, 200, "fails open");
    assert_eq!(
        gateway.metrics().await.value(
            "om_gateway_revocation_checks_total",
            &[("result", "unavailable_open")]
        ),
        Some(1.0)
    );
    // Not remembered: the next request asks again.
    assert_eq!(status(&gateway, &token).await.0, 200);
    assert_eq!(server.checks.load(Ordering::SeqCst), 2);

    let (key, _jwks, server, gateway) = setup("  enabled: true\n  onUnavailable: closed\n").await;
    server.script.lock().unwrap().broken = true;
    let (code, body) = status(&gateway, &key.tokens().personal()).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("cannot be asked"), "{body}");
    assert_eq!(server.forwarded.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn without_the_option_the_server_is_never_asked() {
    let (key, _jwks, server, gateway) = setup("  enabled: false\n").await;
    let token = key.tokens().personal();
    server.script.lock().unwrap().revoked.insert(token.clone());
    assert_eq!(status(&gateway, &token).await.0, 200);
    assert_eq!(server.checks.load(Ordering::SeqCst), 0);
}
