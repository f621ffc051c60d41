//! Path normalisation: the forms every rule is matched against, and the one that is forwarded.
//!
//! Percent-encoded unreserved characters are decoded, duplicate slashes folded and dot segments
//! resolved, so `/api/v1/%62ots` and `/api/v1/x/../bots` both become `/api/v1/bots`.
//!
//! OpenMetadata entity names may hold `/`, `;` and `\`; its Python SDK quotes every name with
//! `safe=""` (`ingestion/src/metadata/ingestion/ometa/utils.py: quote`) and the server configures
//! Jetty to accept the encoded forms (`OpenMetadataApplication`: `configureUriCompliance`). So
//! `%2F`, `%5C` and `%3B` are kept, escaped, in the forwarded path. A server behind the gateway
//! may read such an escape as data (Jetty with OpenMetadata's settings), as a separator (a proxy
//! or servlet container that decodes first), or, for `;`, as the start of path parameters that it
//! strips. [`PathReadings`] holds every such reading; the decision module requires every one of
//! them to be allowed, so no escape can move a request out from under a rule.
//!
//! Refused (400): a raw `;` (Jetty strips path parameters before routing, so the gateway and the
//! server would read different paths), a raw `\`, NUL (raw or encoded), malformed escapes, and dot
//! segments that climb above the root.

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with `/`")]
    NotAbsolute,
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
    #[error("path is the activity feed in one reading of its escapes and not in another")]
    FeedAmbiguous,
}

/// Every way a server behind the gateway may read one request path, normalised. The first is
/// the reading with escapes kept as data: the form that is forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReadings<'a> {
    forwarded: Cow<'a, str>,
    /// Further distinct readings; empty unless the path holds `%2F`, `%5C` or `%3B`.
    others: Vec<String>,
}

impl<'a> PathReadings<'a> {
    /// The path forwarded upstream, and the reading reported in logs and messages.
    pub fn forwarded(&self) -> &str {
        &self.forwarded
    }

    /// Every reading, the forwarded one first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.forwarded.as_ref()).chain(self.others.iter().map(String::as_str))
    }

    pub fn into_forwarded(self) -> Cow<'a, str> {
        self.forwarded
    }
}

/// All readings of a request path (without the query).
pub fn path_readings(raw: &str) -> Result<PathReadings<'_>, PathError> {
    let forwarded = normalize_path(raw)?;
    let mut others = Vec::new();
    let escapes = |text: &str, escape: &str| {
        text.as_bytes()
            .windows(3)
            .any(|window| window.eq_ignore_ascii_case(escape.as_bytes()))
    };
    let separators = escapes(&forwarded, "%2F") || escapes(&forwarded, "%5C");
    let parameters = escapes(&forwarded, "%3B");
    if separators || parameters {
        let mut add = |reading: String| {
            if reading != forwarded.as_ref() && !others.contains(&reading) {
                others.push(reading);
            }
        };
        let as_separators = || {
            let decoded = replace_escape(&replace_escape(&forwarded, "%2F", "/"), "%5C", "/");
            resolve_segments(&decoded)
        };
        if separators {
            add(as_separators()?);
        }
        if parameters {
            add(strip_parameters(&forwarded)?);
            add(strip_parameters(&as_separators()?)?);
        }
    }
    Ok(PathReadings { forwarded, others })
}

/// The reading with escapes kept as data. Borrows when nothing changes, the common case. Route
/// rule paths are checked against it at load.
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

/// `text` with every (upper-cased, as `decode_unreserved` writes them) `escape` replaced.
fn replace_escape(text: &str, escape: &str, with: &str) -> String {
    text.replace(escape, with)
}

/// The reading of a server that decodes `%3B` and strips path parameters: each segment cut at
/// its first `;`.
fn strip_parameters(path: &str) -> Result<String, PathError> {
    let decoded = replace_escape(path, "%3B", ";");
    let stripped: Vec<&str> = decoded
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(segment))
        .collect();
    resolve_segments(&stripped.join("/"))
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
