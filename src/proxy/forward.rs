//! The upstream client: one pooled keep-alive hyper client per configuration generation. Bodies
//! stream both ways untouched (hyper's `Incoming` is passed through, never collected), and
//! upgrades (WebSocket) are spliced into a byte tunnel once both sides agree.

use super::headers::is_upgrade;
use super::ProxyError;
use crate::config::UpstreamConfig;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::Duration;

/// What the gateway answers with: the upstream's streamed body, or one it wrote itself.
pub type GatewayBody = Either<Incoming, Full<Bytes>>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

pub struct Forwarder {
    client: Client<Connector, Incoming>,
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
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(512)
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
        mut request: Request<Incoming>,
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
        let mut response =
            match tokio::time::timeout(self.timeout, self.client.request(request)).await {
                Err(_) => return Err(ProxyError::Timeout(self.timeout)),
                Ok(Err(error)) if error.is_connect() => {
                    return Err(ProxyError::Connect(describe(&error)))
                }
                Ok(Err(error)) => return Err(ProxyError::Reset(describe(&error))),
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

fn describe(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
