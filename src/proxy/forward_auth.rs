//! Forward-auth: the gateway as the external authorizer of an ingress. It judges the original
//! request that the ingress names and never calls the upstream.
//!
//! - nginx `auth_request`: `X-Original-Method`, `X-Original-URI` (deploy/nginx sets them).
//! - ingress-nginx `auth-url`: `X-Original-Method`, `X-Original-URL` (absolute), and
//!   `X-Original-URI` when `auth-method` is set.
//! - Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Uri`.
//! - Envoy ext_authz (HTTP): the original method, and the original path appended to ours
//!   (`/_gateway/auth/api/v1/tables`).
//!
//! 200 carries the identity headers for the ingress to copy upstream; refusals are the same
//! 401/403 JSON the proxy path gives.

use super::headers::{set_identity_headers, X_REQUEST_ID};
use super::GatewayBody;
use crate::error::{json_response, respond_for_ingress, Rejection};
use crate::policy::normalize_path;
use crate::server::gateway::{Gateway, OutcomeFields, Runtime};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Either;

/// The original request the ingress names. Each ingress sets its own headers and overrides a
/// client's copy of those, but passes the client's other headers through: ingress-nginx always sets
/// `X-Original-URL` (and `X-Original-URI` only with `auth-method`), Traefik sets `X-Forwarded-Uri`,
/// Envoy appends the path to ours. So a client behind Traefik could add `X-Original-URI`, or one behind
/// ingress-nginx `X-Forwarded-Uri`, naming a harmless path. Every description present must therefore
/// agree; any disagreement is refused rather than resolved by a precedence a client could exploit.
fn original_request(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    forward_auth_path: &str,
) -> Result<(Method, String), Rejection> {
    let header = |name: &str| -> Result<Option<&str>, Rejection> {
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
    let mut uris: Vec<String> = Vec::new();
    if let Some(url) = header("x-original-url")? {
        uris.push(path_of_url(url)?.to_string());
    }
    uris.extend(header("x-original-uri")?.map(str::to_string));
    uris.extend(header("x-forwarded-uri")?.map(str::to_string));
    let mut methods: Vec<&str> = Vec::new();
    methods.extend(header("x-original-method")?);
    methods.extend(header("x-forwarded-method")?);
    // Envoy ext_authz: the original path follows ours, with the original method.
    if let Some(rest) = path
        .strip_prefix(forward_auth_path)
        .filter(|rest| rest.starts_with('/'))
    {
        uris.push(rest.to_string());
        methods.push(method.as_str());
    }
    let Some(uri) = uris.first() else {
        return Err(Rejection::BadForwardAuth(
            "no X-Original-URL, X-Original-URI or X-Forwarded-Uri header naming the original request",
        ));
    };
    // The query is not judged, so only the paths (normalised) must agree.
    let normalised = |uri: &str| {
        normalize_path(uri.split(['?', '#']).next().unwrap_or("/")).map(|path| path.into_owned())
    };
    let first_path = normalised(uri)?;
    for other in uris.iter().skip(1) {
        if normalised(other)? != first_path {
            return Err(Rejection::BadForwardAuth(
                "the headers naming the original request disagree",
            ));
        }
    }
    let original_method = methods.first().copied().unwrap_or("GET");
    if methods
        .iter()
        .any(|other| !other.eq_ignore_ascii_case(original_method))
    {
        return Err(Rejection::BadForwardAuth(
            "the headers naming the original method disagree",
        ));
    }
    let original_method = Method::from_bytes(original_method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Rejection::BadForwardAuth("unparseable original method"))?;
    Ok((original_method, first_path))
}

/// The path and query of an absolute URL (`X-Original-URL: https://host/api/v1/x?q`).
fn path_of_url(url: &str) -> Result<&str, Rejection> {
    Ok(super::original_url::path_of_original_url(url)?)
}

/// Judge the original request and answer the ingress.
pub async fn answer(
    gateway: &Gateway,
    runtime: &Runtime,
    request: &Request<hyper::body::Incoming>,
    path: &str,
    log: OutcomeFields<'_>,
) -> http::Response<GatewayBody> {
    let domain = &runtime.config.authorizer.principal_domain;
    let refuse = |rejection: Rejection, log: OutcomeFields<'_>| {
        *log.reason = rejection.reason();
        respond_for_ingress(&rejection, domain).map(Either::Right)
    };
    let direct = path == runtime.config.forward_auth_path;
    if direct && !matches!(*request.method(), Method::GET | Method::HEAD) {
        return refuse(
            Rejection::BadForwardAuth("forward-auth takes GET or HEAD"),
            log,
        );
    }
    let (method, original_path) = match original_request(
        request.headers(),
        request.method(),
        path,
        &runtime.config.forward_auth_path,
    ) {
        Ok(original) => original,
        Err(rejection) => return refuse(rejection, log),
    };
    match gateway
        .decide(runtime, request.headers(), &method, &original_path)
        .await
    {
        Ok(decision) => {
            *log.route = decision.route.clone();
            *log.reason = "allowed";
            *log.fingerprint = decision.fingerprint.clone();
            let mut response = json_response(
                StatusCode::OK,
                &serde_json::json!({"code": 200, "message": "OK"}),
            );
            if let Some(principal) = &decision.principal {
                set_identity_headers(response.headers_mut(), principal);
            }
            *log.principal = decision.principal;
            if let Some(id) = request.headers().get(&X_REQUEST_ID) {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID.clone(), id.clone());
            }
            response.map(Either::Right)
        }
        Err((rejection, route, fingerprint)) => {
            *log.route = route;
            *log.fingerprint = fingerprint;
            refuse(rejection, log)
        }
    }
}
