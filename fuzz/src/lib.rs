//! Fuzz targets for om-gateway's parsers of hostile input. `targets.rs` is also compiled into the
//! integration tests, which replay `fuzz/seeds` and `fuzz/regressions` on every `cargo test`.

#[path = "targets.rs"]
pub mod targets;
