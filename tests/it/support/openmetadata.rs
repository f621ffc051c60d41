//! A scripted OpenMetadata server on 127.0.0.1:0: it publishes security settings on the three
//! endpoints the gateway follows (`/api/v1/system/config/auth`, `/authorizer`, and the admin-only
//! `/api/v1/system/security/config`), each answer changeable while a test runs, and answers
//! every other path like an API (`{"data":[]}`), recording what it saw.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

pub const AUTH: &str = "/api/v1/system/config/auth";
pub const AUTHORIZER: &str = "/api/v1/system/config/authorizer";
pub const SECURITY: &str = "/api/v1/system/security/config";

/// How one endpoint answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 `application/json` with this document.
    Json(Value),
    /// Exactly this status, content type and body.
    Raw {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Close the connection without answering.
    Drop,
    /// Answer `Json` only after this long.
    Slow(Duration, Value),
}

/// The script: one answer per endpoint, the bearer token the admin endpoint accepts, and an
/// ETag sent with every JSON answer (a matching `If-None-Match` gets 304).
#[derive(Debug, Clone)]
pub struct Script {
    pub auth: Answer,
    pub authorizer: Answer,
    pub security: Answer,
    pub admin_token: String,
    pub etag: Option<String>,
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    /// `X-Auth-Request-User` as the gateway forwarded it.
    pub user: Option<String>,
}

pub struct StandIn {
    pub address: SocketAddr,
    script: Arc<Mutex<Script>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    pub async fn start(script: Script) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let script = Arc::new(Mutex::new(script));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (task_script, task_seen) = (script.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let script = task_script.clone();
                let seen = task_seen.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let script = script.clone();
                        let seen = seen.clone();
                        async move { answer(request, &script, &seen).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        StandIn {
            address,
            script,
            seen,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn update(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.script.lock().expect("lock"));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The requests to `path`.
    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The settings a stock OpenMetadata 2.x publishes on its public endpoints.
pub fn public_auth(claims: &[&str]) -> Value {
    serde_json::json!({
        "provider": "google",
        "providerName": "",
        "clientType": "public",
        "enableSelfSignup": true,
        "jwtPrincipalClaims": claims,
        "jwtPrincipalClaimsMapping": [],
        "clientId": "",
        "authority": "",
        "callbackUrl": "http://localhost:8585/callback",
        // Not in the allow-list: the server's new AuthenticationConfiguration() starts empty.
        "publicKeyUrls": [],
    })
}

/// `/authorizer` copies only principalDomain; the other lists come out empty.
pub fn public_authorizer(domain: &str) -> Value {
    serde_json::json!({
        "adminPrincipals": [],
        "allowedEmailRegistrationDomains": [],
        "principalDomain": domain,
        "allowedDomains": [],
        "useRolesFromProvider": false,
    })
}

async fn answer(
    request: Request<Incoming>,
    script: &Mutex<Script>,
    seen: &Mutex<Vec<Seen>>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path = request.uri().path().to_string();
    let record = Seen {
        path: path.clone(),
        authorization: header("authorization"),
        if_none_match: header("if-none-match"),
        user: header("x-auth-request-user"),
    };
    seen.lock().expect("lock").push(record.clone());
    let current = script.lock().expect("lock").clone();
    let chosen = match path.as_str() {
        AUTH => current.auth,
        AUTHORIZER => current.authorizer,
        SECURITY => {
            if record.authorization.as_deref() != Some(&format!("Bearer {}", current.admin_token)) {
                return Ok(json(
                    401,
                    &serde_json::json!({"code": 401, "message": "Not Authorized! Token not present"}),
                    None,
                ));
            }
            current.security
        }
        _ => return Ok(json(200, &serde_json::json!({"data": []}), None)),
    };
    let etag = current.etag.clone();
    match chosen {
        Answer::Json(document) => {
            if etag.is_some() && record.if_none_match == etag {
                let mut response = Response::new(Full::new(Bytes::new()));
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                return Ok(response);
            }
            Ok(json(200, &document, etag.as_deref()))
        }
        Answer::Slow(delay, document) => {
            tokio::time::sleep(delay).await;
            Ok(json(200, &document, None))
        }
        Answer::Raw {
            status,
            content_type,
            body,
        } => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            Ok(response)
        }
        // An error from the service makes hyper close the connection without an answer.
        Answer::Drop => Err(std::io::Error::other("dropped on purpose")),
    }
}

fn json(status: u16, document: &Value, etag: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(document.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(etag) = etag {
        response.headers_mut().insert(
            http::header::ETAG,
            http::HeaderValue::from_str(etag).expect("etag"),
        );
    }
    response
}
