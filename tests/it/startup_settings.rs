//! Settings read once at start (listeners, workers, TLS files, limits) cannot change on reload:
//! the running values stay, the rest of the new file takes effect.

use crate::support::gateway::{basic_yaml, config_from};
use crate::support::keys::{jwks, TestKey};
use crate::support::{JwksServer, TestGateway, Upstream};

#[tokio::test]
async fn a_reload_keeps_startup_settings_and_applies_the_rest() {
    let key = TestKey::rsa_a();
    let jwks_server = JwksServer::start(jwks(&[key.jwk()])).await;
    let upstream = Upstream::start().await;
    let yaml = basic_yaml(&upstream.url(), &[jwks_server.url()]);
    let gateway = TestGateway::start_ready(&yaml).await;
    let running = gateway.server.gateway.runtime().config.startup.clone();

    let changed = format!(
        "server:\n  listen: 127.0.0.1:1\n  adminListen: 127.0.0.1:0\n  workers: 7\n  maxConnections: 3\n  maxUriBytes: 300\n{yaml}"
    );
    let config = config_from(&changed, &[]).unwrap();
    assert_eq!(
        running.changed(&config.startup),
        ["server.listen", "server.maxConnections", "server.workers"]
    );
    om_gateway::server::reload_with(&gateway.server.gateway, config).unwrap();

    let now = gateway.server.gateway.runtime().config.clone();
    assert_eq!(
        now.startup, running,
        "startup settings keep their running values"
    );
    assert_eq!(
        now.server.max_uri_bytes, 300,
        "per-request settings follow the file"
    );
    // And the gateway still serves where it listened, with the new URI limit.
    let token = key.tokens().personal();
    let long = format!("/api/v1/tables?q={}", "x".repeat(400));
    let response = crate::support::client()
        .get(gateway.url(&long))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 414);
}
