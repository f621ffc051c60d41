//! The per-request service: the six hops of one request, in order.
//!
//! 1. `server::listen` accepted the connection (and did TLS) before we are called.
//! 2. Here: assign the request id and open the span, so every log line can be correlated.
//! 3. and 4. `judge::Judge::decide` answers the `Question` built from the request: public path,
//!    the activity feed's own credential, or the bearer token (`verify`) and the route rules
//!    (`policy`) for every reading of the path. Nothing here decides; it only asks.
//! 5. `proxy::Forwarder::forward` sends the request upstream, bodies streaming.
//! 6. `error::respond`, or the upstream's response, goes back with the request id; a successful
//!    `loggedInUser` answer gets the feed cookie (`proxy::feed`).
//!
//! Forward-auth requests (`server::forward_auth`) ask the same judge and answer 200 or the
//! refusal instead of forwarding.

use super::forward_auth;
use crate::config::Config;
use crate::error::{respond, Rejection};
use crate::judge::{Judge, Question, Verdict};
use crate::jwks::KeyStore;
use crate::metrics::{method_label, Metrics};
use crate::proxy::feed::{self, FeedSessions};
use crate::proxy::headers::{
    check_host, is_upgrade, set_forwarded_headers, set_identity_headers, strip_client_headers,
    strip_hop_by_hop_headers, strip_impersonation_unless_bot, RequestIds, X_REQUEST_ID,
};
use crate::proxy::websocket::WebSocketHandshake;
use crate::proxy::{Forwarder, GatewayBody, RequestBody};
use crate::revocation::RevocationCheck;
use crate::verify::{Authenticator, Principal};
use arc_swap::ArcSwap;
use http::{HeaderMap, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Everything built from one configuration; swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub judge: Judge,
    pub forwarder: Forwarder,
}

/// Why a runtime could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("upstream client: {0}")]
    Upstream(#[from] crate::proxy::ForwarderError),
    #[error(transparent)]
    Revocation(#[from] crate::revocation::CheckError),
}

impl Runtime {
    /// Build a runtime around an existing key store (reloads keep keys when sources are unchanged)
    /// and the process-wide feed sessions. `workers`: how many proxy worker threads are running
    /// (one upstream pool each); a reload passes the running count.
    pub fn new(
        config: Arc<Config>,
        key_store: Arc<KeyStore>,
        metrics: Arc<Metrics>,
        feed: Arc<FeedSessions>,
        workers: usize,
    ) -> Result<Runtime, RuntimeError> {
        let authenticator =
            Authenticator::new(config.verify_settings(), key_store, metrics.clone());
        let revocation =
            RevocationCheck::new(&config.revocation, &config.upstream, metrics.clone())?;
        Ok(Runtime {
            judge: Judge::new(config.policy(), authenticator, feed, metrics)
                .with_revocation_check(revocation),
            forwarder: Forwarder::new(&config.upstream, workers)?,
            config,
        })
    }

    pub fn key_store(&self) -> &Arc<KeyStore> {
        self.judge.authenticator().key_store()
    }
}

/// What the access log and metrics record of one request.
pub(super) struct Outcome {
    pub route: String,
    pub reason: &'static str,
    pub principal: Option<Arc<Principal>>,
    pub fingerprint: Option<String>,
    pub upstream_seconds: Option<f64>,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            route: "-".into(),
            reason: "-",
            principal: None,
            fingerprint: None,
            upstream_seconds: None,
        }
    }
}

pub struct Gateway {
    /// The current generation. Every request loads it (a lock-free read and one reference
    /// count); a reload stores the next one, and requests in flight keep theirs.
    runtime: ArcSwap<Runtime>,
    /// Proxy worker threads started with the process (`server.workers` at start).
    pub workers: usize,
    pub metrics: Arc<Metrics>,
    draining: AtomicBool,
    request_ids: RequestIds,
    /// Lives as long as the process (not a config generation), so reloads keep feed cookies valid.
    feed_sessions: Arc<FeedSessions>,
    /// Follows OpenMetadata's published settings; its base is the configuration started with.
    follower: Arc<crate::follow::Follower>,
}

impl crate::admin::AdminState for Gateway {
    fn key_store(&self) -> Arc<KeyStore> {
        self.runtime().key_store().clone()
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn is_draining(&self) -> bool {
        Gateway::is_draining(self)
    }

    fn server_config(&self) -> serde_json::Value {
        self.follower.status_json()
    }
}

impl Gateway {
    pub fn new(runtime: Runtime, metrics: Arc<Metrics>, workers: usize) -> Arc<Gateway> {
        Arc::new(Gateway {
            workers,
            follower: crate::follow::Follower::new(runtime.config.clone(), metrics.clone()),
            feed_sessions: runtime.judge.feed_sessions().clone(),
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            draining: AtomicBool::new(false),
            request_ids: RequestIds::new(),
        })
    }

    /// The follower of OpenMetadata's published settings (`server::start` runs it).
    pub fn follower(&self) -> &Arc<crate::follow::Follower> {
        &self.follower
    }

    /// The process-wide feed sessions, for building the next runtime on reload.
    pub fn feed_sessions(&self) -> &Arc<FeedSessions> {
        &self.feed_sessions
    }

    /// The current configuration generation.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Swap in a new generation; requests in flight finish on the old one.
    pub fn replace_runtime(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Serve one request. Never fails: every error becomes a response.
    pub async fn handle(
        self: Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        // Hop 2: request id and span. The id replaces any the client sent: the upstream, the
        // client and the log all see this one.
        let request_id = self.request_ids.assign(request.headers_mut());
        let method = request.method().clone();
        // Debug level: an enabled span costs a formatted copy of its fields per request even
        // where no line prints them (JSON logs omit spans); lines that matter carry the id.
        let span = tracing::debug_span!("request", id = ?request_id, method = %method);
        self.metrics.inflight_requests.inc();
        let runtime = self.runtime();
        // requestTimeout bounds everything until the response head: authentication (including
        // a key refetch), reading the first body frame, and the upstream's answer.
        let request_timeout = runtime.config.server.request_timeout;
        // Boxed once: the request's whole future (judge, forwarder, feed cookie) is several KiB,
        // and every wrapper (span, timeout, hyper's dispatcher) would otherwise copy it inline.
        let serving = Box::pin(
            self.serve(&runtime, request, peer, tls, &request_id)
                .instrument(span),
        );
        let (mut response, outcome) = match tokio::time::timeout(request_timeout, serving).await {
            Ok(served) => served,
            Err(_) => (
                respond(
                    &Rejection::RequestTimeout,
                    &runtime.config.authorizer.principal_domain,
                )
                .map(Either::Right),
                Outcome {
                    reason: Rejection::RequestTimeout.reason(),
                    ..Outcome::new()
                },
            ),
        };
        self.metrics.inflight_requests.dec();
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());
        let status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics
            .requests_total
            .with_label_values(&[&outcome.route, method_label(&method), status_label(status)])
            .inc();
        self.metrics
            .request_duration_seconds
            .with_label_values(&[&outcome.route])
            .observe(elapsed);
        if let Some(upstream) = outcome.upstream_seconds {
            self.metrics.upstream_duration_seconds.observe(upstream);
        }
        if !runtime.config.server.access_log {
            return response;
        }
        crate::access_log::record(&crate::access_log::AccessLine {
            request_id: request_id.to_str().unwrap_or(""),
            method: method.as_str(),
            route: &outcome.route,
            status,
            latency_ms: elapsed * 1000.0,
            upstream_ms: outcome.upstream_seconds.map(|s| s * 1000.0),
            principal: outcome.principal.as_ref().map(|p| p.name.as_str()),
            token: outcome.fingerprint.as_deref(),
            reason: outcome.reason,
        });
        response
    }

    async fn serve(
        &self,
        runtime: &Runtime,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
        request_id: &http::HeaderValue,
    ) -> (Response<GatewayBody>, Outcome) {
        let mut outcome = Outcome::new();
        let domain = &runtime.config.authorizer.principal_domain;
        let reject = |rejection: Rejection, outcome: Outcome| {
            let outcome = Outcome {
                reason: rejection.reason(),
                ..outcome
            };
            (respond(&rejection, domain).map(Either::Right), outcome)
        };
        if self.is_draining() && is_upgrade(request.headers()) {
            return reject(Rejection::Draining, outcome);
        }
        if let Err(rejection) = check_head_limits(&request, &runtime.config) {
            return reject(rejection, outcome);
        }
        let host = match check_host(&request) {
            Ok(host) => host,
            Err(error) => return reject(Rejection::BadHeader(error), outcome),
        };
        if forward_auth::is_forward_auth(request.uri().path(), &runtime.config.forward_auth_path) {
            outcome.route = "forward-auth".into();
            let response = forward_auth::answer(runtime, &request, &mut outcome).await;
            return (response, outcome);
        }
        strip_client_headers(request.headers_mut());
        feed::strip_spoofable_headers(request.headers_mut());
        // Hops 3 and 4: ask the judge.
        let (verdict, forwarded_path) = {
            let question =
                match Question::from_request(request.method(), request.uri(), request.headers()) {
                    Ok(question) => question,
                    Err(rejection) => {
                        runtime.judge.count_refused_question(&rejection);
                        return reject(rejection, outcome);
                    }
                };
            let verdict = runtime.judge.decide(&question).await;
            (verdict, question.path.into_forwarded().into_owned())
        };
        let allowed = match verdict {
            Verdict::Allow(allowed) => allowed,
            Verdict::Deny(refused) => {
                outcome.route = refused.route;
                outcome.fingerprint = refused.fingerprint;
                return reject(refused.rejection, outcome);
            }
        };
        outcome.route = allowed.route.clone();
        outcome.fingerprint = allowed.fingerprint.clone();
        outcome.principal = allowed.principal.clone();
        // Hop 5. Only a checked WebSocket handshake on a configured path may become a tunnel.
        let websocket = WebSocketHandshake::of(
            &request,
            &forwarded_path,
            &runtime.config.server.websocket_paths,
        );
        // The UI's own `loggedInUser` call earns it the feed cookie; read that answer unencoded.
        let feed_cookie_for = allowed
            .principal
            .clone()
            .filter(|_| feed::is_logged_in_user(request.method(), &forwarded_path));
        let secure = tls || forwarded_https(request.headers());
        let headers = request.headers_mut();
        if feed_cookie_for.is_some() {
            headers.remove(http::header::ACCEPT_ENCODING);
        }
        strip_hop_by_hop_headers(headers, websocket.is_some());
        strip_impersonation_unless_bot(headers, allowed.principal.as_deref());
        if let Some(principal) = &allowed.principal {
            set_identity_headers(headers, principal);
        }
        set_forwarded_headers(headers, peer.ip(), tls, host.as_deref());
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{forwarded_path}?{query}"),
            None => forwarded_path,
        };
        let (parts, body) = request.into_parts();
        let body = match RequestBody::prefetch(body).await {
            Ok(body) => body,
            Err(error) => {
                tracing::debug!(%error, "request body unreadable; nothing forwarded");
                return reject(Rejection::BadBody, outcome);
            }
        };
        let request = Request::from_parts(parts, body);
        let upstream_started = Instant::now();
        match runtime
            .forwarder
            .forward(request, path_and_query, websocket)
            .await
        {
            Ok(mut response) => {
                outcome.upstream_seconds = Some(upstream_started.elapsed().as_secs_f64());
                outcome.reason = "allowed";
                let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                strip_hop_by_hop_headers(response.headers_mut(), switching);
                let Some(principal) = feed_cookie_for else {
                    return (response.map(Either::Left), outcome);
                };
                let timeout = runtime.config.upstream.timeout;
                let now = unix_now();
                match feed::attach_cookie(
                    &self.feed_sessions,
                    response,
                    &principal,
                    secure,
                    timeout,
                    now,
                )
                .await
                {
                    Ok(response) => (response, outcome),
                    Err(error) => reject(Rejection::Upstream(error), outcome),
                }
            }
            Err(error) => {
                tracing::warn!(
                    request_id = request_id.to_str().unwrap_or(""),
                    error = %error,
                    "upstream request failed"
                );
                outcome.upstream_seconds = Some(upstream_started.elapsed().as_secs_f64());
                reject(Rejection::Upstream(error), outcome)
            }
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Whether the client reached us over TLS through a terminating proxy; only decides the cookie's
/// `Secure` flag, so a client lying here harms only itself.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get(&crate::proxy::headers::X_FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("https"))
}

/// The limits hyper leaves to us, answered in JSON: the request target's length (414) and the
/// head's size (431). hyper's own hard limits sit at twice these.
fn check_head_limits(request: &Request<Incoming>, config: &Config) -> Result<(), Rejection> {
    let server = &config.server;
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > server.max_uri_bytes {
        return Err(Rejection::UriTooLong(server.max_uri_bytes));
    }
    // As counted on the wire: `name: value\r\n` per line, plus the request line.
    let head = request.headers().iter().fold(
        target + request.method().as_str().len() + 12,
        |total, (name, value)| total + name.as_str().len() + value.len() + 4,
    );
    let max_header_bytes = config.startup.max_header_bytes;
    if head > max_header_bytes {
        return Err(Rejection::HeadersTooLarge(max_header_bytes));
    }
    Ok(())
}

/// Status codes as a bounded label: the common ones exactly, the rest by class.
fn status_label(status: u16) -> &'static str {
    const EXACT: [(u16, &str); 20] = [
        (101, "101"),
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (409, "409"),
        (413, "413"),
        (414, "414"),
        (429, "429"),
        (431, "431"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    if let Some((_, label)) = EXACT.iter().find(|(code, _)| *code == status) {
        return label;
    }
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
