//! The gateway's contract with the files that deploy and watch it, as data: the environment
//! variables it reads, the metrics it exports (names, types, labels), the identity headers it
//! answers with, and its default listen addresses and forward-auth path. `xtask validate-deploy`
//! (run by `.ci/validate-deploy.sh`) checks everything under `deploy/` against these values, so a
//! renamed variable, metric or default fails CI where a manifest, dashboard or alert still uses
//! the old one. Nothing on the request path calls this module.

use crate::config::{load, ConfigError, LoadInput};
use std::collections::HashMap;
use std::net::SocketAddr;

pub use crate::metrics::{MetricDescriptor, MetricKind};

/// Every environment variable the gateway reads (its own and OpenMetadata's).
pub fn environment_variables() -> &'static [&'static str] {
    crate::config::KNOWN_VARIABLES
}

/// Every metric `/metrics` can show.
pub fn metrics() -> Result<Vec<MetricDescriptor>, prometheus::Error> {
    Ok(crate::metrics::Metrics::new()?.descriptors())
}

/// The headers a forward-auth answer (and a proxied request) carries the identity in.
pub fn identity_headers() -> Vec<&'static str> {
    crate::proxy::headers::IDENTITY_HEADERS
        .iter()
        .map(|name| name.as_str())
        .collect()
}

/// What the gateway does when a deployment sets nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub forward_auth_path: String,
}

/// The defaults, read from the configuration loader itself (given only the two settings it
/// cannot do without, neither of which changes them).
pub fn defaults() -> Result<Defaults, ConfigError> {
    let environment: HashMap<String, String> = [
        ("OM_GATEWAY_UPSTREAM_URL", "http://openmetadata:8585"),
        (
            "AUTHENTICATION_PUBLIC_KEYS",
            "[http://openmetadata:8585/api/v1/system/config/jwks]",
        ),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    let config = load(LoadInput {
        gateway_file: None,
        openmetadata_file: None,
        environment: &environment,
    })?;
    Ok(Defaults {
        listen: config.startup.listen,
        admin_listen: config.startup.admin_listen,
        forward_auth_path: config.forward_auth_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_a_scrape_shows_is_described() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        metrics
            .requests_total
            .with_label_values(&["r", "GET", "200"])
            .inc();
        let described: Vec<String> = super::metrics()
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(described.len(), 19, "{described:?}");
        for line in metrics.render().lines() {
            if let Some(family) = line.strip_prefix("# TYPE ") {
                let name = family.split(' ').next().unwrap();
                assert!(described.iter().any(|d| d == name), "{name} not described");
            }
        }
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let defaults = defaults().unwrap();
        assert_eq!(defaults.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(defaults.admin_listen.to_string(), "127.0.0.1:9090");
        assert_eq!(defaults.forward_auth_path, "/_gateway/auth");
        assert_eq!(identity_headers().len(), 5);
        assert!(environment_variables().contains(&"OM_GATEWAY_LISTEN"));
    }
}
