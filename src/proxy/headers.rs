//! Header rewriting on the way upstream and back: hop-by-hop headers (RFC 9110 §7.6.1), the
//! identity headers (always stripped from clients, set only from a verified principal), their
//! underscore lookalikes, `X-Forwarded-*`, the `Host` check (RFC 9112 §3.2), and the request id.

use super::original_url::{check_authority, AuthorityError};
use crate::verify::Principal;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Version};
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

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the legacy ones proxies also drop, and
/// `HTTP2-Settings`, which only means something beside an `Upgrade: h2c` (RFC 7540 §3.2.1).
static HOP_BY_HOP: [&HeaderName; 9] = [
    &http::header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &http::header::PROXY_AUTHENTICATE,
    &http::header::PROXY_AUTHORIZATION,
    &http::header::TE,
    &http::header::TRAILER,
    &http::header::TRANSFER_ENCODING,
    &HTTP2_SETTINGS,
];
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
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

/// Remove hop-by-hop headers and those the `Connection` header names, except the end-to-end
/// headers the upstream needs or the gateway sets (`Authorization`, `Host`, `Content-Length`,
/// `X-Request-Id`, the identity and forwarding headers): such a `Connection` token is ignored,
/// so that a client cannot make the gateway drop the `Authorization` the server reads, or the
/// id it sends. An upgrade the gateway tunnels (a checked WebSocket handshake) keeps
/// `Connection: upgrade` and `Upgrade`, which must reach the next hop for it to work; any other
/// request loses `Upgrade` (and `HTTP2-Settings`) and is served as a plain request.
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
            let kept_upgrade = keep_upgrade && name.eq_ignore_ascii_case("upgrade");
            if !kept_upgrade && !is_end_to_end(name) {
                headers.remove(name);
            }
        }
    }
}

/// End-to-end headers a `Connection` token may not remove (any case).
fn is_end_to_end(name: &str) -> bool {
    const KEPT: [&str; 7] = [
        "authorization",
        "host",
        "content-length",
        "x-request-id",
        "x-auth-params-email",
        "x-real-ip",
        "forwarded",
    ];
    let starts_with = |prefix: &str| {
        name.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    KEPT.iter().any(|kept| kept.eq_ignore_ascii_case(name))
        || starts_with("x-auth-request-")
        || starts_with("x-forwarded-")
}

/// Remove what a client may not send on the proxy path: the identity headers (`strip_identity_headers`)
/// and their underscore lookalikes (`strip_lookalike_headers`).
pub fn strip_client_headers(headers: &mut HeaderMap) {
    strip_identity_headers(headers);
    strip_lookalike_headers(headers);
}

/// Remove every header whose name, with `_` read as `-`, is one the gateway owns
/// (`X-Auth-Request-*`, `X-Auth-Params-Email`, `X-Impersonate-User`, `X-Forwarded-*`,
/// `X-Real-IP`, `X-Request-Id`) or a hop-by-hop or framing header (`Transfer-Encoding`,
/// `Content-Length`, `Proxy-Authorization`, ...). CGI and WSGI servers turn both spellings into
/// the same variable (`HTTP_X_AUTH_REQUEST_USER`), and so does nginx with
/// `underscores_in_headers on`: a server behind the gateway would read a client's
/// `X_Auth_Request_User` as the gateway's `X-Auth-Request-User`. Other names with `_` pass.
pub fn strip_lookalike_headers(headers: &mut HeaderMap) {
    // Names are lower case; one pass finds none in the usual request.
    if !headers
        .keys()
        .any(|name| name.as_str().as_bytes().contains(&b'_'))
    {
        return;
    }
    let lookalikes: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_lookalike(name.as_str()))
        .cloned()
        .collect();
    for name in &lookalikes {
        headers.remove(name);
    }
}

fn is_lookalike(name: &str) -> bool {
    const OWNED_OR_FRAMING: [&str; 13] = [
        "x-auth-params-email",
        "x-impersonate-user",
        "x-real-ip",
        "x-request-id",
        "transfer-encoding",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "http2-settings",
        "sec-websocket-key",
        "sec-websocket-version",
    ];
    if !name.contains('_') {
        return false;
    }
    let dashed = name.replace('_', "-");
    dashed.starts_with("x-auth-request-")
        || dashed.starts_with("x-forwarded-")
        || OWNED_OR_FRAMING.contains(&dashed.as_str())
}

/// `X-Impersonate-User` reaches the upstream only beside a verified bot token: a non-bot on a
/// protected path has already been refused (403), and on a public path nobody was verified.
pub fn strip_impersonation_unless_bot(headers: &mut HeaderMap, principal: Option<&Principal>) {
    if !principal.is_some_and(|principal| principal.is_bot) {
        headers.remove(&X_IMPERSONATE_USER);
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

/// Append the client to `X-Forwarded-For` and set `X-Forwarded-Proto` and `X-Forwarded-Host`
/// (from `host`, the validated `Host`: see `check_host`). A client's `Forwarded`, `X-Real-IP`
/// and every other `X-Forwarded-*` (`-Port`, `-Prefix`, `-Server`, a `-Host` when there is no
/// host to set) are removed, so that every forwarding header the upstream reads was written by
/// the gateway; `X-Forwarded-For` is appended to, as proxies do (its last entry is the client
/// the gateway saw; earlier ones are whatever the client claimed).
pub fn set_forwarded_headers(
    headers: &mut HeaderMap,
    client: IpAddr,
    tls: bool,
    host: Option<&str>,
) {
    strip_client_forwarding(headers);
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

/// Remove the forwarding headers the gateway does not append to (see `set_forwarded_headers`).
fn strip_client_forwarding(headers: &mut HeaderMap) {
    let foreign = |name: &HeaderName| {
        let name = name.as_str();
        name == "forwarded"
            || name == "x-real-ip"
            || (name.starts_with("x-forwarded-")
                && name != "x-forwarded-for"
                && name != "x-forwarded-proto")
    };
    if !headers.keys().any(foreign) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| foreign(name))
        .cloned()
        .collect();
    for name in &names {
        headers.remove(name);
    }
}

/// Why a request's `Host` (or HTTP/2 `:authority`) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the request names no host (an HTTP/1.1 request needs a Host header)")]
    MissingHost,
    #[error("more than one Host header")]
    RepeatedHost,
    #[error("the Host header is not host[:port]: {0}")]
    BadHost(AuthorityError),
    #[error("the request target's authority and the Host header disagree")]
    AuthorityMismatch,
}

impl HeaderError {
    pub fn reason(&self) -> &'static str {
        "bad_host"
    }
}

/// RFC 9112 §3.2 and RFC 9113 §8.3.1: the host a request names, validated. HTTP/1.1 needs
/// exactly one `Host`; HTTP/1.0 at most one; HTTP/2 an `:authority` or a `Host`. When both the
/// request target (absolute form, or `:authority`) and `Host` name one, they must agree (case
/// aside). Every host named must be `host[:port]` (`original_url::check_authority`: no userinfo,
/// no `?`, `#`, `,` or space, a numeric port). Returns what `X-Forwarded-Host` is set from.
pub fn check_host<B>(request: &Request<B>) -> Result<Option<String>, HeaderError> {
    let mut values = request.headers().get_all(http::header::HOST).iter();
    let header = match (values.next(), values.next()) {
        (_, Some(_)) => return Err(HeaderError::RepeatedHost),
        (None, None) => None,
        (Some(value), None) => Some(
            value
                .to_str()
                .map_err(|_| HeaderError::BadHost(AuthorityError::BadHost))?,
        ),
    };
    let target = request
        .uri()
        .authority()
        .map(|authority| authority.as_str());
    for named in header.iter().chain(target.iter()) {
        check_authority(named).map_err(HeaderError::BadHost)?;
    }
    let version = request.version();
    match (header, target) {
        (None, _) if version == Version::HTTP_11 => Err(HeaderError::MissingHost),
        (None, None) if matches!(version, Version::HTTP_2 | Version::HTTP_3) => {
            Err(HeaderError::MissingHost)
        }
        (Some(header), Some(target)) if !header.eq_ignore_ascii_case(target) => {
            Err(HeaderError::AuthorityMismatch)
        }
        _ => Ok(header.or(target).map(str::to_string)),
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

    /// The request's one id: the client's, when it sent exactly one that is sane (see
    /// `take_or_generate`), else a new one; set as the request's only `X-Request-Id`, so the id
    /// the upstream gets is the one echoed to the client and logged.
    pub fn assign(&self, headers: &mut HeaderMap) -> HeaderValue {
        let id = self.take_or_generate(headers);
        headers.insert(&X_REQUEST_ID, id.clone());
        id
    }

    /// The client's `X-Request-Id` when it sent exactly one and it is 1–128 characters of
    /// `[A-Za-z0-9._:-]`, else a new one.
    pub fn take_or_generate(&self, headers: &HeaderMap) -> HeaderValue {
        let mut values = headers.get_all(&X_REQUEST_ID).iter();
        if let (Some(value), None) = (values.next(), values.next()) {
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
