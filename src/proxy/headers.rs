//! Header rewriting on the way upstream and back: hop-by-hop headers (RFC 9110 §7.6.1), the
//! identity headers (always stripped from clients, set only from a verified principal),
//! `X-Forwarded-*`, and the request id.

use crate::verify::Principal;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

pub static X_AUTH_REQUEST_USER: HeaderName = HeaderName::from_static("x-auth-request-user");
pub static X_AUTH_REQUEST_EMAIL: HeaderName = HeaderName::from_static("x-auth-request-email");
pub static X_AUTH_REQUEST_ROLES: HeaderName = HeaderName::from_static("x-auth-request-roles");
pub static X_AUTH_REQUEST_IS_BOT: HeaderName = HeaderName::from_static("x-auth-request-is-bot");
pub static X_AUTH_REQUEST_TOKEN_TYPE: HeaderName =
    HeaderName::from_static("x-auth-request-token-type");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_IMPERSONATE_USER: HeaderName = HeaderName::from_static("x-impersonate-user");

/// Headers only the gateway may set. Any copy a client sends is removed on every path.
pub static IDENTITY_HEADERS: [&HeaderName; 5] = [
    &X_AUTH_REQUEST_USER,
    &X_AUTH_REQUEST_EMAIL,
    &X_AUTH_REQUEST_ROLES,
    &X_AUTH_REQUEST_IS_BOT,
    &X_AUTH_REQUEST_TOKEN_TYPE,
];

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies also drop.
static HOP_BY_HOP: [&HeaderName; 8] = [
    &http::header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &http::header::PROXY_AUTHENTICATE,
    &http::header::PROXY_AUTHORIZATION,
    &http::header::TE,
    &http::header::TRAILER,
    &http::header::TRANSFER_ENCODING,
];
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// OpenMetadata's `CatalogOpenIdAuthorizationRequestFilter` takes this header as the caller's
/// identity when an operator enables it; only a trusted proxy may set it, and we never do.
pub static X_AUTH_PARAMS_EMAIL: HeaderName = HeaderName::from_static("x-auth-params-email");

/// What `strip_identity_headers` removes: the identity headers and `X-Auth-Params-Email`.
static STRIPPED_IDENTITY: [&HeaderName; 6] = [
    &X_AUTH_REQUEST_USER,
    &X_AUTH_REQUEST_EMAIL,
    &X_AUTH_REQUEST_ROLES,
    &X_AUTH_REQUEST_IS_BOT,
    &X_AUTH_REQUEST_TOKEN_TYPE,
    &X_AUTH_PARAMS_EMAIL,
];

/// Remove every client copy (all values) of the identity headers and `X-Auth-Params-Email`.
pub fn strip_identity_headers(headers: &mut HeaderMap) {
    // All six share this prefix; the names of a request are far fewer than six hashed lookups.
    let present = present_names(headers, &STRIPPED_IDENTITY, |name| {
        name.as_str().starts_with("x-auth-")
    });
    for (name, present) in STRIPPED_IDENTITY.iter().zip(present) {
        if present {
            headers.remove(*name);
        }
    }
}

/// Remove hop-by-hop headers and those the `Connection` header names. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`, which must reach the next hop for it to work.
pub fn strip_hop_by_hop_headers(headers: &mut HeaderMap, keep_upgrade: bool) {
    let present = present_names(headers, &HOP_BY_HOP, |_| true);
    let connection = HOP_BY_HOP
        .iter()
        .zip(present)
        .any(|(name, present)| present && **name == http::header::CONNECTION);
    if connection {
        remove_connection_listed(headers, keep_upgrade);
    }
    for (name, present) in HOP_BY_HOP.iter().zip(present) {
        if present {
            headers.remove(*name);
        }
    }
    if keep_upgrade {
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    } else {
        headers.remove(http::header::UPGRADE);
    }
}

/// Which of `names` the map holds, found in one pass over the map's distinct names (plain
/// comparisons; `wanted` skips the names that cannot match) rather than a hashed lookup per
/// candidate, most of which find nothing.
fn present_names<const N: usize>(
    headers: &HeaderMap,
    names: &[&HeaderName; N],
    wanted: impl Fn(&HeaderName) -> bool,
) -> [bool; N] {
    let mut present = [false; N];
    for name in headers.keys().filter(|name| wanted(name)) {
        for (flag, candidate) in present.iter_mut().zip(names) {
            *flag |= name == *candidate;
        }
    }
    present
}

/// Remove the headers every `Connection` value names (but `Upgrade` when it is kept).
fn remove_connection_listed(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Owned copies (reference-counted, no allocation for the usual single value), so the map
    // can be changed while the names are read. `remove` takes each name as `&str` and parses
    // it without allocating; a name that is not a valid header name removes nothing.
    let mut values = headers.get_all(http::header::CONNECTION).iter();
    let first = values.next().cloned();
    let rest: Vec<HeaderValue> = values.cloned().collect();
    for value in first.iter().chain(&rest) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for name in value.split(',').map(str::trim) {
            if !(keep_upgrade && name.eq_ignore_ascii_case("upgrade")) {
                headers.remove(name);
            }
        }
    }
}

/// Set all five identity headers from a verified principal (empty when the token lacks the
/// claim), so that no client-sent copy survives even behind an ingress that merges headers.
pub fn set_identity_headers(headers: &mut HeaderMap, principal: &Principal) {
    // Room for all five at once: growing while inserting can cost two reallocations.
    // `try_reserve`, not `reserve`: no panic path (hyper caps a request far below the limit).
    let _ = headers.try_reserve(5);
    let mut set = |name: &HeaderName, value: Option<HeaderValue>| {
        if let Some(value) = value {
            headers.insert(name, value);
        }
    };
    set(&X_AUTH_REQUEST_USER, copied_value(&principal.name));
    set(
        &X_AUTH_REQUEST_EMAIL,
        copied_value(principal.email.as_deref().unwrap_or("")),
    );
    set(&X_AUTH_REQUEST_ROLES, roles_value(&principal.roles));
    set(
        &X_AUTH_REQUEST_IS_BOT,
        Some(HeaderValue::from_static(if principal.is_bot {
            "true"
        } else {
            "false"
        })),
    );
    set(
        &X_AUTH_REQUEST_TOKEN_TYPE,
        copied_value(principal.token_type.as_deref().unwrap_or("")),
    );
}

/// All five identity headers, empty: the answer of forward-auth for an anonymous caller, so an
/// ingress that copies only the headers present still overwrites a client's own copies.
pub fn set_anonymous_identity_headers(headers: &mut HeaderMap) {
    for name in [
        &X_AUTH_REQUEST_USER,
        &X_AUTH_REQUEST_EMAIL,
        &X_AUTH_REQUEST_ROLES,
        &X_AUTH_REQUEST_IS_BOT,
        &X_AUTH_REQUEST_TOKEN_TYPE,
    ] {
        headers.insert(name, HeaderValue::from_static(""));
    }
}

/// `value` as a header value, `None` if it holds bytes a header value cannot (control characters).
fn copied_value(value: &str) -> Option<HeaderValue> {
    if value.is_empty() {
        return Some(HeaderValue::from_static(""));
    }
    HeaderValue::from_bytes(value.as_bytes()).ok()
}

/// The roles joined with `,` into one buffer that becomes the header value without a copy.
fn roles_value(roles: &[String]) -> Option<HeaderValue> {
    let length = roles.iter().map(String::len).sum::<usize>() + roles.len().saturating_sub(1);
    let mut joined = Vec::with_capacity(length);
    for (index, role) in roles.iter().enumerate() {
        if index > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(role.as_bytes());
    }
    if joined.is_empty() {
        return Some(HeaderValue::from_static(""));
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from(joined)).ok()
}

/// Append the client to `X-Forwarded-For` and set `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    client: IpAddr,
    tls: bool,
    host: Option<&str>,
) {
    // "<existing>, <client>" (existing as sent, if it is text and not blank), else "<client>",
    // written into one buffer that becomes the header value without a copy.
    let existing = headers
        .get(&X_FORWARDED_FOR)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.trim().is_empty());
    let mut appended = Vec::with_capacity(existing.map_or(0, |value| value.len() + 2) + 45);
    if let Some(existing) = existing {
        appended.extend_from_slice(existing.as_bytes());
        appended.extend_from_slice(b", ");
    }
    write_ip(&mut appended, client);
    if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(appended)) {
        headers.insert(&X_FORWARDED_FOR, value);
    }
    headers.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Some(host) = host.and_then(|host| host_value(headers, host)) {
        headers.insert(&X_FORWARDED_HOST, host);
    }
}

/// `host` as a header value: the request's own `Host` value (shared, not copied) when it says
/// the same, which is the usual case, else a copy.
fn host_value(headers: &HeaderMap, host: &str) -> Option<HeaderValue> {
    match headers.get(http::header::HOST) {
        Some(value) if value.as_bytes() == host.as_bytes() => {
            let mut value = value.clone();
            value.set_sensitive(false);
            Some(value)
        }
        _ => HeaderValue::from_str(host).ok(),
    }
}

/// The address as `Display` writes it; IPv4 (the usual client) by hand, without the formatter.
fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            for (index, octet) in ip.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(ip) => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{ip}");
        }
    }
}

/// Request ids: a client's sane one is kept, otherwise `<process prefix>-<counter>`.
pub struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        let mut seed = [0u8; 4];
        // A failing system RNG only makes ids less unique across restarts.
        let _ = aws_lc_rs::rand::fill(&mut seed);
        RequestIds {
            prefix: seed.iter().map(|b| format!("{b:02x}")).collect(),
            counter: AtomicU64::new(1),
        }
    }

    /// The client's `X-Request-Id` when it is 1–128 characters of `[A-Za-z0-9._:-]`, else a new one.
    pub fn take_or_generate(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(value) = headers.get(&X_REQUEST_ID) {
            let bytes = value.as_bytes();
            if (1..=128).contains(&bytes.len())
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
            {
                return value.clone();
            }
        }
        let number = self.counter.fetch_add(1, Ordering::Relaxed);
        // `<prefix>-<hex counter>` built by hand: this runs on every request.
        let mut id = Vec::with_capacity(self.prefix.len() + 17);
        id.extend_from_slice(self.prefix.as_bytes());
        id.push(b'-');
        let digits = (64 - number.leading_zeros()).div_ceil(4).max(1);
        for shift in (0..digits).rev() {
            let digit = char::from_digit(((number >> (shift * 4)) & 0xf) as u32, 16);
            id.push(digit.map_or(b'0', |d| d as u8));
        }
        HeaderValue::from_maybe_shared(bytes::Bytes::from(id))
            .unwrap_or(HeaderValue::from_static("unknown"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

/// True when the request asks to switch protocols (WebSocket and friends).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            })
}
