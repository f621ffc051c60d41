//! The upstream client: keep-alive HTTP/1.1 connections made with hyper's connection-level client
//! (`hyper::client::conn::http1`), pooled per worker thread and per configuration generation.
//! A worker only ever uses the connections it opened, whose tasks run on its own event loop, so
//! a proxied request never crosses threads. Bodies stream both ways untouched (hyper's `Incoming`
//! is passed through, never collected); a connection goes back to its pool when the upstream's
//! response body has ended. A WebSocket handshake (checked by `websocket`) is spliced into a
//! byte tunnel once the upstream's 101 completes it; any other 101 is refused.

use super::websocket::WebSocketHandshake;
use super::ProxyError;
use super::UpstreamConfig;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};

/// What the gateway answers with: the upstream's streamed body, or one it wrote itself.
pub type GatewayBody = Either<UpstreamBody, Full<Bytes>>;

thread_local! {
    /// Which proxy worker this thread is (`server::listen` sets it); other threads share a pool.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Mark the current thread as proxy worker `index`, so that it uses its own upstream pool.
pub fn enter_worker(index: usize) {
    WORKER.with(|worker| worker.set(Some(index)));
}

/// The client's body on its way upstream: the first frame, read before the upstream is
/// contacted (so that a malformed chunked body is refused without forwarding anything), then
/// the rest streaming as it arrives.
pub struct RequestBody {
    first: Option<Frame<Bytes>>,
    rest: Incoming,
}

impl RequestBody {
    /// Read the first frame of `body` unless it is known to be empty. Errors are the client's:
    /// a bad chunk size, a length mismatch, or a connection dropped mid-body.
    pub async fn prefetch(mut body: Incoming) -> Result<RequestBody, hyper::Error> {
        let first = if body.is_end_stream() {
            None
        } else {
            body.frame().await.transpose()?
        };
        Ok(RequestBody { first, rest: body })
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        Pin::new(&mut self.rest).poll_frame(context)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let rest = self.rest.size_hint();
        let first = self
            .first
            .as_ref()
            .and_then(|frame| frame.data_ref())
            .map_or(0, |data| data.len() as u64);
        let mut hint = http_body::SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(first));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(first));
        }
        hint
    }
}

type Sender = SendRequest<RequestBody>;

/// An idle keep-alive connection.
struct Idle {
    sender: Sender,
    since: Instant,
}

/// One worker's idle upstream connections, most recently used last.
struct Pool {
    idle: Mutex<VecDeque<Idle>>,
    sweeper_started: AtomicBool,
}

/// Per-generation pools: one per worker, plus one shared by every other thread.
struct Pools {
    slots: Box<[Pool]>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pools {
    fn slot(&self) -> usize {
        let shared = self.slots.len() - 1;
        WORKER
            .with(Cell::get)
            .filter(|index| *index < shared)
            .unwrap_or(shared)
    }

    fn lock(&self, slot: usize) -> std::sync::MutexGuard<'_, VecDeque<Idle>> {
        match self.slots[slot].idle.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The most recently used live connection, dropping expired and closed ones on the way.
    fn take(&self, slot: usize) -> Option<Sender> {
        let mut idle = self.lock(slot);
        while let Some(entry) = idle.pop_back() {
            if entry.since.elapsed() < self.idle_timeout && !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, slot: usize, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock(slot);
        if idle.len() >= self.max_idle {
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// Drop connections idle for longer than the idle timeout (dropping the sender closes the
    /// connection). Oldest first, so the scan stops at the first young one.
    fn sweep(&self, slot: usize) {
        let mut idle = self.lock(slot);
        while idle
            .front()
            .is_some_and(|entry| entry.since.elapsed() >= self.idle_timeout)
        {
            idle.pop_front();
        }
    }
}

/// Once per pool, on the event loop that owns its connections: sweep expired idle connections
/// until the generation is replaced and its pools are gone.
fn start_sweeper(pools: &Arc<Pools>, slot: usize) {
    if pools.slots[slot]
        .sweeper_started
        .swap(true, Ordering::Relaxed)
    {
        return;
    }
    let weak: Weak<Pools> = Arc::downgrade(pools);
    let period = (pools.idle_timeout / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            match weak.upgrade() {
                Some(pools) => pools.sweep(slot),
                None => return,
            }
        }
    });
}

/// The upstream's response body; hands its connection back to the pool when it ends.
pub struct UpstreamBody {
    inner: Incoming,
    release: Option<(Sender, Arc<Pools>, usize)>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some((sender, pools, slot)) = self.release.take() {
            pools.put(slot, sender);
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // An error leaves the connection in an unknown state: it is not reused.
            Poll::Ready(Some(Err(_))) => self.release = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How to open a new upstream connection.
struct Connector {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
}

impl Connector {
    async fn connect(&self) -> Result<Sender, ProxyError> {
        let stream = tokio::time::timeout(self.connect_timeout, self.tcp())
            .await
            .map_err(|_| {
                ProxyError::Connect(format!(
                    "no connection to {}:{} within {:?}",
                    self.host, self.port, self.connect_timeout
                ))
            })??;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => handshake(TokioIo::new(stream)).await,
            Some((connector, name)) => {
                let tls = tokio::time::timeout(
                    self.connect_timeout,
                    connector.connect(name.clone(), stream),
                )
                .await
                .map_err(|_| ProxyError::Connect("TLS handshake timed out".into()))?
                .map_err(|error| ProxyError::Connect(format!("TLS: {error}")))?;
                handshake(TokioIo::new(tls)).await
            }
        }
    }

    /// Resolve (a literal address resolves without a lookup) and try each address in turn.
    async fn tcp(&self) -> Result<TcpStream, ProxyError> {
        let addresses = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|error| {
                ProxyError::Connect(format!("cannot resolve {}: {error}", self.host))
            })?;
        let mut last = None;
        for address in addresses {
            let socket = if address.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            };
            let attempt = match socket {
                Ok(socket) => {
                    let _ = socket.set_keepalive(true);
                    socket.connect(address).await
                }
                Err(error) => Err(error),
            };
            match attempt {
                Ok(stream) => return Ok(stream),
                Err(error) => last = Some(format!("{address}: {error}")),
            }
        }
        Err(ProxyError::Connect(last.unwrap_or_else(|| {
            format!("{} resolves to no address", self.host)
        })))
    }
}

/// HTTP/1.1 over `io`; the connection's task runs on the current event loop until the last
/// sender is dropped (or the upstream closes), and carries upgraded tunnels.
async fn handshake<I>(io: I) -> Result<Sender, ProxyError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|error| ProxyError::Connect(crate::causes::describe_chain(&error)))?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// Why the upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("upstream URL has no host")]
    NoHost,
    #[error("upstream host `{0}` is not a valid server name")]
    BadHost(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

pub struct Forwarder {
    pools: Arc<Pools>,
    connector: Connector,
    host_header: http::HeaderValue,
    timeout: Duration,
}

impl Forwarder {
    /// `workers`: how many proxy worker threads will use it (each gets its own pool).
    pub fn new(config: &UpstreamConfig, workers: usize) -> Result<Forwarder, ForwarderError> {
        let authority = config
            .url
            .authority()
            .cloned()
            .ok_or(ForwarderError::NoHost)?;
        let https = config.url.scheme_str() == Some("https");
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tls = if https {
            let config =
                crate::tls::client_config(config.ca_file.as_deref(), config.insecure_skip_verify)?;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| ForwarderError::BadHost(host.clone()))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let host_header = http::HeaderValue::from_str(authority.as_str())
            .map_err(|_| ForwarderError::BadHost(authority.to_string()))?;
        let slots = (0..=workers)
            .map(|_| Pool {
                idle: Mutex::new(VecDeque::new()),
                sweeper_started: AtomicBool::new(false),
            })
            .collect();
        Ok(Forwarder {
            pools: Arc::new(Pools {
                slots,
                max_idle: config.pool_max_idle_per_host.max(1),
                idle_timeout: config.pool_idle_timeout,
            }),
            connector: Connector {
                host,
                port,
                tls,
                connect_timeout: config.connect_timeout,
            },
            host_header,
            timeout: config.timeout,
        })
    }

    /// Send `request` to the upstream at `path_and_query` and return its response head with the
    /// body still streaming. Headers must already be rewritten by the caller. `websocket`: the
    /// checked handshake the request opens, if any; only then can a 101 become a tunnel, and
    /// only when it completes that handshake. Any other 101 is `ProxyError::BadUpgrade`, and its
    /// connection is closed, never pooled.
    pub async fn forward(
        &self,
        mut request: Request<RequestBody>,
        path_and_query: String,
        websocket: Option<WebSocketHandshake>,
    ) -> Result<Response<UpstreamBody>, ProxyError> {
        let uri = Uri::from_maybe_shared(Bytes::from(path_and_query))
            .map_err(|error| ProxyError::BadRequest(error.to_string()))?;
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_11;
        request
            .headers_mut()
            .insert(http::header::HOST, self.host_header.clone());
        let upgrade = websocket.map(|handshake| (handshake, hyper::upgrade::on(&mut request)));
        let slot = self.pools.slot();
        let (response, sender) =
            match tokio::time::timeout(self.timeout, self.send(request, slot)).await {
                Err(_) => return Err(ProxyError::Timeout(self.timeout)),
                Ok(result) => result?,
            };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Dropping a 101 that is refused drops its connection (hyper gave it up for the
            // upgrade): nothing more is read from it or written to it.
            return match upgrade {
                Some((handshake, client_upgrade)) if handshake.accepted_by(response.headers()) => {
                    Ok(splice(response, client_upgrade))
                }
                _ => Err(ProxyError::BadUpgrade),
            };
        }
        let (parts, inner) = response.into_parts();
        let mut body = UpstreamBody {
            inner,
            release: Some((sender, self.pools.clone(), slot)),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        Ok(Response::from_parts(parts, body))
    }

    /// On a pooled connection if one is idle, else a new one. A pooled connection the upstream
    /// closed just before we used it gives the request back unsent: it is retried on a new one.
    async fn send(
        &self,
        mut request: Request<RequestBody>,
        slot: usize,
    ) -> Result<(Response<Incoming>, Sender), ProxyError> {
        loop {
            let (mut sender, pooled) = match self.pools.take(slot) {
                Some(sender) => (sender, true),
                None => {
                    // Boxed: resolving, connecting and a TLS handshake make a future of several
                    // KiB that every request's future would otherwise carry (and copy) inline,
                    // for a path only a new connection takes.
                    let sender = Box::pin(self.connector.connect()).await?;
                    start_sweeper(&self.pools, slot);
                    (sender, false)
                }
            };
            if pooled && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok((response, sender)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(classify(error.into_error())),
                },
            }
        }
    }
}

/// Join the client's connection and the upstream's into a byte tunnel once both are handed over.
/// The upstream connection is the tunnel now: never back to the pool.
fn splice(
    mut response: Response<Incoming>,
    client_upgrade: hyper::upgrade::OnUpgrade,
) -> Response<UpstreamBody> {
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        match (client_upgrade.await, upstream_upgrade.await) {
            (Ok(client), Ok(upstream)) => {
                let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%error, "upgrade did not complete")
            }
        }
    });
    response.map(|inner| UpstreamBody {
        inner,
        release: None,
    })
}

/// The client's own body failing while it streamed upstream is the client's fault (hyper marks
/// errors from a request body stream as user errors); anything else is the upstream's.
fn classify(error: hyper::Error) -> ProxyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return ProxyError::ClientBody(crate::causes::describe_chain(&error));
        }
        source = cause.source();
    }
    ProxyError::Reset(crate::causes::describe_chain(&error))
}
