//! Path normalisation: the single form every rule is matched against and that is forwarded.
//!
//! Percent-encoded unreserved characters are decoded, duplicate slashes folded and dot segments
//! resolved, so `/api/v1/%62ots` and `/api/v1/x/../bots` both become `/api/v1/bots`. Whatever
//! would still be read differently by the gateway and by the server behind it is refused:
//! encoded `/` or `\`, NUL, a raw `\`, `;` path parameters (Jetty strips them before routing)
//! and dot segments that climb above the root.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with `/`")]
    NotAbsolute,
    #[error("path contains an encoded `/` or `\\`")]
    EncodedSeparator,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path contains a `\\`")]
    Backslash,
    #[error("path contains `;` path parameters")]
    PathParameter,
    #[error("path has a malformed percent-encoding")]
    BadEncoding,
    #[error("path climbs above the root with `..`")]
    AboveRoot,
}

/// Normalise a request path (without the query). Borrows when nothing changes, the common case.
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = raw.as_bytes();
    let needs_work = bytes.windows(2).any(|pair| pair == b"//" || pair == b"/.")
        || bytes.iter().any(|b| matches!(b, b'%' | b'\\' | b';' | 0));
    if !needs_work {
        return Ok(Cow::Borrowed(raw));
    }
    let decoded = decode_unreserved(raw)?;
    resolve_segments(&decoded).map(Cow::Owned)
}

/// Decode `%XX` where XX is an unreserved character; keep other escapes (upper-cased hex).
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut position = 0;
    while let Some(&byte) = bytes.get(position) {
        match byte {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::PathParameter),
            b'%' => {
                let high = bytes.get(position + 1).and_then(|b| hex_value(*b));
                let low = bytes.get(position + 2).and_then(|b| hex_value(*b));
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(PathError::BadEncoding);
                };
                let value = high * 16 + low;
                match value {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    b';' => return Err(PathError::PathParameter),
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        out.push(value as char)
                    }
                    _ => {
                        out.push('%');
                        out.push(HEX[(value >> 4) as usize] as char);
                        out.push(HEX[(value & 15) as usize] as char);
                    }
                }
                position += 3;
            }
            _ => {
                // Multi-byte UTF-8 is copied whole; `raw` is a valid str.
                let width = utf8_width(byte);
                out.push_str(
                    raw.get(position..position + width)
                        .ok_or(PathError::BadEncoding)?,
                );
                position += width;
            }
        }
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn utf8_width(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Fold `//`, drop `.`, resolve `..`; a trailing slash is kept, as servers may treat it apart.
fn resolve_segments(path: &str) -> Result<String, PathError> {
    let mut segments: Vec<&str> = Vec::new();
    let trailing_slash =
        path.len() > 1 && (path.ends_with('/') || path.ends_with("/.") || path.ends_with("/.."));
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            other => segments.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Ok(out)
}
