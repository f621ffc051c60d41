//! The admin listener: health, readiness, metrics and the trusted keys. Separate from the proxy
//! listener so that probes and scrapes never compete with, or are exposed like, proxied traffic.

pub mod routes;
