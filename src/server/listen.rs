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
use crate::metrics::Metrics;
use crate::tls::ReloadingTls;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::IntGauge;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Limits applied to every client connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace_period: Duration,
    pub max_connections: usize,
}

/// hyper's own size limit sits above the gateway's, so that the gateway sees an oversized head
/// first and answers 431 in JSON; only a head past twice the limit, or with more than
/// `MAX_HEADER_LINES` header lines, meets hyper's bare 431.
///
/// 100 is hyper's default and the most it parses into arrays on the stack: any larger count makes
/// it allocate and free two arrays of that many entries for every request head (at 1000: two
/// 32 KiB allocations per request, issue 17). Browsers send 15–30 header lines, the SDK fewer.
const MAX_HEADER_LINES: usize = 100;

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
/// threads. A new connection may cross threads once, before its first byte is read: the worker
/// that accepted it hands it to the worker serving the fewest connections (`Balancer`). Returns
/// a task that finishes when every worker has drained.
pub fn spawn_proxy_workers(
    listener: std::net::TcpListener,
    workers: usize,
    shared: ProxyShared,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let (balancer, inboxes) = Balancer::new(workers, &shared.gateway.metrics);
    let balancer = Arc::new(balancer);
    let mut finished = Vec::with_capacity(workers);
    for (index, inbox) in inboxes.into_iter().enumerate() {
        let listener = listener.try_clone()?;
        let shared = shared.clone();
        let balancer = balancer.clone();
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
                        Ok(listener) => {
                            let worker = Worker {
                                index,
                                balancer,
                                inbox,
                            };
                            serve_proxy(listener, shared, worker).await
                        }
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

/// A connection on its way to the worker that will serve it: the socket (not yet read from),
/// the client's address, its `maxConnections` slot and its place in the target's count.
struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    open: OpenConnection,
}

/// Spreads connections over the workers. Every worker accepts (whichever the kernel wakes
/// first); one that accepted while another serves fewer connections passes the socket on. Left
/// to the accept race, one worker took all 32 of a benchmark's connections in two runs of three
/// and served them on one core beside an idle one.
struct Balancer {
    /// Connections per worker, as exported in `om_gateway_worker_connections{worker}`.
    open: Box<[IntGauge]>,
    inboxes: Box<[mpsc::UnboundedSender<Handed>]>,
}

impl Balancer {
    fn new(workers: usize, metrics: &Metrics) -> (Balancer, Vec<mpsc::UnboundedReceiver<Handed>>) {
        let (senders, receivers) = (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
        let balancer = Balancer {
            open: (0..workers)
                .map(|worker| {
                    metrics
                        .worker_connections
                        .with_label_values(&[&worker.to_string()])
                })
                .collect(),
            inboxes: Vec::into_boxed_slice(senders),
        };
        (balancer, receivers)
    }

    /// The worker that should serve a connection `accepted_by` took: itself unless another
    /// serves fewer (the first such with the fewest). Counted on that worker at once, so that
    /// the next decision, on any thread, sees it.
    fn assign(&self, accepted_by: usize) -> (usize, OpenConnection) {
        let count = |worker: usize| self.open[worker].get();
        let mut target = accepted_by;
        for worker in 0..self.open.len() {
            if count(worker) < count(target) {
                target = worker;
            }
        }
        (target, OpenConnection::count(self.open[target].clone()))
    }
}

/// One proxy worker's identity in the balancing: its index and where handed connections arrive.
struct Worker {
    index: usize,
    balancer: Arc<Balancer>,
    inbox: mpsc::UnboundedReceiver<Handed>,
}

/// What the accept loop does next.
enum Next {
    Accepted(TcpStream, SocketAddr, OwnedSemaphorePermit),
    Handed(Handed),
    Stop,
}

/// Wait for a free `maxConnections` slot, then accept. Cancel-safe: dropped while waiting, it
/// gives the slot back and loses no connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    // Wait for a free slot before accepting: excess connections queue in the backlog
    // instead of being accepted and starved.
    let slot = slots.clone().acquire_owned().await.ok()?;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => return Some((stream, peer, slot)),
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// How every connection of one worker is served: the shared settings and this worker's
/// protocol builders and graceful-shutdown watcher.
struct Server {
    tls: Option<Arc<ReloadingTls>>,
    gateway: Arc<Gateway>,
    builders: Arc<Builders>,
    first_byte_timeout: Duration,
    graceful: GracefulShutdown,
}

/// Serve the proxy until `shutdown` flips, then drain for at most the grace period.
async fn serve_proxy(listener: TcpListener, shared: ProxyShared, mut worker: Worker) {
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
    let server = Server {
        tls,
        gateway,
        builders: Arc::new(Builders::new(&settings)),
        first_byte_timeout: settings.header_read_timeout,
        graceful: GracefulShutdown::new(),
    };
    loop {
        let next = tokio::select! {
            Some(handed) = worker.inbox.recv() => Next::Handed(handed),
            accepted = accept(&listener, &slots) => match accepted {
                Some((stream, peer, slot)) => Next::Accepted(stream, peer, slot),
                None => Next::Stop,
            },
            _ = shutdown.changed() => Next::Stop,
        };
        match next {
            Next::Stop => break,
            Next::Handed(handed) => server.serve_handed(handed),
            Next::Accepted(stream, peer, slot) => {
                let (target, open) = worker.balancer.assign(worker.index);
                if target == worker.index {
                    server.serve(stream, peer, slot, open);
                    continue;
                }
                let stream = match stream.into_std() {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, %peer, "cannot hand a connection over");
                        continue;
                    }
                };
                let handed = Handed {
                    stream,
                    peer,
                    slot,
                    open,
                };
                // The other worker has stopped (shutdown): serve it here.
                if let Err(mpsc::error::SendError(handed)) =
                    worker.balancer.inboxes[target].send(handed)
                {
                    server.serve_handed(handed);
                }
            }
        }
    }
    drop(listener);
    // Connections handed to this worker before it stopped are still served, within the drain.
    worker.inbox.close();
    while let Ok(handed) = worker.inbox.try_recv() {
        server.serve_handed(handed);
    }
    let Server { graceful, .. } = server;
    if tokio::time::timeout(settings.shutdown_grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing connections still open");
    }
}

impl Server {
    fn serve_handed(&self, handed: Handed) {
        let Handed {
            stream,
            peer,
            slot,
            open,
        } = handed;
        match TcpStream::from_std(stream) {
            Ok(stream) => self.serve(stream, peer, slot, open),
            Err(error) => tracing::debug!(%error, %peer, "cannot take a handed connection"),
        }
    }

    /// Serve one client connection on this worker's event loop until it closes.
    fn serve(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        open: OpenConnection,
    ) {
        let _ = stream.set_nodelay(true);
        let watcher = self.graceful.watcher();
        let (tls, gateway, builders) = (
            self.tls.clone(),
            self.gateway.clone(),
            self.builders.clone(),
        );
        let first_byte_timeout = self.first_byte_timeout;
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
            drop(open);
            drop(slot);
        });
    }
}

/// One open client connection, counted on its worker's gauge until dropped.
struct OpenConnection(prometheus::IntGauge);

impl OpenConnection {
    fn count(gauge: prometheus::IntGauge) -> OpenConnection {
        gauge.inc();
        OpenConnection(gauge)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
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
