//! Accept loops: the proxy listener (HTTP/1.1 and HTTP/2, h2 via ALPN on TLS, h2c by prior
//! knowledge) and the admin listener. Each connection is watched for graceful shutdown: on
//! drain the loop stops accepting and open connections finish their requests.

use super::gateway::Gateway;
use super::tls::ReloadingTls;
use crate::admin;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Limits applied to every client connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace_period: Duration,
}

fn connection_builder(settings: &ConnectionSettings) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(settings.max_header_bytes as u32)
        .max_concurrent_streams(256);
    builder
}

/// Serve the proxy until `shutdown` flips, then drain for at most the grace period.
pub async fn serve_proxy(
    listener: TcpListener,
    tls: Option<Arc<ReloadingTls>>,
    gateway: Arc<Gateway>,
    settings: ConnectionSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = Arc::new(connection_builder(&settings));
    let graceful = GracefulShutdown::new();
    loop {
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
        let gateway = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            let is_tls = tls.is_some();
            let service = service_fn(move |request| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request, peer, is_tls).await) }
            });
            let result =
                match tls {
                    None => {
                        watcher
                            .watch(
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned(),
                            )
                            .await
                    }
                    Some(tls) => {
                        let acceptor = tls.acceptor();
                        let stream =
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    return tracing::debug!(%error, %peer, "TLS handshake failed")
                                }
                                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                            };
                        watcher
                            .watch(
                                builder
                                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                    .into_owned(),
                            )
                            .await
                    }
                };
            if let Err(error) = result {
                tracing::debug!(error = %error, %peer, "connection ended with an error");
            }
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
                async move { Ok::<_, Infallible>(admin::routes::handle(&gateway, request).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
