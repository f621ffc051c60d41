//! Forward-auth: the gateway as the external authorizer of an ingress. It judges the original
//! request that the ingress names and never calls the upstream.
//!
//! - nginx `auth_request` / ingress-nginx `auth-url`: `X-Original-Method`, `X-Original-URI`.
//! - Traefik ForwardAuth: `X-Forwarded-Method`, `X-Forwarded-Uri`.
//! - Envoy ext_authz (HTTP): the original method, and the original path appended to ours
//!   (`/_gateway/auth/api/v1/tables`).
//!
//! 200 carries the identity headers for the ingress to copy upstream; refusals are the same
//! 401/403 JSON the proxy path gives.

use super::headers::{set_identity_headers, X_REQUEST_ID};
use super::GatewayBody;
use crate::error::{json_response, respond, Rejection};
use crate::policy::normalize_path;
use crate::server::gateway::{Gateway, OutcomeFields, Runtime};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Either;

/// Where the original request is described, most specific first.
fn original_request(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    forward_auth_path: &str,
) -> Result<(Method, String), Rejection> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    if let Some(uri) = header("x-original-uri").or_else(|| header("x-forwarded-uri")) {
        let original_method = header("x-original-method")
            .or_else(|| header("x-forwarded-method"))
            .unwrap_or("GET");
        let original_method = Method::from_bytes(original_method.as_bytes())
            .map_err(|_| Rejection::BadForwardAuth("unparseable original method"))?;
        return Ok((original_method, uri.to_string()));
    }
    // Envoy ext_authz: the original path follows ours, with the original method.
    if let Some(rest) = path
        .strip_prefix(forward_auth_path)
        .filter(|rest| rest.starts_with('/'))
    {
        return Ok((method.clone(), rest.to_string()));
    }
    Err(Rejection::BadForwardAuth(
        "no X-Original-URI or X-Forwarded-Uri header naming the original request",
    ))
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
        respond(&rejection, domain).map(Either::Right)
    };
    let direct = path == runtime.config.forward_auth_path;
    if direct && !matches!(*request.method(), Method::GET | Method::HEAD) {
        return refuse(
            Rejection::BadForwardAuth("forward-auth takes GET or HEAD"),
            log,
        );
    }
    let (method, uri) = match original_request(
        request.headers(),
        request.method(),
        path,
        &runtime.config.forward_auth_path,
    ) {
        Ok(original) => original,
        Err(rejection) => return refuse(rejection, log),
    };
    let original_path = uri.split(['?', '#']).next().unwrap_or("/");
    let original_path = match normalize_path(original_path) {
        Ok(normalised) => normalised.into_owned(),
        Err(error) => return refuse(Rejection::BadPath(error), log),
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
