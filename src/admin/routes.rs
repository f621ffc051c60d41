//! `/healthz`, `/readyz`, `/metrics`, `/keys`.

use super::AdminState;
use crate::error::json_response;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

pub async fn handle<B>(gateway: &dyn AdminState, request: Request<B>) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"code": 405, "message": "Method not allowed"}),
        );
    }
    match request.uri().path() {
        "/healthz" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/readyz" => readiness(gateway),
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(gateway.metrics().render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/keys" => keys(gateway),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({"code": 404, "message": "Not found"}),
        ),
    }
}

/// Ready once any key source has produced keys, and not while draining.
fn readiness(gateway: &dyn AdminState) -> Response<Full<Bytes>> {
    let key_store = gateway.key_store();
    let sources = key_store.status();
    let draining = gateway.is_draining();
    let ready = !draining && key_store.key_count() > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let state = if draining {
        "draining"
    } else if ready {
        "ready"
    } else {
        "waiting for keys"
    };
    json_response(
        status,
        &json!({ "status": state, "keySources": sources, "serverConfig": gateway.server_config() }),
    )
}

fn keys(gateway: &dyn AdminState) -> Response<Full<Bytes>> {
    let key_store = gateway.key_store();
    let keys: Vec<_> = key_store
        .all_keys()
        .iter()
        .map(|key| {
            json!({
                "kid": key.key.kid,
                "alg": key.key.algorithm.map(|alg| format!("{alg:?}")),
                "family": format!("{:?}", key.key.family),
                "bits": key.key.bits,
                "thumbprint": key.key.thumbprint,
                "source": &*key.binding.url,
                "issuers": key.binding.issuers,
                "audiences": key.binding.audiences,
                "fetchedAt": key.fetched_at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
                // The drain view: verifications, last use, principals in the last 24 h.
                "usage": key_store.key_usage(key.key.kid.as_deref(), &key.binding.url),
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "keys": keys,
            "retiredKids": key_store.retired_kids(),
            "sources": key_store.status(),
        }),
    )
}
