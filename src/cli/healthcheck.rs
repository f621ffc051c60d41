//! `om-gateway healthcheck`: a container HEALTHCHECK for images without curl.

use super::{EXIT_FAILURE, EXIT_OK};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The health endpoint to probe (default: /healthz on OM_GATEWAY_ADMIN_LISTEN, else 127.0.0.1:9090).
    #[arg(long)]
    url: Option<String>,
}

/// The admin address the gateway in this container listens on, as a URL a local client can reach.
fn default_url() -> String {
    let listen = std::env::var("OM_GATEWAY_ADMIN_LISTEN").unwrap_or_default();
    let port = listen
        .parse::<std::net::SocketAddr>()
        .map(|address| address.port())
        .unwrap_or(9090);
    format!("http://127.0.0.1:{port}/healthz")
}

pub fn healthcheck(args: HealthcheckArgs) -> i32 {
    let url = args.url.unwrap_or_else(default_url);
    let Ok(runtime) = super::runtime() else {
        return EXIT_FAILURE;
    };
    runtime.block_on(async {
        let client = match reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .build()
        {
            Ok(client) => client,
            Err(_) => return EXIT_FAILURE,
        };
        match client.get(&url).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => EXIT_OK,
            Ok(response) => {
                eprintln!(
                    "om-gateway healthcheck: {} answered {}",
                    url,
                    response.status()
                );
                EXIT_FAILURE
            }
            Err(error) => {
                eprintln!("om-gateway healthcheck: {}: {error}", url);
                EXIT_FAILURE
            }
        }
    })
}
