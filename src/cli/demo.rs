//! `om-gateway demo`: one process with a demo issuer (its own key and an OpenMetadata-form JWKS
//! endpoint), a small upstream that answers like OpenMetadata's `/api/v1/...`, and the gateway in
//! front of it. Prints curl lines that work as printed, and the status each one gets.

use super::token::{mint_token, TokenRequest};
use super::{EXIT_FAILURE, EXIT_INVALID, EXIT_OK};
use crate::config::{load, ConfigText, LoadInput};
use crate::server::RunningServer;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use bytes::Bytes;
use clap::Args;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The demo issuer's key pair: generated for this demo, published in this repository, trusted by
/// nothing but the demo's own gateway.
const DEMO_PRIVATE_KEY: &[u8] = include_bytes!("demo-issuer-key.pem");
const DEMO_PUBLIC_KEY: &[u8] = include_bytes!("demo-issuer-key.pub.pem");
const DEMO_KID: &str = "om-gateway-demo-key";

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Print the lines and results, then exit instead of serving (used by tests and CI).
    #[arg(long)]
    once: bool,
}

/// One demo case: what it shows, the token, the request, and the status it should get.
pub struct DemoCase {
    pub title: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub token: String,
    pub expected: u16,
}

pub struct DemoHandle {
    pub server: RunningServer,
    pub issuer_address: SocketAddr,
    pub upstream_address: SocketAddr,
    pub cases: Vec<DemoCase>,
}

/// Serve `handler` on 127.0.0.1 at an ephemeral port until the process ends.
async fn serve_fn<F>(handler: F) -> std::io::Result<SocketAddr>
where
    F: Fn(Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + Clone + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request)) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The demo JWKS in OpenMetadata's own form: `n` padded base64url over a modulus with a leading 0.
fn demo_jwks() -> anyhow::Result<serde_json::Value> {
    let key = crate::jwks::parse::parse_pem(DEMO_PUBLIC_KEY, None)?;
    let modulus = key
        .modulus
        .ok_or_else(|| anyhow::anyhow!("demo key has no modulus"))?;
    let mut padded = vec![0u8];
    padded.extend_from_slice(&modulus);
    Ok(serde_json::json!({"keys": [{
        "kty": "RSA", "kid": DEMO_KID, "n": URL_SAFE.encode(&padded), "e": "AQAB", "alg": "RS256", "use": "sig"
    }]}))
}

/// An upstream that answers like OpenMetadata and shows what the gateway told it.
fn demo_upstream(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if request.uri().path() == "/api/v1/system/version" {
        return json(
            StatusCode::OK,
            serde_json::json!({"version": "1.6.0 (om-gateway demo upstream)"}),
        );
    }
    json(
        StatusCode::OK,
        serde_json::json!({
            "data": [{"name": "dim_customer", "fullyQualifiedName": "demo.shop.public.dim_customer"}],
            "paging": {"total": 1},
            "seenByUpstream": {
                "method": request.method().as_str(),
                "path": request.uri().path(),
                "user": header("x-auth-request-user"),
                "email": header("x-auth-request-email"),
                "roles": header("x-auth-request-roles"),
                "isBot": header("x-auth-request-is-bot"),
                "tokenType": header("x-auth-request-token-type"),
            }
        }),
    )
}

fn demo_token(
    subject: &str,
    is_bot: bool,
    token_type: &str,
    roles: &[&str],
    expires_in: Option<i64>,
) -> anyhow::Result<String> {
    mint_token(&TokenRequest {
        private_key_pem: DEMO_PRIVATE_KEY.to_vec(),
        algorithm: jsonwebtoken::Algorithm::RS256,
        kid: Some(DEMO_KID.into()),
        subject: subject.into(),
        email: None,
        is_bot,
        token_type: Some(token_type.into()),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        expires_in,
        issuer: "open-metadata.org".into(),
        extra_claims: Vec::new(),
    })
}

/// Start the issuer, the upstream and the gateway; return the cases to show.
pub async fn start_demo(listen: SocketAddr) -> anyhow::Result<DemoHandle> {
    let jwks = demo_jwks()?.to_string();
    let issuer_address = serve_fn(move |request: Request<Incoming>| {
        if request.uri().path() == "/api/v1/system/config/jwks" {
            let mut response = json(StatusCode::OK, serde_json::Value::Null);
            *response.body_mut() = Full::new(Bytes::from(jwks.clone()));
            response
        } else {
            json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"code": 404, "message": "not found"}),
            )
        }
    })
    .await?;
    // Like OpenMetadata, the upstream publishes its own signing key at /api/v1/system/config/jwks,
    // which the gateway trusts for OpenMetadata's issuer without being told.
    let own_jwks = demo_jwks()?.to_string();
    let upstream_address = serve_fn(move |request: Request<Incoming>| {
        if request.uri().path() == "/api/v1/system/config/jwks" {
            let mut response = json(StatusCode::OK, serde_json::Value::Null);
            *response.body_mut() = Full::new(Bytes::from(own_jwks.clone()));
            return response;
        }
        demo_upstream(request)
    })
    .await?;
    let yaml = format!(
        "server:\n  listen: {listen}\n  adminListen: 127.0.0.1:0\n  logFormat: text\n\
         upstream:\n  url: http://{upstream_address}\n\
         authenticationConfiguration:\n  publicKeyUrls: [ \"http://{issuer_address}/api/v1/system/config/jwks\" ]\n\
         routes:\n  - name: ingestion-pipelines-write\n    match: {{ pathPrefix: /api/v1/services/ingestionPipelines, methods: [POST, PUT, PATCH, DELETE] }}\n    require: {{ isBot: true, rolesAny: [ IngestionBotRole ] }}\n"
    );
    let environment: HashMap<String, String> = HashMap::new();
    let config = load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "demo".into(),
            text: yaml,
        }),
        openmetadata_file: None,
        environment: &environment,
    })
    .map_err(|error| anyhow::anyhow!("demo configuration: {error}"))?;
    let server = crate::server::start(config).await?;
    let bot = demo_token("ingestion-bot", true, "BOT", &["IngestionBotRole"], None)?;
    let personal = demo_token(
        "alice",
        false,
        "PERSONAL_ACCESS",
        &["DataSteward"],
        Some(3600),
    )?;
    let expired = demo_token(
        "alice",
        false,
        "PERSONAL_ACCESS",
        &["DataSteward"],
        Some(-3600),
    )?;
    // Flip one character in the middle of the signature: well-formed, but it no longer verifies.
    let bad_signature = flip_signature_character(&personal);
    let cases = vec![
        DemoCase {
            title: "bot token (\"exp\": null, isBot true)",
            method: "GET",
            path: "/api/v1/tables",
            token: bot.clone(),
            expected: 200,
        },
        DemoCase {
            title: "personal access token",
            method: "GET",
            path: "/api/v1/tables",
            token: personal.clone(),
            expected: 200,
        },
        DemoCase {
            title: "expired token",
            method: "GET",
            path: "/api/v1/tables",
            token: expired,
            expected: 401,
        },
        DemoCase {
            title: "bad signature",
            method: "GET",
            path: "/api/v1/tables",
            token: bad_signature,
            expected: 401,
        },
        DemoCase {
            title: "forbidden by route `ingestion-pipelines-write` (needs a bot)",
            method: "POST",
            path: "/api/v1/services/ingestionPipelines",
            token: personal,
            expected: 403,
        },
        DemoCase {
            title: "no token",
            method: "GET",
            path: "/api/v1/tables",
            token: String::new(),
            expected: 401,
        },
        DemoCase {
            title: "public endpoint, no token needed",
            method: "GET",
            path: "/api/v1/system/version",
            token: String::new(),
            expected: 200,
        },
    ];
    Ok(DemoHandle {
        server,
        issuer_address,
        upstream_address,
        cases,
    })
}

/// Wait until the gateway has loaded the demo key.
async fn wait_ready(admin: SocketAddr) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("http://{admin}/readyz")).send().await {
            if response.status() == reqwest::StatusCode::OK {
                return true;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

pub fn demo(args: DemoArgs) -> i32 {
    let Ok(runtime) = super::runtime() else {
        return EXIT_FAILURE;
    };
    runtime.block_on(async move {
        let handle = match start_demo(args.listen).await {
            Ok(handle) => handle,
            Err(error) => {
                eprintln!("om-gateway demo: {error}");
                return if error.downcast_ref::<crate::server::StartError>().is_some_and(|e| !e.is_configuration()) {
                    EXIT_FAILURE
                } else {
                    EXIT_INVALID
                };
            }
        };
        let proxy = handle.server.proxy_address;
        let admin = handle.server.admin_address;
        if !wait_ready(admin).await {
            eprintln!("om-gateway demo: the gateway did not load the demo key");
            return EXIT_FAILURE;
        }
        println!("om-gateway demo");
        println!("  gateway   http://{proxy}     (admin: http://{admin}/readyz  /metrics  /keys)");
        println!("  issuer    http://{}/api/v1/system/config/jwks  (OpenMetadata's JWKS form)", handle.issuer_address);
        println!("  upstream  http://{}  (answers like OpenMetadata, echoes the identity it was given)\n", handle.upstream_address);
        let client = reqwest::Client::new();
        let mut all_as_expected = true;
        for case in &handle.cases {
            let url = format!("http://{proxy}{}", case.path);
            let mut request = client.request(reqwest::Method::from_bytes(case.method.as_bytes()).unwrap_or(reqwest::Method::GET), &url);
            let mut curl = format!("curl -s -i -X {} '{url}'", case.method);
            if !case.token.is_empty() {
                request = request.bearer_auth(&case.token);
                curl.push_str(&format!(" -H 'Authorization: Bearer {}'", case.token));
            }
            let status = match request.send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            };
            all_as_expected &= status == case.expected;
            println!("# {} -> {status}", case.title);
            println!("{curl}\n");
        }
        if !all_as_expected {
            eprintln!("om-gateway demo: some requests did not get the status they should");
            return EXIT_FAILURE;
        }
        if args.once {
            handle.server.shutdown().await;
            return EXIT_OK;
        }
        println!("Serving until Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
        handle.server.shutdown().await;
        EXIT_OK
    })
}

/// The same token with one signature character changed (not the last, whose low bits may be padding).
pub fn flip_signature_character(token: &str) -> String {
    let signature_start = token.rfind('.').map_or(0, |dot| dot + 1);
    let position = signature_start + (token.len() - signature_start) / 2;
    token
        .char_indices()
        .map(|(index, c)| {
            if index == position {
                if c == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                c
            }
        })
        .collect()
}
