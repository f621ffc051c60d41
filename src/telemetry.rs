//! Logging setup: JSON (default) or text lines on stdout, filtered by `OM_GATEWAY_LOG`
//! (a tracing filter such as `info,om_gateway=debug`).

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Install the global subscriber once; later calls (tests, reloads) are ignored.
pub fn init(format: LogFormat, filter: Option<&str>) {
    let filter =
        EnvFilter::try_new(filter.unwrap_or("info")).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
}
