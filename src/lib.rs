//! om-gateway: an authenticating reverse proxy for the OpenMetadata API.
//!
//! The binary (`main.rs`) only parses the command line and maps results to exit codes; everything
//! else lives here so that integration tests and benchmarks drive the same code the binary runs.
//! ARCHITECTURE.md walks through one request and names the file that owns each concern.

pub mod access_log;
pub mod admin;
pub mod causes;
pub mod cli;
pub mod config;
pub mod contract;
pub mod error;
pub mod follow;
pub mod judge;
pub mod jwks;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod revocation;
pub mod server;
pub mod telemetry;
pub mod tls;
pub mod verify;

/// The crate version, as reported by `om_gateway_build_info` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
