//! Logging setup: JSON (default) or text lines on stdout, filtered by `OM_GATEWAY_LOG`
//! (a tracing filter such as `info,om_gateway=debug`).
//!
//! Lines are formatted on the thread that logs and written to stdout by a dedicated thread
//! (`tracing-appender`'s non-blocking writer), so a request never waits for a `write` to a pipe
//! or terminal. The writer is not lossy: if stdout stalls and 65,536 lines are queued, loggers
//! wait rather than drop access-log lines. JSON access lines reach that writer in batches
//! (`access_log`).

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines queued for the writer thread before loggers wait.
const QUEUED_LINES: usize = 65_536;

/// Install the global subscriber once; later calls (tests, reloads) are ignored. Keep the guard
/// until the process ends: dropping it flushes the queued lines.
pub fn init(format: LogFormat, filter: Option<&str>) -> LogGuard {
    let filter =
        EnvFilter::try_new(filter.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("om-gateway-log")
        .finish(std::io::stdout());
    if format == LogFormat::Json {
        crate::access_log::install(writer.clone());
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    LogGuard { _writer: guard }
}

/// Flushes the access log's batches, then (dropping the writer's guard) every queued line.
pub struct LogGuard {
    _writer: WorkerGuard,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        crate::access_log::flush();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}
