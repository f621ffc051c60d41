//! Forward-auth: the gateway as the external authorizer of an ingress (ingress-nginx `auth-url`,
//! nginx `auth_request`, Traefik ForwardAuth, Envoy ext_authz). The original request the ingress
//! names becomes a `judge::Question` (`Question::from_forward_auth` reads the headers) and the
//! judge decides, exactly as for a proxied request; this file only words the answer. It never
//! calls the upstream.
//!
//! 200 carries all five identity headers, empty when the caller is anonymous (a public path, or
//! the feed admitted by its cookie): an ingress that copies only the headers present in the
//! answer (Envoy `headersToBackend`, Caddy's `copy_headers`) then still overwrites a client's own
//! `X-Auth-Request-*`. Refusals are the same 401/403/400 JSON the proxy path gives.

use super::gateway::{Outcome, Runtime};
use crate::error::{json_response, respond_for_ingress, Rejection};
use crate::judge::{Question, Verdict};
use crate::proxy::headers::{set_anonymous_identity_headers, set_identity_headers, X_REQUEST_ID};
use crate::proxy::GatewayBody;
use http::{Method, Request, StatusCode};
use http_body_util::Either;

/// Whether a request is addressed to the forward-auth endpoint (or below it, Envoy's form).
/// Compared on the raw path: a client cannot reach it by an encoded form, and an ingress sends
/// it as configured.
pub fn is_forward_auth(raw_path: &str, forward_auth_path: &str) -> bool {
    raw_path
        .strip_prefix(forward_auth_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Ask the judge about the original request and answer the ingress.
pub(super) async fn answer(
    runtime: &Runtime,
    request: &Request<hyper::body::Incoming>,
    outcome: &mut Outcome,
) -> http::Response<GatewayBody> {
    let domain = &runtime.config.authorizer.principal_domain;
    let forward_auth_path = &runtime.config.forward_auth_path;
    let refuse = |rejection: Rejection, outcome: &mut Outcome| {
        outcome.reason = rejection.reason();
        respond_for_ingress(&rejection, domain).map(Either::Right)
    };
    let path = request.uri().path();
    let direct = path == forward_auth_path.as_str();
    if direct && !matches!(*request.method(), Method::GET | Method::HEAD) {
        let rejection = Rejection::BadForwardAuth("forward-auth takes GET or HEAD");
        runtime.judge.count_refused_question(&rejection);
        return refuse(rejection, outcome);
    }
    let question = match Question::from_forward_auth(
        request.method(),
        path,
        request.headers(),
        forward_auth_path,
    ) {
        Ok(question) => question,
        Err(rejection) => {
            runtime.judge.count_refused_question(&rejection);
            return refuse(rejection, outcome);
        }
    };
    match runtime.judge.decide(&question).await {
        Verdict::Allow(allowed) => {
            outcome.route = allowed.route;
            outcome.reason = "allowed";
            outcome.fingerprint = allowed.fingerprint;
            let mut response = json_response(
                StatusCode::OK,
                &serde_json::json!({"code": 200, "message": "OK"}),
            );
            match &allowed.principal {
                Some(principal) => set_identity_headers(response.headers_mut(), principal),
                None => set_anonymous_identity_headers(response.headers_mut()),
            }
            outcome.principal = allowed.principal;
            if let Some(id) = request.headers().get(&X_REQUEST_ID) {
                response
                    .headers_mut()
                    .insert(X_REQUEST_ID.clone(), id.clone());
            }
            response.map(Either::Right)
        }
        Verdict::Deny(refused) => {
            outcome.route = refused.route;
            outcome.fingerprint = refused.fingerprint;
            refuse(refused.rejection, outcome)
        }
    }
}
