//! `om-gateway run`: serve until SIGTERM/SIGINT; SIGHUP reloads the configuration.

use super::{report_config_error, runtime, ConfigArgs, EXIT_FAILURE, EXIT_INVALID, EXIT_OK};
use crate::config::{Environment, ProcessEnvironment};

pub fn run(args: ConfigArgs) -> i32 {
    let config = match args.load() {
        Ok(config) => config,
        Err(error) => return report_config_error(&error),
    };
    // Dropped when `run` returns, before the process exits: flushes the last log lines.
    let _log_writer = crate::telemetry::init(
        config.startup.log_format,
        ProcessEnvironment.var("OM_GATEWAY_LOG").as_deref(),
    );
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("om-gateway: {error}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async move {
        let server = match crate::server::start(config).await {
            Ok(server) => server,
            Err(error) => {
                eprintln!("om-gateway: {error}");
                return if error.is_configuration() {
                    EXIT_INVALID
                } else {
                    EXIT_FAILURE
                };
            }
        };
        match wait_for_signals(&server).await {
            Ok(()) => {
                tracing::info!("shutting down: draining in-flight requests");
                server.shutdown().await;
                tracing::info!("stopped");
                EXIT_OK
            }
            Err(error) => {
                eprintln!("om-gateway: cannot install signal handlers: {error}");
                EXIT_FAILURE
            }
        }
    })
}

/// Reload on SIGHUP; return on SIGTERM or SIGINT.
#[cfg(unix)]
async fn wait_for_signals(server: &crate::server::RunningServer) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match server.reload(&ProcessEnvironment) {
                Ok(()) => {
                    server.gateway.metrics.config_reloads_total.with_label_values(&["ok"]).inc();
                    server.gateway.metrics.config_last_reload_success.set(1.0);
                    tracing::info!("configuration reloaded");
                }
                Err(error) => {
                    server.gateway.metrics.config_reloads_total.with_label_values(&["error"]).inc();
                    server.gateway.metrics.config_last_reload_success.set(0.0);
                    tracing::error!(%error, "reload failed; keeping the previous configuration");
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signals(_server: &crate::server::RunningServer) -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
