//! The per-request service: the six hops of one request, in order.
//!
//! 1. `server::listen` accepted the connection (and did TLS) before we are called.
//! 2. Here: assign the request id and open the span, so every log line can be correlated.
//! 3. `verify::Authenticator::authenticate` checks the token (skipped for public paths).
//! 4. `policy::Policy::authorize` applies the route rules to the verified principal.
//! 5. `proxy::Forwarder::forward` sends the request upstream, bodies streaming.
//! 6. `error::respond`, or the upstream's response, goes back with the request id.
//!
//! Forward-auth requests stop after hop 4 and answer 200 with the identity headers. The activity
//! feed (`/api/v1/push/feed`), which browsers open without a token, is judged in hops 3 and 4 by
//! `proxy::feed` instead; a successful `loggedInUser` answer gets the feed cookie in hop 6.

use crate::admin::metrics::{method_label, Metrics};
use crate::config::{Config, ServerConfig};
use crate::error::{respond, Rejection};
use crate::jwks::KeyStore;
use crate::policy::{normalize_path, Policy};
use crate::proxy::feed::{self, FeedSessions};
use crate::proxy::headers::{
    is_upgrade, set_forwarded_headers, set_identity_headers, strip_hop_by_hop_headers,
    strip_identity_headers, RequestIds, X_IMPERSONATE_USER, X_REQUEST_ID,
};
use crate::proxy::{forward_auth, Forwarder, GatewayBody, RequestBody};
use crate::verify::{Authenticator, Principal};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use tracing::Instrument;

/// Everything built from one configuration; swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub policy: Policy,
    pub authenticator: Authenticator,
    pub forwarder: Forwarder,
}

impl Runtime {
    /// Build a runtime around an existing key store (reloads keep keys when sources are unchanged).
    /// `workers`: how many proxy worker threads are running (one upstream pool each); a reload
    /// passes the running count, not the new file's `server.workers`, which waits for a restart.
    pub fn new(
        config: Arc<Config>,
        key_store: Arc<KeyStore>,
        metrics: Arc<Metrics>,
        workers: usize,
    ) -> Result<Runtime, String> {
        Ok(Runtime {
            policy: Policy::from_config(&config),
            authenticator: Authenticator::new(&config, key_store, metrics),
            forwarder: Forwarder::new(&config.upstream, workers)?,
            config,
        })
    }
}

/// The outcome of hops 3 and 4.
pub struct Decision {
    pub route: String,
    pub principal: Option<Arc<Principal>>,
    pub fingerprint: Option<String>,
}

/// What the access log and metrics record of one request.
struct Outcome {
    route: String,
    reason: &'static str,
    principal: Option<Arc<Principal>>,
    fingerprint: Option<String>,
    upstream_seconds: Option<f64>,
}

pub struct Gateway {
    runtime: RwLock<Arc<Runtime>>,
    /// Proxy worker threads started with the process (`server.workers` at start).
    pub workers: usize,
    pub metrics: Arc<Metrics>,
    draining: AtomicBool,
    request_ids: RequestIds,
    /// Lives as long as the process (not a config generation), so reloads keep feed cookies valid.
    feed_sessions: FeedSessions,
}

impl Gateway {
    /// Fails only if the system random number generator cannot seed the feed-cookie key (when
    /// none is configured).
    pub fn new(
        runtime: Runtime,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Gateway>, aws_lc_rs::error::Unspecified> {
        let feed_sessions = FeedSessions::from_config(&runtime.config.feed)?;
        Ok(Arc::new(Gateway {
            workers: runtime.config.server.workers,
            runtime: RwLock::new(Arc::new(runtime)),
            metrics,
            draining: AtomicBool::new(false),
            request_ids: RequestIds::new(),
            feed_sessions,
        }))
    }

    /// The current configuration generation.
    pub fn runtime(&self) -> Arc<Runtime> {
        match self.runtime.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swap in a new generation; requests in flight finish on the old one.
    pub fn replace_runtime(&self, runtime: Runtime) {
        let fresh = Arc::new(runtime);
        match self.runtime.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
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
        request: Request<Incoming>,
        peer: SocketAddr,
        tls: bool,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        // Hop 2: request id and span.
        let request_id = self.request_ids.take_or_generate(request.headers());
        let method = request.method().clone();
        // Debug level: an enabled span costs a formatted copy of its fields per request even
        // where no line prints them (JSON logs omit spans); lines that matter carry the id.
        let span = tracing::debug_span!("request", id = ?request_id, method = %method);
        self.metrics.inflight_requests.inc();
        let runtime = self.runtime();
        // requestTimeout bounds everything until the response head: authentication (including
        // a key refetch), reading the first body frame, and the upstream's answer.
        let request_timeout = runtime.config.server.request_timeout;
        let serving = self
            .serve(&runtime, request, peer, tls, &request_id)
            .instrument(span);
        let (mut response, outcome) = match tokio::time::timeout(request_timeout, serving).await {
            Ok(served) => served,
            Err(_) => (
                respond(
                    &Rejection::RequestTimeout,
                    &runtime.config.authorizer.principal_domain,
                )
                .map(Either::Right),
                Outcome {
                    route: "-".into(),
                    reason: Rejection::RequestTimeout.reason(),
                    principal: None,
                    fingerprint: None,
                    upstream_seconds: None,
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
        tracing::info!(
            target: "om_gateway::access",
            request_id = request_id.to_str().unwrap_or(""),
            method = %method,
            route = %outcome.route,
            status,
            latency_ms = elapsed * 1000.0,
            upstream_ms = outcome.upstream_seconds.map(|s| s * 1000.0),
            principal = outcome.principal.as_ref().map(|p| p.name.as_str()),
            token = outcome.fingerprint.as_deref(),
            reason = outcome.reason,
        );
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
        let mut outcome = Outcome {
            route: "-".into(),
            reason: "-",
            principal: None,
            fingerprint: None,
            upstream_seconds: None,
        };
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
        if let Err(rejection) = check_head_limits(&request, &runtime.config.server) {
            return reject(rejection, outcome);
        }
        let path = match normalize_path(request.uri().path()) {
            Ok(path) => path.into_owned(),
            Err(error) => {
                self.metrics.auth_decision("deny", "bad_path");
                return reject(Rejection::BadPath(error), outcome);
            }
        };
        let forward_auth_path = &runtime.config.forward_auth_path;
        // Compared without building "{path}/" per request.
        let is_forward_auth = path
            .strip_prefix(forward_auth_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if is_forward_auth {
            outcome.route = "forward-auth".into();
            let response =
                forward_auth::answer(self, runtime, &request, &path, outcome_fields(&mut outcome))
                    .await;
            return (response, outcome);
        }
        strip_identity_headers(request.headers_mut());
        // Hops 3 and 4. The feed has its own credential (see `proxy::feed`) unless made public.
        let feed_path = feed::is_feed_path(&path);
        if feed_path {
            feed::strip_spoofable_headers(request.headers_mut());
        }
        let decided = if feed_path && !runtime.policy.is_public(&path) {
            let query = request.uri().query();
            self.decide_feed(runtime, request.headers(), request.method(), &path, query)
                .await
        } else {
            self.decide(runtime, request.headers(), request.method(), &path)
                .await
        };
        let decision = match decided {
            Ok(decision) => decision,
            Err((rejection, route, fingerprint)) => {
                outcome.route = route;
                outcome.fingerprint = fingerprint;
                return reject(rejection, outcome);
            }
        };
        outcome.route = decision.route.clone();
        outcome.fingerprint = decision.fingerprint.clone();
        outcome.principal = decision.principal.clone();
        // Hop 5.
        let upgrade = is_upgrade(request.headers());
        let host = request
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        // The UI's own `loggedInUser` call earns it the feed cookie; read that answer unencoded.
        let feed_cookie_for = decision
            .principal
            .clone()
            .filter(|_| feed::is_logged_in_user(request.method(), &path));
        let secure = tls || forwarded_https(request.headers());
        let headers = request.headers_mut();
        if feed_cookie_for.is_some() {
            headers.remove(http::header::ACCEPT_ENCODING);
        }
        strip_hop_by_hop_headers(headers, upgrade);
        if let Some(principal) = &decision.principal {
            set_identity_headers(headers, principal);
        }
        set_forwarded_headers(headers, peer.ip(), tls, host.as_deref());
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
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
        match runtime.forwarder.forward(request, path_and_query).await {
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

    /// Hops 3 and 4: is this request public, or who is calling and may they? Shared by the proxy
    /// path and forward-auth. On refusal returns the route label and token fingerprint for logs.
    pub async fn decide(
        &self,
        runtime: &Runtime,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
    ) -> Result<Decision, (Rejection, String, Option<String>)> {
        self.decide_with(runtime, headers, method, path, |_| Ok(()))
            .await
    }

    /// Hops 3 and 4 for the activity feed: a bearer token goes through the route rules and must
    /// then resolve to the requested `userId`; without one, the feed cookie must bind that id.
    async fn decide_feed(
        &self,
        runtime: &Runtime,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Result<Decision, (Rejection, String, Option<String>)> {
        let now = unix_now();
        if headers.contains_key(http::header::AUTHORIZATION) {
            return self
                .decide_with(runtime, headers, method, path, |principal| {
                    self.feed_sessions
                        .check(headers, query, Some(principal), now)
                        .map_err(Rejection::Feed)
                })
                .await;
        }
        match self.feed_sessions.check(headers, query, None, now) {
            Ok(()) => {
                self.metrics.auth_decision("allow", "feed_cookie");
                Ok(Decision {
                    route: "feed".into(),
                    principal: None,
                    fingerprint: None,
                })
            }
            Err(error) => {
                self.metrics.auth_decision("deny", error.reason());
                Err((Rejection::Feed(error), "feed".into(), None))
            }
        }
    }

    /// `decide`, with one more check on the authorized principal before the allow is counted.
    async fn decide_with(
        &self,
        runtime: &Runtime,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        extra_check: impl FnOnce(&Principal) -> Result<(), Rejection>,
    ) -> Result<Decision, (Rejection, String, Option<String>)> {
        if runtime.policy.is_public(path) {
            self.metrics.auth_decision("allow", "public_path");
            return Ok(Decision {
                route: "public".into(),
                principal: None,
                fingerprint: None,
            });
        }
        let route_name = || runtime.policy.route_for(method, path).name.clone();
        let authenticated = match runtime.authenticator.authenticate(headers).await {
            Ok(authenticated) => authenticated,
            Err(error) => {
                self.metrics.auth_decision("deny", error.reason());
                tracing::debug!(reason = error.reason(), detail = %error, "authentication failed");
                let fingerprint = crate::verify::bearer_token(headers)
                    .ok()
                    .map(crate::verify::fingerprint);
                return Err((Rejection::Auth(error), route_name(), fingerprint));
            }
        };
        let fingerprint = Some(authenticated.fingerprint.clone());
        let principal = authenticated.principal;
        if headers.contains_key(&X_IMPERSONATE_USER) && !principal.is_bot {
            self.metrics.auth_decision("deny", "impersonation");
            return Err((Rejection::ImpersonationForbidden, route_name(), fingerprint));
        }
        match runtime.policy.authorize(&principal, method, path) {
            Ok(route) => {
                if let Err(rejection) = extra_check(&principal) {
                    self.metrics.auth_decision("deny", rejection.reason());
                    return Err((rejection, route.name.clone(), fingerprint));
                }
                self.metrics.auth_decision("allow", "authorized");
                Ok(Decision {
                    route: route.name.clone(),
                    principal: Some(principal),
                    fingerprint,
                })
            }
            Err(denied) => {
                self.metrics.auth_decision("deny", denied.reason);
                let route = denied.route.clone();
                Err((Rejection::Forbidden(denied), route, fingerprint))
            }
        }
    }
}

/// Forward-auth fills the same log fields; this hands it a mutable view.
pub struct OutcomeFields<'a> {
    pub route: &'a mut String,
    pub reason: &'a mut &'static str,
    pub principal: &'a mut Option<Arc<Principal>>,
    pub fingerprint: &'a mut Option<String>,
}

fn outcome_fields(outcome: &mut Outcome) -> OutcomeFields<'_> {
    OutcomeFields {
        route: &mut outcome.route,
        reason: &mut outcome.reason,
        principal: &mut outcome.principal,
        fingerprint: &mut outcome.fingerprint,
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
fn check_head_limits(request: &Request<Incoming>, server: &ServerConfig) -> Result<(), Rejection> {
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
    if head > server.max_header_bytes {
        return Err(Rejection::HeadersTooLarge(server.max_header_bytes));
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
