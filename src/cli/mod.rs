//! Subcommands, one file each. This is the edge: `anyhow` is allowed here, and every error
//! becomes a message on stderr and an exit code.

pub(crate) mod check;
mod demo;
mod doctor;
mod healthcheck;
mod inspect;
mod keys;
mod run;
mod token;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub use demo::{start_demo, DemoHandle};
pub use doctor::{
    examine, is_openmetadata_default_key, judge_clock_skew, lint_key_url, parse_http_date, Findings,
};
pub use keys::render_drain_view;
pub use token::{mint_token, TokenRequest};

/// Exit codes CONTRACT.md promises.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_INVALID: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "om-gateway",
    version,
    about = "Authenticating reverse proxy for the OpenMetadata API"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Run(ConfigArgs),
    /// Validate the configuration and print the effective one (YAML, secrets redacted).
    Check(ConfigArgs),
    /// A self-contained demo: issuer, OpenMetadata-like upstream and the gateway in one process.
    Demo(demo::DemoArgs),
    /// Explain the decision the gateway would make for one token.
    Inspect(inspect::InspectArgs),
    /// Mint a token shaped like OpenMetadata's (for tests and demos).
    Token(token::TokenArgs),
    /// Probe every key source and the upstream, and lint the configuration.
    Doctor(ConfigArgs),
    /// Exit 0 if /healthz answers 200 (for images without curl).
    Healthcheck(healthcheck::HealthcheckArgs),
    /// The drain view of a running gateway: each key's use and principals in the last 24 h, and
    /// retired kids still presented.
    Keys(keys::KeysArgs),
}

/// `--config` and `--openmetadata-config`, shared by the commands that read configuration.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// The gateway's YAML configuration (or OM_GATEWAY_CONFIG).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An OpenMetadata server configuration (openmetadata.yaml) to take the auth blocks from.
    #[arg(long = "openmetadata-config", value_name = "FILE")]
    pub openmetadata_config: Option<PathBuf>,
}

impl ConfigArgs {
    fn load(&self) -> Result<crate::config::Config, crate::config::ConfigError> {
        crate::config::load_files(
            self.config.as_deref(),
            self.openmetadata_config.as_deref(),
            &crate::config::ProcessEnvironment,
        )
    }
}

/// Parse arguments and run; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                EXIT_INVALID
            } else {
                EXIT_OK
            };
            let _ = error.print();
            return code;
        }
    };
    match cli.command {
        None => run::run(cli.config),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Check(args)) => check::check(args),
        Some(Command::Demo(args)) => demo::demo(args),
        Some(Command::Inspect(args)) => inspect::inspect(args),
        Some(Command::Token(args)) => token::token(args),
        Some(Command::Doctor(args)) => doctor::doctor(args),
        Some(Command::Healthcheck(args)) => healthcheck::healthcheck(args),
        Some(Command::Keys(args)) => keys::keys(args),
    }
}

/// A multi-threaded runtime for the commands that serve or fetch.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Print a configuration error the way every subcommand does.
fn report_config_error(error: &crate::config::ConfigError) -> i32 {
    eprintln!("om-gateway: invalid configuration:");
    for problem in &error.problems {
        eprintln!("  {problem}");
    }
    EXIT_INVALID
}
