//! The only place a rejection becomes an HTTP response: status, JSON body
//! `{"code": N, "message": "..."}`, and `WWW-Authenticate` on 401 (RFC 6750).
//!
//! Messages use OpenMetadata's own wording where the server has one, so clients and scripts
//! that parse the server's errors read the gateway's the same way. Tokens never appear here.

use crate::policy::{Denied, PathError};
use crate::proxy::feed::FeedError;
use crate::proxy::headers::HeaderError;
use crate::proxy::original_url::OriginalUrlError;
use crate::proxy::ProxyError;
use crate::verify::AuthError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;

/// Every reason the gateway answers by itself instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Forbidden(#[from] Denied),
    #[error("only bot users can impersonate other users")]
    ImpersonationForbidden,
    #[error("ambiguous path: {0}")]
    BadPath(#[from] PathError),
    #[error("bad forward-auth request: {0}")]
    BadForwardAuth(&'static str),
    #[error("method `{0}` is not upper case")]
    BadMethod(String),
    #[error("bad forward-auth request: {0}")]
    BadOriginalUrl(#[from] OriginalUrlError),
    #[error(transparent)]
    BadHeader(#[from] HeaderError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error(transparent)]
    Upstream(#[from] ProxyError),
    #[error("request timed out")]
    RequestTimeout,
    #[error("request target longer than {0} bytes")]
    UriTooLong(usize),
    #[error("request headers larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("malformed request body")]
    BadBody,
    #[error("not found")]
    NotFound,
    #[error("shutting down")]
    Draining,
    #[error("OpenMetadata cannot confirm the token is still valid")]
    RevocationUnavailable,
    #[error("internal error")]
    Internal,
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Auth(AuthError::NoKeysLoaded) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Auth(_) => StatusCode::UNAUTHORIZED,
            Rejection::Forbidden(_) | Rejection::ImpersonationForbidden => StatusCode::FORBIDDEN,
            Rejection::BadPath(_)
            | Rejection::BadForwardAuth(_)
            | Rejection::BadMethod(_)
            | Rejection::BadOriginalUrl(_)
            | Rejection::BadHeader(_)
            | Rejection::BadBody
            | Rejection::Upstream(ProxyError::ClientBody(_)) => StatusCode::BAD_REQUEST,
            Rejection::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Rejection::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Rejection::Upstream(ProxyError::Timeout(_)) | Rejection::RequestTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Rejection::Upstream(_) => StatusCode::BAD_GATEWAY,
            Rejection::Feed(error) => error.status(),
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::Draining | Rejection::RevocationUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Rejection::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body's message: OpenMetadata's words for what it also rejects, plain ones otherwise.
    pub fn message(&self, principal_domain: &str) -> String {
        match self {
            Rejection::Auth(error) => auth_message(error, principal_domain),
            Rejection::Forbidden(denied) => format!("Forbidden: {denied}"),
            Rejection::ImpersonationForbidden => {
                "Only bot users can impersonate other users".into()
            }
            Rejection::BadPath(error) => format!("Bad request: {error}"),
            Rejection::BadForwardAuth(what) => format!("Bad request: {what}"),
            Rejection::BadMethod(method) => {
                format!("Bad request: method `{method}` must be written in upper case")
            }
            Rejection::BadOriginalUrl(error) => format!("Bad request: {error}"),
            Rejection::BadHeader(error) => format!("Bad request: {error}"),
            Rejection::Feed(FeedError::UserMismatch) => FeedError::UserMismatch.to_string(),
            Rejection::Feed(FeedError::UserIdMissing) => {
                format!("Bad request: {}", FeedError::UserIdMissing)
            }
            Rejection::Feed(error) => {
                format!("Not Authorized! {}", capitalise_plain(&error.to_string()))
            }
            Rejection::UriTooLong(limit) => {
                format!("URI too long: the request target exceeds {limit} bytes")
            }
            Rejection::HeadersTooLarge(limit) => {
                format!("Request header fields too large: the headers exceed {limit} bytes")
            }
            Rejection::BadBody => "Bad request: malformed request body".into(),
            Rejection::Upstream(ProxyError::Timeout(_)) | Rejection::RequestTimeout => {
                "Gateway timeout: the upstream did not answer in time".into()
            }
            Rejection::Upstream(ProxyError::ClientBody(_)) => {
                "Bad request: the request body could not be read".into()
            }
            Rejection::Upstream(ProxyError::BadUpgrade) => {
                "Bad gateway: the upstream switched protocols without completing a WebSocket handshake".into()
            }
            Rejection::Upstream(_) => {
                "Bad gateway: the upstream OpenMetadata server is unreachable".into()
            }
            Rejection::NotFound => "Not found".into(),
            Rejection::Draining => "Service unavailable: the gateway is shutting down".into(),
            Rejection::RevocationUnavailable => "Service unavailable: OpenMetadata cannot be asked whether this token is still valid".into(),
            Rejection::Internal => "Internal error".into(),
        }
    }

    /// A bounded reason label for metrics and the access log.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::Auth(error) => error.reason(),
            Rejection::Forbidden(denied) => denied.reason,
            Rejection::ImpersonationForbidden => "impersonation",
            Rejection::BadPath(_) => "bad_path",
            Rejection::BadMethod(_) => "bad_method",
            Rejection::BadForwardAuth(_) | Rejection::BadOriginalUrl(_) => "bad_forward_auth",
            Rejection::BadHeader(error) => error.reason(),
            Rejection::Feed(error) => error.reason(),
            Rejection::Upstream(error) => error.reason(),
            Rejection::RequestTimeout => "request_timeout",
            Rejection::UriTooLong(_) => "uri_too_long",
            Rejection::HeadersTooLarge(_) => "headers_too_large",
            Rejection::BadBody => "bad_body",
            Rejection::NotFound => "not_found",
            Rejection::Draining => "draining",
            Rejection::RevocationUnavailable => "revocation_unavailable",
            Rejection::Internal => "internal",
        }
    }
}

fn auth_message(error: &AuthError, principal_domain: &str) -> String {
    match error {
        AuthError::TokenMissing | AuthError::NotBearer => "Not Authorized! Token not present".into(),
        AuthError::MultipleAuthorization => "Not Authorized! More than one Authorization header".into(),
        AuthError::Malformed(_) | AuthError::AlgorithmRejected(_) | AuthError::BadClaim(_) => {
            format!("Not Authorized! Invalid token. {}", capitalise(&error.to_string()))
        }
        AuthError::UnknownKid(_) | AuthError::KeyNotBound(_) => {
            format!("Not Authorized! Token signing key not found in configured public keys: {error}")
        }
        AuthError::BadSignature => "Not Authorized! Invalid token. Token verification failed. Public key mismatch.".into(),
        AuthError::NoKeysLoaded => "Service unavailable: no signing key could be loaded from any key source".into(),
        AuthError::Expired => "Expired token!".into(),
        AuthError::NoExpiry => "Not Authorized! Invalid token. Token has no expiry (exp) and only bot tokens may omit it".into(),
        AuthError::NotYetValid | AuthError::IssuedInFuture | AuthError::IssuerRejected(_) | AuthError::AudienceRejected => {
            format!("Not Authorized! Invalid token. {}", capitalise(&error.to_string()))
        }
        AuthError::NoPrincipal => "Not Authorized! Invalid JWT token, none of the principal claims are present".into(),
        // SecurityUtil.findUserNameFromClaims / findEmailFromClaims wording.
        AuthError::MappedClaimMissing(field) => format!("Not Authorized! Invalid JWT token, '{field}' claim is not present or invalid"),
        AuthError::NoPrincipalDomain => "Not Authorized! JWT claim value is not an email address and no domain is configured".into(),
        AuthError::Revoked => "Not Authorized! Invalid token. OpenMetadata no longer accepts it (revoked, replaced by a new token, logged out, or its session ended)".into(),
        AuthError::AmbiguousClaim(_) | AuthError::Unforwardable | AuthError::CriticalHeader => {
            format!("Not Authorized! Invalid token. {}", capitalise(&error.to_string()))
        }
        AuthError::DomainMismatch => format!("Not Authorized! Email does not match the principal domain {principal_domain}"),
    }
}

fn capitalise_plain(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

/// The JSON body of a refusal: `{"code": N, "message": "..."}`.
fn body_text(rejection: &Rejection, principal_domain: &str) -> String {
    let body = serde_json::json!({ "code": rejection.status().as_u16(), "message": rejection.message(principal_domain) });
    body.to_string()
}

/// Build the JSON error response. `request_id` is echoed so a user can quote it.
pub fn respond(rejection: &Rejection, principal_domain: &str) -> Response<Full<Bytes>> {
    let status = rejection.status();
    let mut response = Response::new(Full::new(Bytes::from(body_text(
        rejection,
        principal_domain,
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if matches!(rejection, Rejection::Upstream(ProxyError::BadUpgrade)) {
        // The client asked to switch protocols and may already be sending the new one: none
        // of it is read as a next request.
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        let challenge = match rejection {
            Rejection::Auth(AuthError::TokenMissing | AuthError::NotBearer) => {
                HeaderValue::from_static("Bearer realm=\"om-gateway\"")
            }
            _ => HeaderValue::from_static("Bearer realm=\"om-gateway\", error=\"invalid_token\""),
        };
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// The header a forward-auth refusal carries its JSON body in, for an ingress that shows the
/// client its own page instead of the answer's body (nginx `auth_request`): the shipped
/// deploy/nginx snippet returns it with `auth_request_set` and `error_page`.
pub static X_AUTH_REQUEST_ERROR: header::HeaderName =
    header::HeaderName::from_static("x-auth-request-error");

/// `respond`, plus the JSON body in `X-Auth-Request-Error` (non-ASCII characters written as
/// JSON `\u` escapes, so the value is the same JSON and a valid header value).
pub fn respond_for_ingress(rejection: &Rejection, principal_domain: &str) -> Response<Full<Bytes>> {
    let mut response = respond(rejection, principal_domain);
    let mut escaped = String::new();
    for character in body_text(rejection, principal_domain).chars() {
        if character.is_ascii() && !character.is_ascii_control() {
            escaped.push(character);
        } else {
            for unit in character.encode_utf16(&mut [0u16; 2]) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&escaped) {
        response.headers_mut().insert(&X_AUTH_REQUEST_ERROR, value);
    }
    response
}

/// A JSON body with a status, for the admin endpoints and forward-auth answers.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
