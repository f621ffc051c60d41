//! Signing keys: where they come from (`source`), how they are fetched (`fetch`), how documents
//! become keys (`parse`), and the `KeyStore` that merges them by kid and keeps them fresh.
//!
//! Leaves token handling to `verify`: the store only answers "which keys might have signed a
//! token with this kid" and "go and look again".

pub mod fetch;
pub mod parse;
pub mod store;

#[cfg(test)]
mod tests;

pub use parse::{KeyFamily, ParsedKey};
pub use store::{KeyStore, SourceStatus, VerifyingKey};
