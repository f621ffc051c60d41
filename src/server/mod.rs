//! The running gateway: binding listeners, the per-request service (`gateway`), the
//! forward-auth answer (`forward_auth`), SIGHUP reloads and SIGTERM drains.
//!
//! `start` is what `om-gateway run`, `demo` and the integration tests all call, so the tests
//! exercise exactly the server users run.

pub mod forward_auth;
pub mod gateway;
pub mod listen;

use crate::config::{Config, ConfigError, Environment};
use crate::jwks::{KeyStore, KeyStoreError};
use crate::metrics::Metrics;
use crate::proxy::feed::FeedSessions;
use gateway::{Gateway, Runtime, RuntimeError};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {address}: {error}")]
    Bind {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    KeyFiles(#[from] KeyStoreError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Upstream(#[from] RuntimeError),
    #[error("cannot initialise: {0}")]
    Initialise(String),
}

/// Why a reload kept the running configuration.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    KeyFiles(#[from] KeyStoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl StartError {
    /// Configuration problems exit 2; the rest 1.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            StartError::KeyFiles(_) | StartError::Tls(_) | StartError::Upstream(_)
        )
    }
}

/// A started gateway.
pub struct RunningServer {
    pub proxy_address: SocketAddr,
    pub admin_address: SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: watch::Sender<bool>,
    admin_shutdown: watch::Sender<bool>,
    proxy_task: tokio::task::JoinHandle<()>,
    admin_task: tokio::task::JoinHandle<()>,
    tls_watcher: Option<tokio::task::JoinHandle<()>>,
    follow_task: tokio::task::JoinHandle<()>,
}

/// Applies what `follow` read exactly as a SIGHUP reload applies a file.
pub struct Reloader(pub Arc<Gateway>);

impl crate::follow::Apply for Reloader {
    type Error = ReloadError;

    fn apply(&self, config: Config) -> Result<(), ReloadError> {
        reload_with(&self.0, config)
    }
}

fn build_key_store(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Arc<KeyStore>, KeyStoreError> {
    let key_store = KeyStore::new(
        &config.auth.key_sources,
        &config.auth.key_files,
        config.jwks.clone(),
        metrics.clone(),
    )?;
    key_store.start();
    Ok(key_store)
}

/// Bind both listeners and start serving. Keys load in the background.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let config = Arc::new(config);
    let metrics = Arc::new(
        Metrics::new().map_err(|error| StartError::Initialise(format!("metrics: {error}")))?,
    );
    let key_store = build_key_store(&config, &metrics)?;
    let feed = FeedSessions::from_config(&config.feed)
        .map_err(|_| StartError::Initialise("the system random number generator failed".into()))?;
    let runtime = Runtime::new(
        config.clone(),
        key_store,
        metrics.clone(),
        Arc::new(feed),
        config.startup.workers,
    )?;
    let gateway = Gateway::new(runtime, metrics, config.startup.workers);
    let tls = match &config.startup.tls {
        Some(files) => Some(crate::tls::ReloadingTls::load(
            &files.cert_file,
            &files.key_file,
        )?),
        None => None,
    };
    let bind = |address: SocketAddr| async move {
        TcpListener::bind(address)
            .await
            .map_err(|error| StartError::Bind { address, error })
    };
    let proxy_listener = bind(config.startup.listen).await?;
    let admin_listener = bind(config.startup.admin_listen).await?;
    let proxy_address = proxy_listener
        .local_addr()
        .map_err(|error| StartError::Bind {
            address: config.startup.listen,
            error,
        })?;
    let admin_address = admin_listener
        .local_addr()
        .map_err(|error| StartError::Bind {
            address: config.startup.admin_listen,
            error,
        })?;
    let (shutdown, shutdown_receiver) = watch::channel(false);
    // The admin listener outlives the proxy's drain, so that /readyz can say 503 meanwhile.
    let (admin_shutdown, admin_shutdown_receiver) = watch::channel(false);
    let settings = listen::ConnectionSettings {
        max_header_bytes: config.startup.max_header_bytes,
        header_read_timeout: config.startup.header_read_timeout,
        shutdown_grace_period: config.startup.shutdown_grace_period,
        max_connections: config.startup.max_connections,
    };
    let tls_watcher = match (&tls, &config.startup.tls) {
        (Some(tls), Some(files)) => Some(tls.watch(files.reload_interval)),
        _ => None,
    };
    let proxy_listener = proxy_listener
        .into_std()
        .map_err(|error| StartError::Initialise(format!("proxy listener: {error}")))?;
    let shared = listen::ProxyShared {
        tls,
        gateway: gateway.clone(),
        slots: Arc::new(tokio::sync::Semaphore::new(settings.max_connections)),
        settings,
        shutdown: shutdown_receiver,
    };
    let proxy_task = listen::spawn_proxy_workers(proxy_listener, gateway.workers, shared)
        .map_err(|error| StartError::Initialise(format!("proxy workers: {error}")))?;
    let admin_task = tokio::spawn(listen::serve_admin(
        admin_listener,
        gateway.clone(),
        admin_shutdown_receiver,
    ));
    // In the background: start-up never waits for the server's settings.
    let follow_task = tokio::spawn(gateway.follower().clone().run(Reloader(gateway.clone())));
    tracing::info!(proxy = %proxy_address, admin = %admin_address, upstream = %config.upstream.url, workers = config.startup.workers, "om-gateway serving");
    Ok(RunningServer {
        proxy_address,
        admin_address,
        gateway,
        shutdown,
        admin_shutdown,
        proxy_task,
        admin_task,
        tls_watcher,
        follow_task,
    })
}

impl RunningServer {
    /// Drain: /readyz turns 503, the listener closes, in-flight requests finish (up to the grace
    /// period), then this returns.
    pub async fn shutdown(self) {
        self.gateway.start_draining();
        let _ = self.shutdown.send(true);
        // The proxy loop returns once its connections are done or the grace period is over;
        // the extra minute only guards against a bug there.
        let limit = self.gateway.runtime().config.startup.shutdown_grace_period
            + std::time::Duration::from_secs(60);
        let _ = tokio::time::timeout(limit, self.proxy_task).await;
        let _ = self.admin_shutdown.send(true);
        let _ = self.admin_task.await;
        if let Some(watcher) = self.tls_watcher {
            watcher.abort();
        }
        self.follow_task.abort();
    }

    /// Load the configuration again and swap it in atomically; on any error keep the old one.
    /// The server's published settings last read are layered onto the new file, as always.
    pub fn reload(&self, environment: &dyn Environment) -> Result<(), ReloadError> {
        let current = self.gateway.runtime();
        let config = crate::config::load_files(
            current.config.source_file.as_deref(),
            current.config.openmetadata_file.as_deref(),
            environment,
        )?;
        self.gateway
            .follower()
            .rebase(config, &Reloader(self.gateway.clone()))
    }
}

/// Swap in `config`, keeping the key store when its sources did not change. Startup settings
/// (listeners, TLS files, workers, limits) keep their running values; each one the new file
/// changes is named in a warning.
pub fn reload_with(gateway: &Arc<Gateway>, mut config: Config) -> Result<(), ReloadError> {
    let current = gateway.runtime();
    let same_keys = current.config.auth.key_sources == config.auth.key_sources
        && current.config.auth.key_files == config.auth.key_files
        && current.config.jwks.refresh_interval == config.jwks.refresh_interval
        && current.config.jwks.min_refresh_interval == config.jwks.min_refresh_interval
        && current.config.jwks.fetch_timeout == config.jwks.fetch_timeout
        && current.config.jwks.max_stale == config.jwks.max_stale;
    for key in current.config.startup.changed(&config.startup) {
        tracing::warn!(
            key,
            "changed in the file; it takes effect at the next restart"
        );
    }
    if config.feed != current.config.feed {
        tracing::warn!("the feed cookie keys changed; they take effect at the next restart");
    }
    config.startup = current.config.startup.clone();
    let key_store = if same_keys {
        current.key_store().clone()
    } else {
        build_key_store(&config, &gateway.metrics)?
    };
    let runtime = Runtime::new(
        Arc::new(config),
        key_store.clone(),
        gateway.metrics.clone(),
        gateway.feed_sessions().clone(),
        gateway.workers,
    )?;
    if !same_keys {
        // The drain view (`/keys`: each key's use, retired kids) goes on in the new store.
        key_store.adopt_usage(current.key_store());
    }
    gateway.replace_runtime(runtime);
    Ok(())
}
