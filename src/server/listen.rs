//! Accept loops: the proxy listener (HTTP/1.1 and HTTP/2, h2 via ALPN on TLS, h2c by prior
//! knowledge) and the admin listener. Each connection is watched for graceful shutdown: on
//! drain the loop stops accepting and open connections finish their requests.
//!
//! Connection-level limits live here: at most `max_connections` served at once (further
//! connections wait in the kernel's listen backlog until one closes), a deadline for the first
//! byte, the TLS handshake and every request head (slowloris), and hyper's hard header limits.
//! Per-request limits that can be answered in JSON (414, 431) are the gateway service's.

use super::gateway::Gateway;
use crate::admin;
use crate::tls::ReloadingTls;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits applied to every client connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub max_connections: usize,
}

/// hyper's own header limits sit above the gateway's, so that the gateway sees an oversized
/// head first and answers 431 in JSON; only a head past twice the limit (or past 1000 header
/// lines) meets hyper's bare 431.
const MAX_HEADER_LINES: usize = 1000;

/// The three ways a connection may be served: sniffed (plain TCP: HTTP/1.1 or h2c prior
/// knowledge), or fixed by the ALPN result on TLS.
struct Builders {
    sniffed: Builder<TokioExecutor>,
    http1: Builder<TokioExecutor>,
    http2: Builder<TokioExecutor>,
}

fn connection_builder(settings: &ConnectionSettings) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // The timer starts whenever hyper waits for a head, so it also closes idle keep-alive
        // connections after the same time.
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size((settings.max_header_bytes * 2).max(8192))
        .max_headers(MAX_HEADER_LINES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size((settings.max_header_bytes * 2).min(u32::MAX as usize) as u32)
        .max_concurrent_streams(256)
        // Dead h2 peers are found by pings instead of lingering until the OS notices.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

impl Builders {
    fn new(settings: &ConnectionSettings) -> Builders {
        Builders {
            sniffed: connection_builder(settings),
            http1: connection_builder(settings).http1_only(),
            http2: connection_builder(settings).http2_only(),
        }
    }
}

/// What every proxy worker shares.
#[derive(Clone)]
pub struct ProxyShared {
    pub tls: Option<Arc<ReloadingTls>>,
    pub gateway: Arc<Gateway>,
    pub settings: ConnectionSettings,
    /// `maxConnections` across all workers.
    pub slots: Arc<Semaphore>,
    pub shutdown: watch::Receiver<bool>,
}

/// Start `workers` threads, each running its own single-threaded event loop that accepts from
/// (a duplicate of) `listener`, serves its connections and keeps its own upstream connections.
/// A request is parsed, checked, forwarded and answered on one thread, with no hand-off between
/// threads. Returns a task that finishes when every worker has drained.
pub fn spawn_proxy_workers(
    listener: std::net::TcpListener,
    workers: usize,
    shared: ProxyShared,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let mut finished = Vec::with_capacity(workers);
    for index in 0..workers {
        let listener = listener.try_clone()?;
        let shared = shared.clone();
        let (done, finished_one) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("om-gateway-w{index}"))
            .spawn(move || {
                crate::proxy::forward::enter_worker(index);
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve_proxy(listener, shared).await,
                        Err(error) => tracing::error!(%error, worker = index, "cannot listen"),
                    }
                });
                // Connections still open after the grace period end with the runtime.
                drop(runtime);
                let _ = done.send(());
            })?;
        finished.push(finished_one);
    }
    Ok(tokio::spawn(async move {
        for worker in finished {
            let _ = worker.await;
        }
    }))
}

/// Serve the proxy until `shutdown` flips, then drain for at most the grace period.
async fn serve_proxy(listener: TcpListener, shared: ProxyShared) {
    let ProxyShared {
        tls,
        gateway,
        settings,
        slots,
        mut shutdown,
    } = shared;
    if *shutdown.borrow() {
        return;
    }
    let builders = Arc::new(Builders::new(&settings));
    let graceful = GracefulShutdown::new();
    loop {
        // Wait for a free slot before accepting: excess connections queue in the backlog
        // instead of being accepted and starved.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (tls, gateway, builders) = (tls.clone(), gateway.clone(), builders.clone());
        let first_byte_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let is_tls = tls.is_some();
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request, peer, is_tls).await) }
            });
            let result = match tls {
                None => {
                    // hyper's protocol sniffing waits for bytes without a deadline; a client
                    // that connects and stays silent is closed here instead.
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(first_byte_timeout, stream.peek(&mut probe)).await {
                        Ok(Ok(read)) if read > 0 => {}
                        _ => return drop(slot),
                    }
                    let connection = builders
                        .sniffed
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    watcher.watch(connection).await
                }
                Some(tls) => {
                    let handshake = tls.acceptor().accept(stream);
                    let stream = match tokio::time::timeout(first_byte_timeout, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return drop(slot);
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return drop(slot);
                        }
                    };
                    // ALPN already chose the protocol; sniffing again would only add a wait.
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
                    let builder = if h2 { &builders.http2 } else { &builders.http1 };
                    let connection = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    watcher.watch(connection).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(error = %error, %peer, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing connections still open");
    }
}

/// Serve the admin endpoints until `shutdown` flips.
pub async fn serve_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let gateway = gateway.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(admin::routes::handle(&*gateway, request).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
