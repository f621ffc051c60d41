//! Configuration: the YAML file, OpenMetadata's own openmetadata.yaml, environment variables,
//! merged, validated and typed once at load.
//!
//! Owns: `Config` (what the rest of the gateway reads), `ConfigError` (every problem, each with
//! file, line, key path and reason), where each value came from (`provenance`), and how the
//! running server's published settings are layered in (`published`, which `follow` calls).
//! Leaves to `policy` the meaning of routes it compiles.

mod drift;
pub mod duration;
pub mod env;
pub mod feed_key;
pub mod lines;
pub mod openmetadata;
pub mod provenance;
pub mod published;
pub mod raw;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

use crate::policy::{PathRule, RouteRule};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::jwks::{JwksConfig, KeyFileConfig, KeySourceConfig};
pub use crate::proxy::UpstreamConfig;
pub use crate::telemetry::LogFormat;
pub use crate::verify::ExpiryPolicy;
pub use env::{Environment, ProcessEnvironment, KNOWN_VARIABLES};
pub use feed_key::{FeedConfig, FeedKey};
pub use provenance::{Origin, Provenance};
pub use published::PublishedSettings;

/// The validated configuration. Built only by [`load`]; the request path never parses strings.
#[derive(Debug, Clone)]
pub struct Config {
    pub startup: StartupConfig,
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub auth: AuthConfig,
    pub authorizer: AuthorizerConfig,
    pub jwks: JwksConfig,
    pub token_cache: TokenCacheConfig,
    pub forward_auth_path: String,
    pub public_paths: Vec<PathRule>,
    pub default_public_paths: bool,
    pub routes: Vec<RouteRule>,
    pub default_route: RouteRule,
    /// The activity feed's cookie keys (read from their files at load).
    pub feed: FeedConfig,
    /// The file this came from, for SIGHUP reloads and messages.
    pub source_file: Option<PathBuf>,
    pub openmetadata_file: Option<PathBuf>,
    pub openmetadata: OpenMetadataConfig,
    pub revocation: crate::revocation::RevocationSettings,
    /// Following the running server's published security settings (`openmetadata.follow*`).
    pub follow: FollowConfig,
    /// Where each value came from.
    pub provenance: Provenance,
    /// What this configuration was built from, so the server's settings can be layered in
    /// (`Config::with_published`) exactly as a load would build them.
    pub(crate) layers: std::sync::Arc<validate::Layers>,
}

/// How the gateway follows the OpenMetadata server's published settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowConfig {
    /// `openmetadata.followServerConfig`; when unset, on exactly when no key source (publicKeyUrls,
    /// keySources, publicKeyFiles) is set in the gateway's file or environment.
    pub enabled: bool,
    /// `openmetadata.followInterval` (default 60s).
    pub interval: Duration,
    /// A credential for the admin-only `/api/v1/system/security/config`.
    pub token: Option<FollowToken>,
}

/// Where the follow credential comes from. Read again before every use, so a rotated file is
/// picked up without a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowToken {
    File(PathBuf),
    /// `OM_GATEWAY_FOLLOW_TOKEN`.
    Env(Secret),
}

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why the follow credential could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FollowTokenError {
    #[error("cannot read the follow token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the follow token file {0} is empty")]
    Empty(PathBuf),
}

impl FollowToken {
    /// The bearer token, read now (a file is read on every call).
    pub fn read(&self) -> Result<Secret, FollowTokenError> {
        match self {
            FollowToken::Env(secret) => Ok(secret.clone()),
            FollowToken::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| FollowTokenError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let token = text.trim();
                let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
                if token.is_empty() {
                    return Err(FollowTokenError::Empty(path.clone()));
                }
                Ok(Secret::new(token))
            }
        }
    }

    /// Where it comes from, for messages (never the token).
    pub fn describe(&self) -> String {
        match self {
            FollowToken::File(path) => format!("file {}", path.display()),
            FollowToken::Env(_) => "env OM_GATEWAY_FOLLOW_TOKEN".into(),
        }
    }
}

/// OpenMetadata's own signing identity (`jwtTokenConfiguration`) and whether its key is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMetadataConfig {
    /// The upstream's `/api/v1/system/config/jwks` (and the public key file, when readable) is a
    /// key source bound to `issuer`, as the server's `LocalJwkProvider` always trusts its own key.
    pub trust_server_key: bool,
    pub issuer: String,
    pub key_id: String,
    pub public_key_file: Option<PathBuf>,
}

/// The `server` settings read once at start: listeners, TLS files, workers, connection limits,
/// log format. A reload cannot change them; it keeps the running values and warns about each one
/// the new file changes (`StartupConfig::changed`).
#[derive(Debug, Clone, PartialEq)]
pub struct StartupConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub max_header_bytes: usize,
    /// Time allowed for a request head to arrive, and for an idle HTTP/1 keep-alive connection
    /// to send its next request (slowloris protection).
    pub header_read_timeout: Duration,
    /// Client connections served at once; further connections wait in the listen backlog.
    pub max_connections: usize,
    /// Threads serving client connections, each with its own event loop and upstream pool.
    pub workers: usize,
    pub shutdown_grace_period: Duration,
    pub log_format: LogFormat,
}

/// The `server` settings a reload may change: they are read per request.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub request_timeout: Duration,
    /// Longest request target (path and query) answered; longer gets 414.
    pub max_uri_bytes: usize,
    /// One JSON line per request on target `om_gateway::access`.
    pub access_log: bool,
    /// Paths (normalised) where a WebSocket handshake may become a tunnel; any other upgrade
    /// request is served as a plain one. Default: the activity feed.
    pub websocket_paths: Vec<PathRule>,
}

impl StartupConfig {
    /// The keys whose value differs in `other`, as written in the file.
    pub fn changed(&self, other: &StartupConfig) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |differs: bool, key: &'static str| {
            if differs {
                changed.push(key);
            }
        };
        check(self.listen != other.listen, "server.listen");
        check(
            self.admin_listen != other.admin_listen,
            "server.adminListen",
        );
        check(self.tls != other.tls, "server.tls");
        check(
            self.max_header_bytes != other.max_header_bytes,
            "server.maxHeaderBytes",
        );
        check(
            self.header_read_timeout != other.header_read_timeout,
            "server.headerReadTimeout",
        );
        check(
            self.max_connections != other.max_connections,
            "server.maxConnections",
        );
        check(self.workers != other.workers, "server.workers");
        check(
            self.shutdown_grace_period != other.shutdown_grace_period,
            "server.shutdownGracePeriod",
        );
        check(self.log_format != other.log_format, "server.logFormat");
        changed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// How often the files are checked for changes.
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub provider: String,
    /// Every key URL: `publicKeyUrls` (unbound) and `keySources` (possibly bound), deduplicated.
    pub key_sources: Vec<KeySourceConfig>,
    pub key_files: Vec<KeyFileConfig>,
    pub principal_claims: Vec<String>,
    /// `jwtPrincipalClaimsMapping`, validated as the server validates it.
    pub principal_claims_mapping: Option<crate::verify::PrincipalMapping>,
    pub token_validation_algorithm: jsonwebtoken::Algorithm,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub clock_skew: Duration,
    pub allow_tokens_without_expiry: ExpiryPolicy,
    pub roles_claim: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    pub admin_principals: Vec<String>,
    pub principal_domain: String,
    pub enforce_principal_domain: bool,
    pub allowed_domains: Vec<String>,
    /// `useRolesFromProvider`: the server takes a non-bot's roles from the token's `roles`.
    pub use_roles_from_provider: bool,
}

#[derive(Debug, Clone)]
pub struct TokenCacheConfig {
    pub max_entries: u64,
    pub ttl: Duration,
}

/// The text of one configuration input and the name to report it by.
#[derive(Debug, Clone)]
pub struct ConfigText {
    pub name: String,
    pub text: String,
}

/// Everything a load reads: both files (optional) and the environment, passed in so that tests
/// never touch the process environment.
pub struct LoadInput<'a> {
    pub gateway_file: Option<ConfigText>,
    pub openmetadata_file: Option<ConfigText>,
    pub environment: &'a dyn Environment,
}

/// One thing wrong with the configuration, located as precisely as the input allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub key: String,
    pub message: String,
}

/// Every problem found in one load; `Display` prints one per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
            if let Some(line) = self.line {
                write!(f, "{line}:")?;
                if let Some(column) = self.column {
                    write!(f, "{column}:")?;
                }
            }
            write!(f, " ")?;
        }
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn single(file: Option<&str>, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![ConfigProblem {
                file: file.map(str::to_string),
                line: None,
                column: None,
                key: key.to_string(),
                message: message.into(),
            }],
        }
    }
}

/// Read, merge and validate every input. Reports all problems found, not only the first.
pub fn load(input: LoadInput<'_>) -> Result<Config, ConfigError> {
    validate::load(input)
}

/// Read the files named on the command line (or by `OM_GATEWAY_CONFIG`) and load them with the
/// process environment. Used by every subcommand that takes `--config`.
pub fn load_files(
    gateway_file: Option<&std::path::Path>,
    openmetadata_file: Option<&std::path::Path>,
    environment: &dyn Environment,
) -> Result<Config, ConfigError> {
    let read = |path: &std::path::Path| -> Result<ConfigText, ConfigError> {
        let name = path.display().to_string();
        std::fs::read_to_string(path)
            .map(|text| ConfigText {
                name: name.clone(),
                text,
            })
            .map_err(|error| ConfigError::single(Some(&name), "", format!("cannot read: {error}")))
    };
    let gateway_path = gateway_file
        .map(std::path::Path::to_path_buf)
        .or_else(|| environment.var("OM_GATEWAY_CONFIG").map(PathBuf::from));
    let openmetadata_path = openmetadata_file
        .map(std::path::Path::to_path_buf)
        .or_else(|| {
            environment
                .var("OM_GATEWAY_OPENMETADATA_CONFIG")
                .map(PathBuf::from)
        });
    let input = LoadInput {
        gateway_file: gateway_path.as_deref().map(read).transpose()?,
        openmetadata_file: openmetadata_path.as_deref().map(read).transpose()?,
        environment,
    };
    let mut config = load(input)?;
    config.source_file = gateway_path;
    config.openmetadata_file = openmetadata_path;
    Ok(config)
}

/// serde-saphyr's message for a YAML error, without the position it also prints (our problems
/// carry file, line and column themselves): `error: line 5 column 14: unknown field` → `unknown field`.
pub(crate) fn yaml_error_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let mut message = text.lines().next().unwrap_or(&text).trim();
    message = message
        .strip_prefix("error:")
        .unwrap_or(message)
        .trim_start();
    if let Some(rest) = message.strip_prefix("line ") {
        // `line N column M: ...`
        if let Some((position, after)) = rest.split_once(": ") {
            if position
                .split_whitespace()
                .all(|word| word == "column" || word.bytes().all(|b| b.is_ascii_digit()))
            {
                message = after;
            }
        }
    }
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_string(),
        None => message.to_string(),
    }
}
