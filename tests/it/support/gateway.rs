//! The real gateway, started in-process on ephemeral ports.

use om_gateway::config::{load, Config, ConfigText, LoadInput};
use om_gateway::server::RunningServer;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct TestGateway {
    pub server: RunningServer,
}

/// Parse a gateway YAML the way `run` does (environment from `env`, never the process's).
pub fn config_from(
    yaml: &str,
    env: &[(&str, &str)],
) -> Result<Config, om_gateway::config::ConfigError> {
    let environment: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(LoadInput {
        gateway_file: Some(ConfigText {
            name: "gateway.yaml".into(),
            text: yaml.into(),
        }),
        openmetadata_file: None,
        environment: &environment,
    })
}

impl TestGateway {
    /// Start with `yaml`; listen addresses are forced to 127.0.0.1:0.
    pub async fn start(yaml: &str) -> TestGateway {
        let mut config =
            config_from(yaml, &[]).unwrap_or_else(|error| panic!("test config is valid: {error}"));
        TestGateway::start_config(&mut config).await
    }

    pub async fn start_config(config: &mut Config) -> TestGateway {
        config.startup.listen = "127.0.0.1:0".parse().expect("address");
        config.startup.admin_listen = "127.0.0.1:0".parse().expect("address");
        let server = om_gateway::server::start(config.clone())
            .await
            .expect("gateway starts");
        TestGateway { server }
    }

    /// Start and wait until /readyz says keys are loaded.
    pub async fn start_ready(yaml: &str) -> TestGateway {
        let gateway = TestGateway::start(yaml).await;
        gateway.wait_ready().await;
        gateway
    }

    pub fn proxy(&self) -> SocketAddr {
        self.server.proxy_address
    }

    pub fn admin(&self) -> SocketAddr {
        self.server.admin_address
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.proxy_address)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.admin_address)
    }

    /// Poll /readyz until 200, failing the test after 10 s.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = super::client();
        loop {
            if let Ok(response) = client.get(self.admin_url("/readyz")).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not become ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One scrape of `/metrics`, parsed: assert on series with `value`/`get`, never substrings.
    /// `GET /keys` on the admin listener: the trusted keys, their sources and the drain view.
    pub async fn keys(&self) -> serde_json::Value {
        super::client()
            .get(self.admin_url("/keys"))
            .send()
            .await
            .expect("/keys")
            .json()
            .await
            .expect("/keys is JSON")
    }

    pub async fn metrics(&self) -> super::prometheus::Exposition {
        super::prometheus::scrape(&self.admin_url("/metrics")).await
    }
}

/// A minimal gateway YAML in front of `upstream`, trusting `key_urls` only: the test upstreams
/// record what reaches them, so OpenMetadata's own key source (the upstream's
/// `/api/v1/system/config/jwks`, on by default) is turned off here; the tests of that source
/// (`openmetadata_key`) turn it on.
pub fn basic_yaml(upstream: &str, key_urls: &[String]) -> String {
    let urls = key_urls
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "upstream:\n  url: {upstream}\nauthenticationConfiguration:\n  publicKeyUrls: [ {urls} ]\njwks:\n  minRefreshInterval: 1s\n  fetchTimeout: 2s\nopenmetadata:\n  trustServerKey: false\n"
    )
}

/// The usual cast of a test: key A published by a JwksServer, an Upstream, and a ready gateway in
/// front of it configured by `basic_yaml` plus `extra_yaml`.
pub struct Stack {
    pub key: super::TestKey,
    pub jwks: super::JwksServer,
    pub upstream: super::Upstream,
    pub gateway: TestGateway,
}

impl Stack {
    /// Key A as a standard RFC 7517 JWK.
    pub async fn start(extra_yaml: &str) -> Stack {
        let key = super::TestKey::rsa_a();
        let jwk = key.jwk();
        Stack::with_jwk(key, jwk, extra_yaml).await
    }

    /// Key A in OpenMetadata's own JWKS form (padded base64url, leading zero byte).
    pub async fn start_openmetadata_form(extra_yaml: &str) -> Stack {
        let key = super::TestKey::rsa_a();
        let jwk = key.openmetadata_jwk();
        Stack::with_jwk(key, jwk, extra_yaml).await
    }

    async fn with_jwk(key: super::TestKey, jwk: serde_json::Value, extra_yaml: &str) -> Stack {
        let jwks = super::JwksServer::start(super::keys::jwks(&[jwk])).await;
        let upstream = super::Upstream::start().await;
        let yaml = format!("{}{extra_yaml}", basic_yaml(&upstream.url(), &[jwks.url()]));
        let gateway = TestGateway::start_ready(&yaml).await;
        Stack {
            key,
            jwks,
            upstream,
            gateway,
        }
    }
}
