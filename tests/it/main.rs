//! Integration tests: one binary, one module per behaviour. Every test starts real servers on
//! 127.0.0.1 port 0 (key sources, upstreams, the gateway itself) and talks HTTP to them.

mod support;

mod bypass;
mod data_path;
mod doctor;
mod drain;
mod faults;
mod feed;
mod follow;
mod forward_auth;
mod fuzz_replay;
mod hostile;
mod inspect;
mod jwks;
mod lifecycle;
mod mcp;
mod one_judge;
mod policy;
mod properties;
mod request_outcomes;
mod revocation;
mod smuggling;
mod startup_settings;
mod tls;
mod workers;
