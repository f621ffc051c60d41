//! The admin listener: health, readiness, metrics and the trusted keys. Separate from the proxy
//! listener so that probes and scrapes never compete with, or are exposed like, proxied traffic.

pub mod routes;

use crate::jwks::KeyStore;
use crate::metrics::Metrics;
use std::sync::Arc;

/// What the admin endpoints read from the running gateway; `server` implements it, so this
/// module never depends on the server.
pub trait AdminState: Send + Sync {
    /// The key store of the current configuration generation.
    fn key_store(&self) -> Arc<KeyStore>;
    fn metrics(&self) -> &Metrics;
    /// True once SIGTERM started the drain: `/readyz` answers 503.
    fn is_draining(&self) -> bool;
    /// Following OpenMetadata's published settings: the state `/readyz` shows (informational;
    /// it never makes the gateway unready).
    fn server_config(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
