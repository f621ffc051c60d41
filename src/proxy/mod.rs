//! Forwarding: the pooled upstream client (`forward`), header rewriting (`headers`), the
//! WebSocket handshake check (`websocket`), the forward-auth endpoint for ingress controllers
//! (`forward_auth`, with `original_url` parsing what ingresses name), and the activity feed's
//! cookie binding (`feed`).
//!
//! Owns everything that touches the upstream connection. Leaves the allow/deny decision to
//! `verify` and `policy`, and error bodies to `error`.

pub mod feed;
pub mod forward;
pub mod forward_auth;
pub mod headers;
pub mod original_url;
pub mod websocket;

#[cfg(test)]
mod tests;

pub use forward::{Forwarder, GatewayBody, RequestBody, UpstreamBody};

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
