//! The upstream client: one pooled keep-alive hyper client per configuration generation. Bodies
//! stream both ways untouched (hyper's `Incoming` is passed through, never collected), and
//! upgrades (WebSocket) are spliced into a byte tunnel once both sides agree.

use super::headers::is_upgrade;
use super::ProxyError;
use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// What the gateway answers with: the upstream's streamed body, or one it wrote itself.
pub type GatewayBody = Either<Incoming, Full<Bytes>>;

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

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Forwarder {
    client: Client<Connector, RequestBody>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(config: &UpstreamConfig) -> Result<Forwarder, String> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = crate::server::tls::client_config(
            config.ca_file.as_deref(),
            config.insecure_skip_verify,
        )?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .retry_canceled_requests(true)
            .build(connector);
        let scheme = config
            .url
            .scheme()
            .cloned()
            .unwrap_or(http::uri::Scheme::HTTP);
        let authority = config
            .url
            .authority()
            .cloned()
            .ok_or("upstream URL has no host")?;
        Ok(Forwarder {
            client,
            scheme,
            authority,
            timeout: config.timeout,
        })
    }

    /// Send `request` to the upstream at `path_and_query` and return its response head with the
    /// body still streaming. Headers must already be rewritten by the caller.
    pub async fn forward(
        &self,
        mut request: Request<RequestBody>,
        path_and_query: &str,
    ) -> Result<Response<Incoming>, ProxyError> {
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|error| ProxyError::BadRequest(error.to_string()))?;
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_11;
        request.headers_mut().remove(http::header::HOST);
        let client_upgrade =
            is_upgrade(request.headers()).then(|| hyper::upgrade::on(&mut request));
        let mut response = match tokio::time::timeout(self.timeout, self.client.request(request))
            .await
        {
            Err(_) => return Err(ProxyError::Timeout(self.timeout)),
            Ok(Err(error)) if error.is_connect() => {
                return Err(ProxyError::Connect(crate::error::describe_chain(&error)))
            }
            Ok(Err(error)) if client_body_failed(&error) => {
                return Err(ProxyError::ClientBody(crate::error::describe_chain(&error)))
            }
            Ok(Err(error)) => return Err(ProxyError::Reset(crate::error::describe_chain(&error))),
            Ok(Ok(response)) => response,
        };
        if let Some(client_upgrade) = client_upgrade {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(async move {
                    match (client_upgrade.await, upstream_upgrade.await) {
                        (Ok(client), Ok(upstream)) => {
                            let (mut client, mut upstream) =
                                (TokioIo::new(client), TokioIo::new(upstream));
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                        (Err(error), _) | (_, Err(error)) => {
                            tracing::debug!(%error, "upgrade did not complete")
                        }
                    }
                });
            }
        }
        Ok(response)
    }
}

/// True when hyper gave up because the body we were sending (the client's) failed: hyper marks
/// errors from a request body stream as user errors.
fn client_body_failed(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        source = cause.source();
    }
    false
}
