//! A [`Question`]: what the judge needs to know about one request, however it arrived. Each entry
//! point builds one here, so the path readings and the method are read the same way for all.
//!
//! Forward-auth questions describe an original request in headers set by an ingress:
//! - nginx `auth_request`: `X-Original-Method`, `X-Original-URI` (deploy/nginx sets them).
//! - ingress-nginx `auth-url`: `X-Original-Method`, `X-Original-URL` (absolute), and
//!   `X-Original-URI` when `auth-method` is set.
//! - Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Uri`.
//! - Envoy ext_authz (HTTP): the original method, and the original path appended to ours
//!   (`/_gateway/auth/api/v1/tables`).

use crate::error::Rejection;
use crate::policy::{path_readings, PathReadings};
use crate::proxy::original_url::path_of_original_url;
use http::{HeaderMap, Method};

/// How the request reached the judge (for logs; the verdict never depends on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    Proxy,
    ForwardAuth,
    Inspect,
}

/// One request to judge.
#[derive(Debug)]
pub struct Question<'a> {
    pub method: Method,
    /// Every reading of the path a server behind the gateway may apply; the first is forwarded.
    pub path: PathReadings<'a>,
    /// The query string as sent (the feed's `userId` is read from it).
    pub query: Option<&'a str>,
    /// The request's headers: `Authorization`, `Cookie`, `X-Impersonate-User`.
    pub headers: &'a HeaderMap,
    pub arrival: Arrival,
}

impl<'a> Question<'a> {
    /// A request the proxy received.
    pub fn from_request(
        method: &Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
    ) -> Result<Question<'a>, Rejection> {
        // hyper parses the standard methods into their constants; only an extension method
        // (`delete`, `FOO`) needs looking at again.
        let method = if is_standard(method) {
            method.clone()
        } else {
            checked_method(method.as_str())?
        };
        Ok(Question {
            method,
            path: path_readings(uri.path())?,
            query: uri.query(),
            headers,
            arrival: Arrival::Proxy,
        })
    }

    /// `inspect --method M --path P`: `target` may carry a query.
    pub fn for_inspect(
        method: &str,
        target: &'a str,
        headers: &'a HeaderMap,
    ) -> Result<Question<'a>, Rejection> {
        let (path, query) = split_target(target);
        Ok(Question {
            method: checked_method(method)?,
            path: path_readings(path)?,
            query,
            headers,
            arrival: Arrival::Inspect,
        })
    }

    /// The original request a forward-auth call (`GET|HEAD {forwardAuth.path}[/original path]`)
    /// names. Each ingress sets its own headers and overrides a client's copy of those, but passes
    /// the client's other headers through: ingress-nginx always sets `X-Original-URL` (and
    /// `X-Original-URI` only with `auth-method`), Traefik sets `X-Forwarded-Uri`, Envoy appends
    /// the path to ours. So a client behind Traefik could add `X-Original-URI`, or one behind
    /// ingress-nginx `X-Forwarded-Uri`, naming a harmless path. Every description present must
    /// therefore agree; any disagreement is refused rather than resolved by a precedence a client
    /// could exploit. A request with no method header is refused too: guessing GET would judge a
    /// DELETE by the rules for reading.
    pub fn from_forward_auth(
        method: &Method,
        request_path: &'a str,
        headers: &'a HeaderMap,
        forward_auth_path: &str,
    ) -> Result<Question<'a>, Rejection> {
        let header = |name: &str| -> Result<Option<&'a str>, Rejection> {
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (None, _) => Ok(None),
                (Some(_), Some(_)) => Err(Rejection::BadForwardAuth(
                    "a header naming the original request is repeated",
                )),
                (Some(value), None) => value
                    .to_str()
                    .map(|text| Some(text.trim()).filter(|text| !text.is_empty()))
                    .map_err(|_| Rejection::BadForwardAuth("unreadable original-request header")),
            }
        };
        let mut targets: Vec<&'a str> = Vec::new();
        if let Some(url) = header("x-original-url")? {
            // ingress-nginx builds it from the client's own Host: junk there must not shift
            // where the path starts.
            targets.push(path_of_original_url(url)?);
        }
        targets.extend(header("x-original-uri")?);
        targets.extend(header("x-forwarded-uri")?);
        let mut methods: Vec<&str> = Vec::new();
        methods.extend(header("x-original-method")?);
        methods.extend(header("x-forwarded-method")?);
        // Envoy ext_authz: the original path follows ours, with the original method.
        if let Some(rest) = request_path
            .strip_prefix(forward_auth_path)
            .filter(|rest| rest.starts_with('/'))
        {
            targets.push(rest);
            methods.push(method.as_str());
        }
        let Some(first) = targets.first().copied() else {
            return Err(Rejection::BadForwardAuth(
                "no X-Original-URL, X-Original-URI or X-Forwarded-Uri header naming the original request",
            ));
        };
        let Some(original_method) = methods.first().copied() else {
            return Err(Rejection::BadForwardAuth(
                "no X-Original-Method or X-Forwarded-Method header naming the original method",
            ));
        };
        if methods.iter().any(|other| *other != original_method) {
            return Err(Rejection::BadForwardAuth(
                "the headers naming the original method disagree",
            ));
        }
        let (path, query) = split_target(first);
        let readings = path_readings(path)?;
        for other in targets.iter().skip(1) {
            let (other_path, other_query) = split_target(other);
            if path_readings(other_path)? != readings || other_query != query {
                return Err(Rejection::BadForwardAuth(
                    "the headers naming the original request disagree",
                ));
            }
        }
        Ok(Question {
            method: checked_method(original_method)?,
            path: readings,
            query,
            headers,
            arrival: Arrival::ForwardAuth,
        })
    }
}

/// Path and query of a request target; a fragment (never sent by clients) is dropped.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let target = target.split('#').next().unwrap_or(target);
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

fn is_standard(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT
    )
}

/// Method tokens are case-sensitive (RFC 9110 §9.1) and so are JAX-RS's `@GET`/`@DELETE`: a
/// standard method written in another case is refused rather than folded, in every entry point,
/// so no rule can be read for one method and served as another.
fn checked_method(text: &str) -> Result<Method, Rejection> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    let method = Method::from_bytes(text.as_bytes())
        .map_err(|_| Rejection::BadMethod(text.chars().take(32).collect()))?;
    if !STANDARD.contains(&text) && STANDARD.iter().any(|name| name.eq_ignore_ascii_case(text)) {
        return Err(Rejection::BadMethod(text.chars().take(32).collect()));
    }
    Ok(method)
}
