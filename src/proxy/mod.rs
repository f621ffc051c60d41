//! Forwarding: the pooled upstream client (`forward`), header rewriting (`headers`), the
//! WebSocket handshake check (`websocket`), what ingresses name in `X-Original-URL`
//! (`original_url`), and the activity feed's cookie (`feed`: its format and check, which the
//! decision module calls).
//!
//! Owns everything that touches the upstream connection. Leaves the allow/deny decision to
//! `judge`, and error bodies to `error`.

pub mod feed;
pub mod forward;
pub mod headers;
pub mod original_url;
pub mod websocket;

#[cfg(test)]
mod tests;

pub use forward::{Forwarder, ForwarderError, GatewayBody, RequestBody, UpstreamBody};

use std::path::PathBuf;
use std::time::Duration;

/// Why the upstream could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream connection failed: {0}")]
    Reset(String),
    #[error("cannot build the upstream request: {0}")]
    BadRequest(String),
    /// The client's own body broke while it streamed upstream (bad chunk framing, a reset):
    /// the client's fault, so a 400, not a 502 that would page someone about the upstream.
    #[error("the request body could not be read: {0}")]
    ClientBody(String),
    /// The upstream answered 101 to a request that was not a checked WebSocket handshake, or
    /// without naming `websocket` and the matching `Sec-WebSocket-Accept`: never a tunnel.
    #[error("the upstream switched protocols without completing a WebSocket handshake")]
    BadUpgrade,
}

impl ProxyError {
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::Connect(_) => "upstream_unreachable",
            ProxyError::Timeout(_) => "upstream_timeout",
            ProxyError::Reset(_) => "upstream_reset",
            ProxyError::BadRequest(_) => "upstream_bad_request",
            ProxyError::ClientBody(_) => "client_body",
            ProxyError::BadUpgrade => "upstream_bad_upgrade",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `scheme://authority`, no trailing slash; request paths are appended verbatim.
    pub url: http::Uri,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    /// Idle pooled upstream connections are closed after this long.
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}
