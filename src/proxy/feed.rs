//! The OpenMetadata activity feed (socket.io under `/api/v1/push/feed`): how a browser that cannot
//! send `Authorization` on a WebSocket still proves which `userId` it may subscribe to.
//!
//! The web UI connects only after `GET /api/v1/users/loggedInUser` has told it its own user id, and
//! then sends `?userId=<id>` with no token. So when that call succeeds through the gateway with a
//! verified token, the gateway reads the small JSON answer, takes its `id`, and sets an HttpOnly,
//! SameSite=Strict cookie scoped to the feed path holding the id, an expiry and an HMAC under a key
//! drawn at process start. A feed request must then carry either that cookie with the same
//! `userId`, or a bearer token whose principal the gateway has seen resolve to that id through
//! `loggedInUser`. Headers the server's socket filter would trust (`UserId`, `SessionId`,
//! `RemoteAddress`) are always removed on this path.
//!
//! Owns the cookie format and the check; `server::gateway` decides when to call them, `error`
//! words the refusals. The HMAC key comes from the configuration (`feed.keyFile`,
//! `OM_GATEWAY_FEED_KEY`, read by `config::feed_key`), so replicas given the same key accept
//! each other's cookies, and a previous key is still accepted during a rotation. Without one,
//! a random key is drawn at process start and lives in memory only: a restart invalidates every
//! cookie, and the UI gets a fresh one at its next `loggedInUser` call (every page load).

use super::{GatewayBody, ProxyError, UpstreamBody};
use crate::verify::Principal;
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, COOKIE, SET_COOKIE};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use std::path::PathBuf;
use std::time::Duration;

/// Where socket.io lives in OpenMetadata (no `basePath`).
pub const FEED_PATH: &str = "/api/v1/push/feed";
/// The call whose answer names the signed-in user's id.
pub const LOGGED_IN_USER_PATH: &str = "/api/v1/users/loggedInUser";
pub const COOKIE_NAME: &str = "omgw_feed";
/// Upper bound of a cookie's life; shorter when the token expires sooner.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// `loggedInUser` answers larger than this are passed through without a cookie.
pub const MAX_USER_BODY: usize = 256 * 1024;
/// Beyond this the answer is not OpenMetadata's user document; refuse rather than hold it.
const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;

/// Headers OpenMetadata's `SocketAddressFilter` adds and its feed servlet trusts; a client's own
/// copy would be read first.
pub static SPOOFABLE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("userid"),
    HeaderName::from_static("sessionid"),
    HeaderName::from_static("remoteaddress"),
];

/// Why a feed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the activity feed needs the session cookie set by GET /api/v1/users/loggedInUser, or a bearer token")]
    NoCredential,
    #[error("the activity feed cookie is invalid or has expired")]
    BadCookie,
    #[error("feed requests need exactly one userId query parameter")]
    UserIdMissing,
    #[error("Socket user does not match token")]
    UserMismatch,
}

impl FeedError {
    pub fn status(&self) -> StatusCode {
        match self {
            FeedError::NoCredential | FeedError::BadCookie => StatusCode::UNAUTHORIZED,
            FeedError::UserIdMissing => StatusCode::BAD_REQUEST,
            FeedError::UserMismatch => StatusCode::FORBIDDEN,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            FeedError::NoCredential => "feed_no_credential",
            FeedError::BadCookie => "feed_bad_cookie",
            FeedError::UserIdMissing => "feed_user_id",
            FeedError::UserMismatch => "feed_user_mismatch",
        }
    }
}

/// True for the feed path and anything under it (segment-aware).
pub fn is_feed_path(path: &str) -> bool {
    path.strip_prefix(FEED_PATH)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// True for the request whose answer carries the user id (trailing slash included: Jersey serves both).
pub fn is_logged_in_user(method: &Method, path: &str) -> bool {
    *method == Method::GET && path.strip_suffix('/').unwrap_or(path) == LOGGED_IN_USER_PATH
}

pub fn strip_spoofable_headers(headers: &mut HeaderMap) {
    for name in &SPOOFABLE_HEADERS {
        headers.remove(name);
    }
}

/// The process-wide cookie key and the ids learned from `loggedInUser` answers.
pub struct FeedSessions {
    key: hmac::Key,
    /// Accepted, never used to sign: the key before a rotation.
    previous_key: Option<hmac::Key>,
    /// Principal name (lower-cased) → user id, for bearer clients of the feed. Bounded.
    user_ids: moka::sync::Cache<String, String>,
}

impl FeedSessions {
    /// A fresh random key. Fails only if the system RNG does.
    pub fn new() -> Result<FeedSessions, aws_lc_rs::error::Unspecified> {
        FeedSessions::from_config(&FeedConfig::default())
    }

    /// The configured keys, or a fresh random key when none is configured (then cookies are
    /// valid on this process only). Fails only if the system RNG does.
    pub fn from_config(config: &FeedConfig) -> Result<FeedSessions, aws_lc_rs::error::Unspecified> {
        let key = match &config.key {
            Some(key) => {
                tracing::info!(key = %key.origin, previous = ?config.previous_key.as_ref().map(|k| &k.origin), "feed cookie key configured");
                hmac::Key::new(hmac::HMAC_SHA256, key.bytes())
            }
            None => {
                let mut secret = [0u8; 32];
                aws_lc_rs::rand::fill(&mut secret)?;
                tracing::info!("no feed cookie key configured (feed.keyFile, OM_GATEWAY_FEED_KEY): a random one for this process; with several replicas, give them one key");
                hmac::Key::new(hmac::HMAC_SHA256, &secret)
            }
        };
        Ok(FeedSessions {
            key,
            previous_key: config
                .previous_key
                .as_ref()
                .map(|previous| hmac::Key::new(hmac::HMAC_SHA256, previous.bytes())),
            user_ids: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(COOKIE_LIFETIME)
                .build(),
        })
    }

    /// The `Set-Cookie` value binding `user_id` until `min(now + lifetime, token exp)`, or `None`
    /// when the id is not one OpenMetadata issues or the token is already expiring.
    pub fn issue_cookie(
        &self,
        user_id: &str,
        token_expires_at: Option<u64>,
        now: u64,
        secure: bool,
    ) -> Option<HeaderValue> {
        if !is_user_id(user_id) {
            return None;
        }
        let expires_at = token_expires_at
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(COOKIE_LIFETIME.as_secs()));
        let max_age = expires_at.checked_sub(now).filter(|age| *age > 0)?;
        let tag = hmac::sign(&self.key, signed_text(user_id, expires_at).as_bytes());
        let mut cookie = format!(
            "{COOKIE_NAME}={user_id}.{expires_at}.{}; Path={FEED_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        );
        if secure {
            cookie.push_str("; Secure");
        }
        HeaderValue::from_str(&cookie).ok()
    }

    /// Remember which user id a principal's `loggedInUser` resolved to.
    pub fn remember(&self, principal_name: &str, user_id: &str) {
        if is_user_id(user_id) {
            self.user_ids
                .insert(principal_name.to_ascii_lowercase(), user_id.to_string());
        }
    }

    /// Check a feed request (`principal`: the verified bearer identity when one was sent); the
    /// `userId` it is bound to. Called by the decision module only.
    pub fn check(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        principal: Option<&Principal>,
        now: u64,
    ) -> Result<String, FeedError> {
        let requested = requested_user_id(query);
        if let Some(principal) = principal {
            let requested = requested?;
            let known = self.user_ids.get(&principal.name.to_ascii_lowercase());
            return match known {
                Some(known) if known == requested => Ok(known),
                _ => Err(FeedError::UserMismatch),
            };
        }
        let cookie = cookie_value(headers).ok_or(FeedError::NoCredential)?;
        let bound_user = self.verify_cookie(cookie, now)?;
        if requested? == bound_user {
            Ok(bound_user.to_string())
        } else {
            Err(FeedError::UserMismatch)
        }
    }

    /// The user id a cookie value binds, if its MAC verifies and it has not expired.
    fn verify_cookie<'a>(&self, value: &'a str, now: u64) -> Result<&'a str, FeedError> {
        let mut parts = value.rsplitn(3, '.');
        let (Some(tag), Some(expires_at), Some(user_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(FeedError::BadCookie);
        };
        let expires_at: u64 = expires_at.parse().map_err(|_| FeedError::BadCookie)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| FeedError::BadCookie)?;
        let signed = signed_text(user_id, expires_at);
        let verifies = |key: &hmac::Key| hmac::verify(key, signed.as_bytes(), &tag).is_ok();
        if !verifies(&self.key) && !self.previous_key.as_ref().is_some_and(verifies) {
            return Err(FeedError::BadCookie);
        }
        if expires_at <= now || !is_user_id(user_id) {
            return Err(FeedError::BadCookie);
        }
        Ok(user_id)
    }
}

/// Domain-separated text under the MAC, so the key can never sign anything else by accident.
fn signed_text(user_id: &str, expires_at: u64) -> String {
    format!("{COOKIE_NAME}|v1|{user_id}|{expires_at}")
}

/// OpenMetadata ids are UUIDs; allow the UUID alphabet only, which also keeps `.` free as the
/// cookie's separator and the value legal in a header.
fn is_user_id(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The single `userId` query parameter's value, raw. The server reads it with
/// `socket.getInitialQuery().get("userId")` (OpenMetadata's `socket/WebSocketManager.java`),
/// from engine.io-server-java's query map, which percent-decodes parameter names and keeps a
/// name without `=` (empty value): so `user%49d=` and a bare `userId` are `userId` too. Two of
/// them would let the gateway and the server read different ones, so that is refused.
pub(crate) fn requested_user_id(query: Option<&str>) -> Result<&str, FeedError> {
    let mut values = query.unwrap_or("").split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        is_user_id_name(name).then_some(value)
    });
    match (values.next(), values.next()) {
        (Some(value), None) if !value.is_empty() => Ok(value),
        _ => Err(FeedError::UserIdMissing),
    }
}

/// Whether a raw parameter name percent-decodes to `userId` (a malformed escape stays as is).
fn is_user_id_name(name: &str) -> bool {
    if !name.contains('%') {
        return name == "userId";
    }
    let raw = name.as_bytes();
    let mut decoded = Vec::with_capacity(raw.len());
    let mut index = 0;
    while let Some(&byte) = raw.get(index) {
        let escaped = (byte == b'%')
            .then(|| raw.get(index + 1..index + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                index += 3;
            }
            None => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    decoded == b"userId"
}

/// Our cookie's value from any `Cookie` header (browsers may send several pairs per header).
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// Read a successful `loggedInUser` answer (bounded), learn its `id`, set the cookie, and pass the
/// body on unchanged. Anything unexpected (not 200, encoded, too large, no id) passes through
/// without a cookie.
pub async fn attach_cookie(
    sessions: &FeedSessions,
    response: Response<UpstreamBody>,
    principal: &Principal,
    secure: bool,
    timeout: Duration,
    now: u64,
) -> Result<Response<GatewayBody>, ProxyError> {
    if response.status() != StatusCode::OK
        || response
            .headers()
            .contains_key(http::header::CONTENT_ENCODING)
    {
        return Ok(response.map(Either::Left));
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match tokio::time::timeout(timeout, read_bounded(body)).await {
        Err(_) => return Err(ProxyError::Timeout(timeout)),
        Ok(result) => result?,
    };
    let user_id = (bytes.len() <= MAX_USER_BODY)
        .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .flatten()
        .and_then(|document| document.get("id")?.as_str().map(str::to_string));
    if let Some(user_id) = user_id {
        sessions.remember(&principal.name, &user_id);
        if let Some(cookie) = sessions.issue_cookie(&user_id, principal.expires_at, now, secure) {
            parts.headers.append(SET_COOKIE, cookie);
        }
    }
    // The body is now whole; its length is known and any chunked framing is gone.
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Response::from_parts(parts, Either::Right(Full::new(bytes))))
}

async fn read_bounded(mut body: UpstreamBody) -> Result<Bytes, ProxyError> {
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| ProxyError::Reset(error.to_string()))?;
        if let Some(data) = frame.data_ref() {
            if buffer.len() + data.len() > MAX_BUFFERED_BODY {
                return Err(ProxyError::Reset(
                    "loggedInUser answer exceeds 16 MiB".into(),
                ));
            }
            buffer.extend_from_slice(data);
        }
    }
    Ok(buffer.freeze())
}

// === the keys, as `config` reads them ===

/// `feed`: which keys sign and verify the feed cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedConfig {
    /// Signs new cookies and verifies them; `None`: a random key per process.
    pub key: Option<FeedKey>,
    /// Also accepted when verifying, never used to sign: the key before a rotation.
    pub previous_key: Option<FeedKey>,
}

/// Key bytes and where they came from. `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct FeedKey {
    bytes: Vec<u8>,
    /// `OM_GATEWAY_FEED_KEY`, or a file and the setting that named it.
    pub origin: String,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
}

impl FeedKey {
    pub fn new(bytes: Vec<u8>, origin: String, file: Option<PathBuf>) -> FeedKey {
        FeedKey {
            bytes,
            origin,
            file,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for FeedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FeedKey({} bytes from {})",
            self.bytes.len(),
            self.origin
        )
    }
}
