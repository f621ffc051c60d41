//! Signing keys: where they come from (`source`), how they are fetched (`fetch`), how documents
//! become keys (`parse`), the `KeyStore` that merges them by kid and keeps them fresh, and which
//! keys still verify tokens for whom (`usage`: the drain view after a rotation).
//!
//! Leaves token handling to `verify`: the store only answers "which keys might have signed a
//! token with this kid" and "go and look again".

pub mod fetch;
pub mod parse;
pub mod store;
pub mod usage;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod usage_tests;

pub use parse::{KeyFamily, ParsedKey};
pub use store::{KeyStore, SourceStatus, VerifyingKey};
