//! The opt-in revocation check: does the server itself still accept this token?
//!
//! OpenMetadata rejects tokens that verify: a bot token replaced by "revoke and regenerate"
//! (`JwtFilter.validateBotToken`), a revoked personal access token
//! (`validatePersonalAccessToken`), a logged-out token (`validateTokenIsNotUsedAfterLogout`), a
//! token whose `sessionId` names an ended session (`validateSessionBoundToken`). All of that lives
//! in the server's database, so the gateway asks the server: `GET /api/v1/users/loggedInUser` with
//! the token, the first time it sees the token and then at most once per `recheckInterval`. A 401
//! there is a 401 here; a 2xx is remembered for the interval; anything else (timeout, 5xx, a
//! connection error) is "cannot tell", answered per `onUnavailable` (open by default).
//!
//! Owns the check, its per-token memory (bounded, single-flight per token) and its metric.
//! Leaves the decision to `judge`, which calls it after local verification passed.

use crate::metrics::Metrics;
use crate::proxy::UpstreamConfig;
use crate::verify::{DigestHashing, TokenDigest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The path the check asks.
pub const LOGGED_IN_USER_PATH: &str = "/api/v1/users/loggedInUser";

/// What the configuration says about the check; `config` builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationSettings {
    pub enabled: bool,
    /// How long an answer from the server is trusted for one token.
    pub recheck_interval: Duration,
    /// Bound on one check (connect and answer).
    pub timeout: Duration,
    /// When the server cannot be asked: `true` lets the request pass (logged and counted).
    pub fail_open: bool,
    /// Tokens remembered at once.
    pub max_entries: u64,
}

impl Default for RevocationSettings {
    fn default() -> Self {
        RevocationSettings {
            enabled: false,
            recheck_interval: Duration::from_secs(300),
            timeout: Duration::from_secs(2),
            fail_open: true,
            max_entries: 100_000,
        }
    }
}

/// The server's answer about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The server accepted the token (or could not be asked and the check fails open).
    Accepted,
    /// The server answered 401: revoked, replaced, logged out or its session ended.
    Revoked,
    /// The server could not be asked and the check fails closed.
    Unavailable,
}

/// Why a check could not get an answer (logged, never shown to the client).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the revocation check's client: {0}")]
    Client(#[from] crate::tls::HttpClientError),
    #[error("the server did not answer in time")]
    Timeout,
    #[error("the server answered {0}")]
    Status(u16),
    #[error("request failed: {0}")]
    Transport(String),
}

/// The check of one configuration generation.
pub struct RevocationCheck {
    settings: RevocationSettings,
    client: reqwest::Client,
    url: String,
    /// Token digest → the server's answer, shared by concurrent requests with the same token.
    answers: moka::sync::Cache<TokenDigest, Arc<OnceCell<Standing>>, DigestHashing>,
    metrics: Arc<Metrics>,
}

impl RevocationCheck {
    /// `None` when the check is off.
    pub fn new(
        settings: &RevocationSettings,
        upstream: &UpstreamConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Option<RevocationCheck>, CheckError> {
        if !settings.enabled {
            return Ok(None);
        }
        let tls =
            crate::tls::client_config(upstream.ca_file.as_deref(), upstream.insecure_skip_verify)
                .map_err(crate::tls::HttpClientError::from)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .user_agent(concat!(
                "om-gateway/",
                env!("CARGO_PKG_VERSION"),
                " revocation-check"
            ))
            .build()
            .map_err(crate::tls::HttpClientError::from)?;
        Ok(Some(RevocationCheck {
            url: format!(
                "{}{LOGGED_IN_USER_PATH}",
                upstream.url.to_string().trim_end_matches('/')
            ),
            client,
            answers: moka::sync::Cache::builder()
                .max_capacity(settings.max_entries)
                .time_to_live(settings.recheck_interval)
                .build_with_hasher(DigestHashing),
            settings: settings.clone(),
            metrics,
        }))
    }

    /// The server's standing of `token`: remembered for `recheckInterval`, asked at most once at
    /// a time per token. An answer "cannot tell" is not remembered, so the next request asks again.
    pub async fn standing(&self, token: &str, digest: &TokenDigest) -> Standing {
        let cell = self.answers.get_with(*digest, || Arc::new(OnceCell::new()));
        let asked = cell.get_or_try_init(|| self.ask(token)).await;
        match asked {
            Ok(standing) => *standing,
            Err(error) => {
                self.answers.invalidate(digest);
                let counted = if self.settings.fail_open {
                    "unavailable_open"
                } else {
                    "unavailable_closed"
                };
                self.count(counted);
                tracing::warn!(%error, fail_open = self.settings.fail_open, "revocation check: cannot ask the server");
                if self.settings.fail_open {
                    Standing::Accepted
                } else {
                    Standing::Unavailable
                }
            }
        }
    }

    async fn ask(&self, token: &str) -> Result<Standing, CheckError> {
        let sent = self.client.get(&self.url).bearer_auth(token).send().await;
        let response = match sent {
            Ok(response) => response,
            Err(error) if error.is_timeout() => return Err(CheckError::Timeout),
            Err(error) => return Err(CheckError::Transport(crate::causes::describe_chain(&error))),
        };
        let status = response.status();
        if status.is_success() {
            self.count("accepted");
            return Ok(Standing::Accepted);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            self.count("revoked");
            return Ok(Standing::Revoked);
        }
        Err(CheckError::Status(status.as_u16()))
    }

    fn count(&self, result: &str) {
        self.metrics
            .revocation_checks_total
            .with_label_values(&[result])
            .inc();
    }
}
