//! The activity feed's cookie key (`feed.keyFile`, `OM_GATEWAY_FEED_KEY`, ...): read and decoded
//! at load, so a bad key is a configuration error, and several replicas given the same key
//! accept each other's feed cookies. `proxy::feed` uses it; without one it draws a random key
//! per process.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use std::fmt;

pub use crate::proxy::feed::{FeedConfig, FeedKey};
use std::io::Read;
use std::path::Path;

/// An HMAC-SHA256 key shorter than this is refused (RFC 2104: at least the hash's length).
pub const MIN_FEED_KEY_BYTES: usize = 32;
/// A key file larger than this is not a key.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A key given in the environment, before decoding. `Debug` never shows the value.
#[derive(Clone)]
pub enum EnvironmentKey {
    /// `OM_GATEWAY_FEED_KEY` and its value.
    Value {
        variable: &'static str,
        value: String,
    },
    /// `OM_GATEWAY_FEED_KEY_FILE` and the path it names.
    File {
        variable: &'static str,
        path: String,
    },
}

impl EnvironmentKey {
    pub fn variable(&self) -> &'static str {
        match self {
            EnvironmentKey::Value { variable, .. } | EnvironmentKey::File { variable, .. } => {
                variable
            }
        }
    }
}

impl fmt::Debug for EnvironmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvironmentKey::Value { variable, .. } => write!(f, "{variable}=<redacted>"),
            EnvironmentKey::File { variable, path } => write!(f, "{variable}={path}"),
        }
    }
}

/// Decode a key written as hex (as `openssl rand -hex 32` writes it) or base64 (standard or
/// URL-safe, padded or not, as `openssl rand -base64 32` writes it); whitespace, line breaks
/// included, is ignored. Text of only hex digits, of even length, is read as hex. The error
/// never repeats the text.
pub fn decode_feed_key(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(format!(
            "is empty; expected at least {MIN_FEED_KEY_BYTES} bytes in hex or base64 (e.g. `openssl rand -base64 32`)"
        ));
    }
    let decoded = decode_hex(&compact).or_else(|| {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(&compact).ok())
    });
    let Some(bytes) = decoded else {
        return Err(format!(
            "is neither hex nor base64; expected at least {MIN_FEED_KEY_BYTES} random bytes (e.g. `openssl rand -base64 32`)"
        ));
    };
    if bytes.len() < MIN_FEED_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes; at least {MIN_FEED_KEY_BYTES} bytes are needed (e.g. `openssl rand -base64 32`)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// Why a key file could not be read (the message names the file, never the key).
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than 64 KiB: not a key file", .0.display())]
    TooLarge(std::path::PathBuf),
    #[error("{} is not text; write the key in hex or base64 (e.g. `openssl rand -base64 32`)", .0.display())]
    NotText(std::path::PathBuf),
}

/// The text of a key file (at most 64 KiB).
pub fn read_key_file(path: &Path) -> Result<String, KeyFileError> {
    let unreadable = |source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge(path.to_path_buf()));
    }
    String::from_utf8(bytes).map_err(|_| KeyFileError::NotText(path.to_path_buf()))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digits = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(digits, 16).ok()
        })
        .collect()
}
