//! Test support: real servers on 127.0.0.1:0 and token minting.
//!
//! - `JwksServer::start(body)`: a controllable key endpoint (status, delay, body, headers,
//!   connection drop, hit counter).
//! - `Upstream::start()`: an OpenMetadata stand-in that records what it received.
//! - `TestGateway::start(yaml)`: the real gateway (`om_gateway::server::start`) on ephemeral ports.
//! - `keys` and `tokens`: fixture keys, JWK sets in standard and OpenMetadata form, tokens.
//! - `prometheus`: the text exposition format parsed, for exact metric assertions.

#![allow(dead_code, unused_imports)]

pub mod gateway;
pub mod keys;
pub mod nginx;
pub mod openmetadata;
pub mod prometheus;
pub mod raw;
pub mod servers;
pub mod sockets;

pub use gateway::TestGateway;
pub use keys::{TestKey, Tokens};
pub use servers::{JwksServer, Recorded, Upstream};

/// A client that never pools across tests and never follows redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client builds")
}
