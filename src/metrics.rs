//! Every metric the gateway exports, in one struct with its own registry (so several gateways can
//! live in one test process). Label values are bounded: route names, configured URLs, fixed
//! reason words; never raw paths, principals or tokens.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_duration_seconds: HistogramVec,
    pub upstream_duration_seconds: Histogram,
    pub auth_decisions_total: IntCounterVec,
    pub jwks_fetch_total: IntCounterVec,
    pub jwks_keys: IntGaugeVec,
    pub jwks_last_success_timestamp_seconds: GaugeVec,
    pub jwks_keys_dropped_total: IntCounterVec,
    pub token_cache_requests_total: IntCounterVec,
    /// Tokens accepted per verifying key (cache hits included). Labels: kids of the key set and
    /// of at most `jwks::usage::MAX_RETIRED_KIDS` retired kids, with their configured source.
    pub token_verifications_total: IntCounterVec,
    /// Tokens presenting a kid that was published earlier and no source publishes now (bounded
    /// like the above; a kid that was never published is never a label).
    pub retired_kid_presentations_total: IntCounterVec,
    pub inflight_requests: IntGauge,
    /// Client connections each proxy worker serves now (`worker` = 0..server.workers). The
    /// listener's balancing reads these: a connection goes to the worker with the fewest.
    pub worker_connections: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_success: Gauge,
    pub revocation_checks_total: IntCounterVec,
    pub server_config_reads_total: IntCounterVec,
    pub server_config_last_success_timestamp_seconds: Gauge,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

impl Metrics {
    /// Create and register every metric. Fails only if a definition is invalid or registered
    /// twice, which a test catches (every gateway test builds one).
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        macro_rules! register {
            ($metric:expr) => {{
                let metric = $metric?;
                registry.register(Box::new(metric.clone()))?;
                metric
            }};
        }
        let metrics = Metrics {
            requests_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_requests_total",
                    "Requests answered, by route, method and status."
                ),
                &["route", "method", "status"]
            )),
            request_duration_seconds: register!(HistogramVec::new(
                HistogramOpts::new(
                    "om_gateway_request_duration_seconds",
                    "Time from request to response head, by route."
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["route"]
            )),
            upstream_duration_seconds: register!(Histogram::with_opts(
                HistogramOpts::new(
                    "om_gateway_upstream_duration_seconds",
                    "Time the upstream took to answer with a head."
                )
                .buckets(LATENCY_BUCKETS.to_vec())
            )),
            auth_decisions_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_auth_decisions_total",
                    "Authentication and authorization decisions, by result and reason."
                ),
                &["result", "reason"]
            )),
            jwks_fetch_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_jwks_fetch_total",
                    "Key source fetches, by URL and result."
                ),
                &["url", "result"]
            )),
            jwks_keys: register!(IntGaugeVec::new(
                Opts::new(
                    "om_gateway_jwks_keys",
                    "Keys currently trusted from each source."
                ),
                &["url"]
            )),
            jwks_last_success_timestamp_seconds: register!(GaugeVec::new(
                Opts::new(
                    "om_gateway_jwks_last_success_timestamp_seconds",
                    "Unix time of each source's last good fetch."
                ),
                &["url"]
            )),
            jwks_keys_dropped_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_jwks_keys_dropped_total",
                    "Times a failing source's keys were dropped after maxStale."
                ),
                &["url"]
            )),
            token_cache_requests_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_token_cache_requests_total",
                    "Verified-token cache lookups, by hit or miss."
                ),
                &["result"]
            )),
            token_verifications_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_token_verifications_total",
                    "Tokens accepted, by the kid and source of the key that verified them (cache hits included)."
                ),
                &["kid", "source"]
            )),
            retired_kid_presentations_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_retired_kid_presentations_total",
                    "Tokens presenting a kid that no key source publishes any more (it was published earlier)."
                ),
                &["kid"]
            )),
            inflight_requests: register!(IntGauge::new(
                "om_gateway_inflight_requests",
                "Requests being served now."
            )),
            worker_connections: register!(IntGaugeVec::new(
                Opts::new(
                    "om_gateway_worker_connections",
                    "Client connections each proxy worker is serving now."
                ),
                &["worker"]
            )),
            build_info: register!(IntGaugeVec::new(
                Opts::new(
                    "om_gateway_build_info",
                    "Always 1; the version label names the build."
                ),
                &["version"]
            )),
            config_reloads_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_config_reloads_total",
                    "SIGHUP reloads, by result."
                ),
                &["result"]
            )),
            config_last_reload_success: register!(Gauge::new(
                "om_gateway_config_last_reload_success",
                "1 when the last reload succeeded (or none happened), 0 when it failed."
            )),
            revocation_checks_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_revocation_checks_total",
                    "Revocation checks asked of OpenMetadata (GET /api/v1/users/loggedInUser), by result: accepted, revoked, unavailable_open, unavailable_closed."
                ),
                &["result"]
            )),
            server_config_reads_total: register!(IntCounterVec::new(
                Opts::new(
                    "om_gateway_server_config_reads_total",
                    "Reads of OpenMetadata's published security settings, by result."
                ),
                &["result"]
            )),
            server_config_last_success_timestamp_seconds: register!(Gauge::new(
                "om_gateway_server_config_last_success_timestamp_seconds",
                "Unix time of the last good read of OpenMetadata's published settings (0: none yet)."
            )),
            registry,
        };
        metrics
            .build_info
            .with_label_values(&[crate::VERSION])
            .set(1);
        metrics.config_last_reload_success.set(1.0);
        Ok(metrics)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    pub fn auth_decision(&self, result: &str, reason: &str) {
        self.auth_decisions_total
            .with_label_values(&[result, reason])
            .inc();
    }
}

/// Methods as a bounded label.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// One exported metric as a dashboard, an alert rule or a deployment check may rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDescriptor {
    pub name: String,
    pub kind: MetricKind,
    /// The label names a series carries (not counting the `le` of histogram buckets).
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl Metrics {
    /// Every metric this struct exports. The destructuring names every field, so a metric added
    /// to the struct and not listed here does not compile.
    pub fn descriptors(&self) -> Vec<MetricDescriptor> {
        use prometheus::core::Collector;
        let Metrics {
            registry: _,
            requests_total,
            request_duration_seconds,
            upstream_duration_seconds,
            auth_decisions_total,
            jwks_fetch_total,
            jwks_keys,
            jwks_last_success_timestamp_seconds,
            jwks_keys_dropped_total,
            token_cache_requests_total,
            inflight_requests,
            worker_connections,
            build_info,
            config_reloads_total,
            config_last_reload_success,
            revocation_checks_total,
            token_verifications_total,
            retired_kid_presentations_total,
            server_config_reads_total,
            server_config_last_success_timestamp_seconds,
        } = self;
        let all: [(&dyn Collector, MetricKind); 19] = [
            (requests_total, MetricKind::Counter),
            (request_duration_seconds, MetricKind::Histogram),
            (upstream_duration_seconds, MetricKind::Histogram),
            (auth_decisions_total, MetricKind::Counter),
            (jwks_fetch_total, MetricKind::Counter),
            (jwks_keys, MetricKind::Gauge),
            (jwks_last_success_timestamp_seconds, MetricKind::Gauge),
            (jwks_keys_dropped_total, MetricKind::Counter),
            (token_cache_requests_total, MetricKind::Counter),
            (inflight_requests, MetricKind::Gauge),
            (worker_connections, MetricKind::Gauge),
            (build_info, MetricKind::Gauge),
            (config_reloads_total, MetricKind::Counter),
            (config_last_reload_success, MetricKind::Gauge),
            (revocation_checks_total, MetricKind::Counter),
            (token_verifications_total, MetricKind::Counter),
            (retired_kid_presentations_total, MetricKind::Counter),
            (server_config_reads_total, MetricKind::Counter),
            (
                server_config_last_success_timestamp_seconds,
                MetricKind::Gauge,
            ),
        ];
        all.iter()
            .flat_map(|(collector, kind)| {
                collector.desc().into_iter().map(|desc| MetricDescriptor {
                    name: desc.fq_name.clone(),
                    kind: *kind,
                    labels: desc.variable_labels.clone(),
                })
            })
            .collect()
    }
}
