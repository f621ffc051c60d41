//! Following the running OpenMetadata server's security settings.
//!
//! OpenMetadata 2.x keeps its authentication and authorizer settings in its database, edited in
//! its UI; openmetadata.yaml only seeds them. A `Follower` reads what the server publishes at
//! `upstream.url` (`read.rs`, `documents.rs`): the public `/api/v1/system/config/auth` and
//! `/authorizer`, and, with a credential, the admin-only `/api/v1/system/security/config`. It
//! reads at start, in the background, then every `openmetadata.followInterval`, revalidating
//! with the ETag the server sent. A good answer that changes something is layered onto the
//! file/environment configuration (`Config::with_published`) and handed to an `Apply` — the
//! server's SIGHUP path (`server::reload_with`). Any bad answer (unreachable, 5xx, HTML, invalid
//! JSON, over 1 MiB, values that fail validation) changes nothing: it is logged, counted in
//! `om_gateway_server_config_reads_total{result}` and shown by `status_json` (in `/readyz`).
//!
//! Depends on `config` (types and layering), `tls` (the client), `metrics` and `causes`; never on
//! `server`, which implements `Apply`.

pub mod documents;
pub mod read;
mod status;

use crate::config::published::{
    PublishedSettings, AUTHORIZER_ENDPOINT, AUTH_ENDPOINT, SECURITY_ENDPOINT,
};
use crate::config::{Config, UpstreamConfig};
use crate::metrics::Metrics;
use read::{Fetched, ReadError};
use status::{changed_keys, unix_seconds, Status};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Swaps a new configuration in, as a SIGHUP reload does (`server` implements it).
pub trait Apply: Send + Sync {
    type Error: std::fmt::Display;
    fn apply(&self, config: Config) -> Result<(), Self::Error>;
}

/// The follower of one running gateway: the configuration the operator gave (the base), the
/// server's settings last applied on top of it, and what the last reads found.
pub struct Follower {
    metrics: Arc<Metrics>,
    state: Mutex<State>,
}

struct State {
    base: Arc<Config>,
    /// The published settings layered into the running configuration.
    applied: PublishedSettings,
    /// Per endpoint: the ETag and the settings of the last good document.
    cache: HashMap<&'static str, (Option<String>, PublishedSettings)>,
    client: Option<(ClientKey, reqwest::Client)>,
    status: Status,
}

/// The upstream settings a client was built for; a reload that changes them gets a new client.
#[derive(Clone, PartialEq)]
struct ClientKey {
    ca_file: Option<std::path::PathBuf>,
    insecure_skip_verify: bool,
    connect_timeout: Duration,
}

/// The server's settings, read once (`check`, `doctor`).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub settings: PublishedSettings,
    /// The endpoints read, in order.
    pub endpoints: Vec<&'static str>,
    /// Why the admin endpoint was not read, when it was not.
    pub admin_skipped: Option<String>,
}

impl Follower {
    pub fn new(base: Arc<Config>, metrics: Arc<Metrics>) -> Arc<Follower> {
        Arc::new(Follower {
            metrics,
            state: Mutex::new(State {
                base,
                applied: PublishedSettings::default(),
                cache: HashMap::new(),
                client: None,
                status: Status::default(),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Read, apply, wait `followInterval`, forever (abort the task to stop). Disabled following
    /// only waits: a reload may turn it on.
    pub async fn run<A: Apply>(self: Arc<Self>, apply: A) {
        loop {
            self.poll(&apply).await;
            let interval = self.state().base.follow.interval;
            tokio::time::sleep(interval).await;
        }
    }

    /// One cycle: read every endpoint; on a good answer that changes something, apply it.
    pub async fn poll<A: Apply>(&self, apply: &A) {
        let (base, client, etags) = {
            let mut state = self.state();
            if !state.base.follow.enabled {
                return;
            }
            let client = match state.client_for() {
                Ok(client) => client,
                Err(error) => {
                    drop(state);
                    self.fail(ReadError::Transport {
                        endpoint: AUTH_ENDPOINT,
                        message: error.to_string(),
                    });
                    return;
                }
            };
            let etags: HashMap<&'static str, Option<String>> = state
                .cache
                .iter()
                .map(|(endpoint, (etag, _))| (*endpoint, etag.clone()))
                .collect();
            (state.base.clone(), client, etags)
        };
        let read = read_all(&client, &base, |endpoint| {
            etags.get(endpoint).cloned().flatten()
        })
        .await;
        let outcomes = match read {
            Ok(outcomes) => outcomes,
            Err(error) => return self.fail(error),
        };
        let mut state = self.state();
        let mut documents = Vec::new();
        let mut all_not_modified = true;
        for (endpoint, fetched) in &outcomes {
            match fetched {
                Outcome::Fresh(settings, _) => {
                    all_not_modified = false;
                    documents.push(settings.as_ref().clone());
                }
                Outcome::NotModified => match state.cache.get(endpoint) {
                    Some((_, settings)) => documents.push(settings.clone()),
                    None => {
                        drop(state);
                        return self.fail(ReadError::Invalid {
                            endpoint,
                            message: "304 Not Modified for a document never read".into(),
                        });
                    }
                },
            }
        }
        let published = documents::merge(&documents);
        if published != state.applied {
            // Layered onto the current base, under the lock a reload also takes, so a SIGHUP
            // between the read and here is never undone.
            let layered = match state.base.with_published(&published) {
                Ok(layered) => layered,
                Err(error) => {
                    drop(state);
                    return self.fail(ReadError::InvalidValues(
                        error.to_string().replace('\n', "; "),
                    ));
                }
            };
            if let Err(error) = apply.apply(layered) {
                drop(state);
                return self.fail(ReadError::ApplyFailed(error.to_string()));
            }
            tracing::info!(
                changed = %changed_keys(&state.applied, &published).join(", "),
                "following OpenMetadata's published settings"
            );
            state.applied = published;
        }
        for (endpoint, fetched) in outcomes {
            if let Outcome::Fresh(settings, etag) = fetched {
                state.cache.insert(endpoint, (etag, *settings));
            }
        }
        let now = SystemTime::now();
        let result = if all_not_modified {
            "not_modified"
        } else {
            "ok"
        };
        state.status.attempts += 1;
        state.status.last_attempt = Some(now);
        state.status.last_success = Some(now);
        if state.status.last_error.take().is_some() {
            tracing::info!("OpenMetadata's published settings are readable again");
        }
        state.status.consecutive_failures = 0;
        state.status.endpoints = endpoints_read(&base)
            .into_iter()
            .map(|endpoint| (endpoint, result))
            .collect();
        drop(state);
        self.metrics
            .server_config_reads_total
            .with_label_values(&[result])
            .inc();
        self.metrics
            .server_config_last_success_timestamp_seconds
            .set(unix_seconds(now) as f64);
    }

    /// Record a cycle that changed nothing.
    fn fail(&self, error: ReadError) {
        let label = error.label();
        let message = redact_userinfo(&error.to_string(), &self.state().base.upstream);
        {
            let mut state = self.state();
            let repeated = state.status.last_error.as_deref() == Some(message.as_str());
            if repeated {
                tracing::debug!(reason = %message, "cannot follow OpenMetadata's settings; keeping the last good ones");
            } else {
                tracing::warn!(reason = %message, "cannot follow OpenMetadata's settings; keeping the last good ones");
            }
            state.status.attempts += 1;
            state.status.last_attempt = Some(SystemTime::now());
            state.status.consecutive_failures += 1;
            state.status.last_error = Some(message);
            let failed = error_endpoint(&error);
            state.status.endpoints = endpoints_read(&state.base)
                .into_iter()
                .map(|endpoint| (endpoint, if Some(endpoint) == failed { label } else { "-" }))
                .collect();
        }
        self.metrics
            .server_config_reads_total
            .with_label_values(&[label])
            .inc();
    }

    /// A SIGHUP reload: `base` is the new file/environment configuration; the server's settings
    /// last read are layered onto it before it is applied. If the layering fails (the new file
    /// makes them unusable) the base is applied alone and the next read tries again.
    pub fn rebase<A: Apply>(&self, base: Config, apply: &A) -> Result<(), A::Error> {
        let mut state = self.state();
        let layered = if base.follow.enabled && !state.applied.is_empty() {
            match base.with_published(&state.applied) {
                Ok(layered) => Some(layered),
                Err(error) => {
                    tracing::warn!(%error, "the server's settings do not fit the reloaded configuration; applying it without them");
                    None
                }
            }
        } else {
            None
        };
        let keeps_published = layered.is_some();
        apply.apply(layered.unwrap_or_else(|| base.clone()))?;
        if !keeps_published {
            state.applied = PublishedSettings::default();
        }
        state.base = Arc::new(base);
        Ok(())
    }

    /// The follower's state for `/readyz`: never a credential, never a whole document.
    pub fn status_json(&self) -> serde_json::Value {
        let state = self.state();
        status::to_json(&state.base, &state.status, &state.applied, |endpoint| {
            state
                .cache
                .get(endpoint)
                .is_some_and(|(etag, _)| etag.is_some())
        })
    }
}

impl State {
    /// The client for the current upstream settings, built again when they changed.
    fn client_for(&mut self) -> Result<reqwest::Client, crate::tls::HttpClientError> {
        let upstream = &self.base.upstream;
        let key = ClientKey {
            ca_file: upstream.ca_file.clone(),
            insecure_skip_verify: upstream.insecure_skip_verify,
            connect_timeout: upstream.connect_timeout,
        };
        if let Some((built_for, client)) = &self.client {
            if *built_for == key {
                return Ok(client.clone());
            }
        }
        let client = build_client(upstream)?;
        self.client = Some((key, client.clone()));
        Ok(client)
    }
}

/// A client for the upstream: its TLS settings, no redirects (a redirect here is a login page),
/// no connection reuse beyond the client's own pool.
pub fn build_client(
    upstream: &UpstreamConfig,
) -> Result<reqwest::Client, crate::tls::HttpClientError> {
    let tls =
        crate::tls::client_config(upstream.ca_file.as_deref(), upstream.insecure_skip_verify)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(upstream.connect_timeout)
        .user_agent(concat!("om-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(crate::tls::HttpClientError::from)
}

/// Read the server's settings once, with `config`'s upstream, credential and timeouts.
pub async fn read_once(config: &Config) -> Result<Snapshot, ReadError> {
    let client = build_client(&config.upstream).map_err(|error| ReadError::Transport {
        endpoint: AUTH_ENDPOINT,
        message: error.to_string(),
    })?;
    let outcomes = read_all(&client, config, |_| None).await?;
    let endpoints: Vec<&'static str> = outcomes.iter().map(|(endpoint, _)| *endpoint).collect();
    let documents: Vec<PublishedSettings> = outcomes
        .into_iter()
        .filter_map(|(_, outcome)| match outcome {
            Outcome::Fresh(settings, _) => Some(*settings),
            Outcome::NotModified => None,
        })
        .collect();
    Ok(Snapshot {
        settings: documents::merge(&documents),
        admin_skipped: config
            .follow
            .token
            .is_none()
            .then(|| "no openmetadata.followToken or OM_GATEWAY_FOLLOW_TOKEN".to_string()),
        endpoints,
    })
}

enum Outcome {
    Fresh(Box<PublishedSettings>, Option<String>),
    NotModified,
}

/// The endpoints a cycle reads: the admin one only with a credential.
fn endpoints_read(config: &Config) -> Vec<&'static str> {
    let mut endpoints = vec![AUTH_ENDPOINT, AUTHORIZER_ENDPOINT];
    if config.follow.token.is_some() {
        endpoints.push(SECURITY_ENDPOINT);
    }
    endpoints
}

/// Read every endpoint in order; the first failure fails the cycle (a partial answer is not
/// applied).
async fn read_all(
    client: &reqwest::Client,
    config: &Config,
    etag_of: impl Fn(&'static str) -> Option<String>,
) -> Result<Vec<(&'static str, Outcome)>, ReadError> {
    let base = base_url(&config.upstream);
    let timeout = config.jwks.fetch_timeout;
    let mut outcomes = Vec::new();
    for endpoint in endpoints_read(config) {
        let token = if endpoint == SECURITY_ENDPOINT {
            match &config.follow.token {
                Some(token) => Some(
                    token
                        .read()
                        .map_err(|error| ReadError::Credential(error.to_string()))?,
                ),
                None => None,
            }
        } else {
            None
        };
        let etag = etag_of(endpoint);
        let fetched = read::get(
            client,
            &base,
            endpoint,
            etag.as_deref(),
            token.as_ref().map(|token| token.expose()),
            timeout,
        )
        .await?;
        let outcome = match fetched {
            Fetched::NotModified if etag.is_some() => Outcome::NotModified,
            Fetched::NotModified => {
                return Err(ReadError::Invalid {
                    endpoint,
                    message: "304 Not Modified to a request without If-None-Match".into(),
                })
            }
            Fetched::Document { value, etag } => {
                let parse = match endpoint {
                    AUTH_ENDPOINT => documents::auth,
                    AUTHORIZER_ENDPOINT => documents::authorizer,
                    _ => documents::security,
                };
                let settings = parse(&value).map_err(|error| ReadError::Invalid {
                    endpoint,
                    message: error.0,
                })?;
                Outcome::Fresh(Box::new(settings), etag)
            }
        };
        outcomes.push((endpoint, outcome));
    }
    Ok(outcomes)
}

pub(crate) fn base_url(upstream: &UpstreamConfig) -> String {
    upstream.url.to_string().trim_end_matches('/').to_string()
}

/// Replace the upstream URL's userinfo (`user:password@`) wherever `text` repeats it.
pub(crate) fn redact_userinfo(text: &str, upstream: &UpstreamConfig) -> String {
    match upstream
        .url
        .authority()
        .and_then(|authority| authority.as_str().rsplit_once('@'))
    {
        Some((userinfo, _)) if !userinfo.is_empty() => {
            text.replace(&format!("{userinfo}@"), "<redacted>@")
        }
        _ => text.to_string(),
    }
}

fn error_endpoint(error: &ReadError) -> Option<&'static str> {
    match error {
        ReadError::Transport { endpoint, .. }
        | ReadError::Timeout { endpoint, .. }
        | ReadError::Status { endpoint, .. }
        | ReadError::Unauthorized { endpoint, .. }
        | ReadError::NotJson { endpoint, .. }
        | ReadError::TooLarge { endpoint }
        | ReadError::Invalid { endpoint, .. } => Some(endpoint),
        ReadError::Credential(_) => Some(SECURITY_ENDPOINT),
        ReadError::InvalidValues(_) | ReadError::ApplyFailed(_) => None,
    }
}
