//! `om-gateway healthcheck`: a container HEALTHCHECK for images without curl.

use super::{EXIT_FAILURE, EXIT_OK};
use clap::Args;

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The health endpoint to probe.
    #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
    url: String,
}

pub fn healthcheck(args: HealthcheckArgs) -> i32 {
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
        match client.get(&args.url).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => EXIT_OK,
            Ok(response) => {
                eprintln!(
                    "om-gateway healthcheck: {} answered {}",
                    args.url,
                    response.status()
                );
                EXIT_FAILURE
            }
            Err(error) => {
                eprintln!("om-gateway healthcheck: {}: {error}", args.url);
                EXIT_FAILURE
            }
        }
    })
}
