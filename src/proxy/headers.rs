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
const HOP_BY_HOP: [HeaderName; 8] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
];

/// OpenMetadata's `CatalogOpenIdAuthorizationRequestFilter` takes this header as the caller's
/// identity when an operator enables it; only a trusted proxy may set it, and we never do.
pub static X_AUTH_PARAMS_EMAIL: HeaderName = HeaderName::from_static("x-auth-params-email");

pub fn strip_identity_headers(headers: &mut HeaderMap) {
    for name in IDENTITY_HEADERS {
        headers.remove(name);
    }
    headers.remove(&X_AUTH_PARAMS_EMAIL);
}

/// Remove hop-by-hop headers and those the `Connection` header names. An upgrade keeps
/// `Connection: upgrade` and `Upgrade`, which must reach the next hop for it to work.
pub fn strip_hop_by_hop_headers(headers: &mut HeaderMap, keep_upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(keep_upgrade && name == http::header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
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

/// Set all five identity headers from a verified principal (empty when the token lacks the
/// claim), so that no client-sent copy survives even behind an ingress that merges headers.
pub fn set_identity_headers(headers: &mut HeaderMap, principal: &Principal) {
    let mut set = |name: &HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
            headers.insert(name.clone(), value);
        }
    };
    set(&X_AUTH_REQUEST_USER, &principal.name);
    set(
        &X_AUTH_REQUEST_EMAIL,
        principal.email.as_deref().unwrap_or(""),
    );
    set(&X_AUTH_REQUEST_ROLES, &principal.roles.join(","));
    set(
        &X_AUTH_REQUEST_IS_BOT,
        if principal.is_bot { "true" } else { "false" },
    );
    set(
        &X_AUTH_REQUEST_TOKEN_TYPE,
        principal.token_type.as_deref().unwrap_or(""),
    );
}

/// Append the client to `X-Forwarded-For` and set `X-Forwarded-Proto` and `X-Forwarded-Host`.
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    client: IpAddr,
    tls: bool,
    host: Option<&str>,
) {
    let appended = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&appended) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(X_FORWARDED_HOST.clone(), host);
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
