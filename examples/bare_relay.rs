//! The gateway's relay and nothing else, for measuring what the relay alone costs: the same
//! single-threaded runtime per worker, hyper's HTTP/1.1 server, and the gateway's own upstream
//! client (`proxy::Forwarder`, pooled per worker, bodies streamed) — but no judge, no header
//! rewriting, no request id, no metrics and no access log. Connections are spread over the
//! workers by the kernel (`SO_REUSEPORT`, one listening socket per worker).
//!
//! BENCHMARKS.md ("Round 4") runs it beside the gateway and nginx:
//! `cargo build --release --example bare_relay` then
//! `bench/cpu-per-request.sh 3 target/release/om-gateway target/release/examples/bare_relay`.
//! `BARE_RELAY=target/release/examples/bare_relay bench/run-gateway.sh pair` adds it to the
//! shared harness run (as `bare-relay`, on :18082; it fails the auth check, by design).
//! It ignores its arguments (that script passes `run --config ...`), proxies `BARE_LISTEN`
//! (default 127.0.0.1:18080) to the harness upstream 127.0.0.1:18585 and answers 200 on
//! `BARE_READY` (default 127.0.0.1:19090, the script's readiness poll). `BARE_WORKERS` (default
//! 2) sets the worker count. Stop it with a signal.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use om_gateway::proxy::{Forwarder, GatewayBody, RequestBody, UpstreamConfig};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpSocket;

const UPSTREAM: &str = "http://127.0.0.1:18585";

fn address(variable: &str, default: &str) -> anyhow::Result<SocketAddr> {
    Ok(std::env::var(variable)
        .unwrap_or_else(|_| default.to_string())
        .parse()?)
}

fn main() -> anyhow::Result<()> {
    let workers: usize = std::env::var("BARE_WORKERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2);
    let upstream = UpstreamConfig {
        url: UPSTREAM.parse()?,
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(300),
        ca_file: None,
        insecure_skip_verify: false,
        pool_idle_timeout: Duration::from_secs(90),
        pool_max_idle_per_host: 64,
    };
    let forwarder = Arc::new(Forwarder::new(&upstream, workers)?);
    let listen = address("BARE_LISTEN", "127.0.0.1:18080")?;
    let ready_address = address("BARE_READY", "127.0.0.1:19090")?;
    let mut threads = Vec::new();
    for index in 0..workers {
        let forwarder = forwarder.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(std::thread::spawn(move || {
            om_gateway::proxy::forward::enter_worker(index);
            runtime.block_on(serve(listen, forwarder))
        }));
    }
    let ready = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    ready.block_on(answer_ready(ready_address))?;
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

/// One worker: its own listening socket on the shared port, its connections, its pool.
async fn serve(listen: SocketAddr, forwarder: Arc<Forwarder>) -> anyhow::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(1024)?;
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (forwarder, builder) = (forwarder.clone(), builder.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let forwarder = forwarder.clone();
                async move { Ok::<_, Infallible>(relay(&forwarder, request).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Forward the request as it came; 502 when the upstream fails.
async fn relay(forwarder: &Forwarder, request: Request<Incoming>) -> Response<GatewayBody> {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |target| target.as_str().to_string());
    let failed = || {
        let mut response = Response::new(Either::Right(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    };
    let Ok(body) = RequestBody::prefetch(body).await else {
        return failed();
    };
    match forwarder
        .forward(Request::from_parts(parts, body), path_and_query, None)
        .await
    {
        Ok(response) => response.map(Either::Left),
        Err(_) => failed(),
    }
}

/// 200 to anything on the readiness address.
async fn answer_ready(address: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            });
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
