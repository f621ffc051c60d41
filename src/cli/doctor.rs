//! `om-gateway doctor`: probe every key source and the upstream, and lint the configuration.
//! Exit 0 when no problem was found, 1 otherwise; warnings print but do not change the exit code.

use super::{report_config_error, ConfigArgs, EXIT_FAILURE, EXIT_OK};
use crate::config::Config;
use crate::jwks::KeyStore;
use crate::metrics::Metrics;
use std::sync::Arc;

/// OpenMetadata's quickstart key: its private half ships with OpenMetadata, so anyone can mint
/// tokens it verifies. Matched by modulus, whatever kid a source gives it.
const OPENMETADATA_DEFAULT_KEY: &[u8] =
    include_bytes!("../jwks/openmetadata-default-public-key.pem");

/// What `doctor` found: problems fail the run, warnings do not.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
}

pub fn doctor(args: ConfigArgs) -> i32 {
    let config = match args.load() {
        Ok(config) => config,
        Err(error) => return report_config_error(&error),
    };
    let Ok(runtime) = super::runtime() else {
        return EXIT_FAILURE;
    };
    let mut findings = runtime.block_on(examine(&config, running_in_container()));
    match lint_feed_key(&config.feed, running_in_kubernetes()) {
        Ok(note) => findings.notes.push(note),
        Err(Warning(warning)) => findings.warnings.push(warning),
    }
    for note in &findings.notes {
        println!("ok       {note}");
    }
    for warning in &findings.warnings {
        println!("WARNING  {warning}");
    }
    for problem in &findings.problems {
        println!("PROBLEM  {problem}");
    }
    if findings.problems.is_empty() {
        println!(
            "doctor: no problem found ({} warnings)",
            findings.warnings.len()
        );
        EXIT_OK
    } else {
        println!(
            "doctor: {} problems, {} warnings",
            findings.problems.len(),
            findings.warnings.len()
        );
        EXIT_FAILURE
    }
}

/// Probe and lint; `in_container` decides whether localhost key URLs are suspicious.
pub async fn examine(config: &Config, in_container: bool) -> Findings {
    let mut findings = Findings::default();
    let metrics = match Metrics::new() {
        Ok(metrics) => Arc::new(metrics),
        Err(error) => {
            findings.problems.push(format!("metrics: {error}"));
            return findings;
        }
    };
    let key_store = match KeyStore::new(
        &config.auth.key_sources,
        &config.auth.key_files,
        config.jwks.clone(),
        metrics,
    ) {
        Ok(store) => store,
        Err(error) => {
            findings.problems.push(error.to_string());
            return findings;
        }
    };
    key_store.refresh_all_now().await;
    let statuses = key_store.status();
    for status in &statuses {
        let url = &status.url;
        if status.keys == 0 {
            findings.problems.push(format!(
                "{url}: no usable key ({})",
                status
                    .last_error
                    .clone()
                    .unwrap_or_else(|| status.skipped_keys.join("; "))
            ));
        } else {
            let tls = if url.starts_with("https://") {
                "TLS verified, "
            } else {
                ""
            };
            findings.notes.push(format!(
                "{url}: {tls}{} keys, kids [{}]",
                status.keys,
                status.kids.join(", ")
            ));
        }
        for skipped in &status.skipped_keys {
            findings
                .warnings
                .push(format!("{url}: key skipped: {skipped}"));
        }
        if let Some(skew) = status.date_header.as_deref().and_then(clock_skew_seconds) {
            match judge_clock_skew(url, skew, config.auth.clock_skew) {
                Ok(note) => findings.notes.push(note),
                Err(Warning(warning)) => findings.warnings.push(warning),
            }
        }
        let audience_bound = !status.audiences.is_empty() || !config.auth.audiences.is_empty();
        findings
            .warnings
            .extend(lint_key_url(url, audience_bound, in_container));
    }
    for key in key_store.all_keys() {
        if is_openmetadata_default_key(&key.key) {
            findings.warnings.push(format!(
                "{}: serves OpenMetadata's publicly known default development key (kid {}): anyone can mint tokens it verifies; configure jwtTokenConfiguration with your own key pair",
                key.binding.url, key.key.kid.as_deref().unwrap_or("-")
            ));
        }
    }
    if config.upstream.insecure_skip_verify {
        findings.warnings.push(
            "upstream.tls.insecureSkipVerify is on: the upstream's certificate is not checked"
                .into(),
        );
    }
    probe_upstream(config, &mut findings).await;
    compare_with_server(config, &mut findings).await;
    findings
}

/// Read OpenMetadata's published settings and print each value that differs from the gateway's
/// (from its file, environment and openmetadata.yaml, before any following). Differences and an
/// unreadable server are warnings: the gateway still serves with its own values.
async fn compare_with_server(config: &Config, findings: &mut Findings) {
    let following = config.follow.enabled;
    let snapshot = match crate::follow::read_once(config).await {
        Ok(snapshot) => snapshot,
        Err(error) => {
            let message = format!("OpenMetadata's published settings: cannot be read: {error}");
            if following {
                findings.warnings.push(format!(
                    "{message}; a running gateway keeps its own values meanwhile"
                ));
            } else {
                findings.notes.push(message);
            }
            return;
        }
    };
    let differences = crate::config::published::drift(config, &snapshot.settings);
    for difference in &differences {
        let what_happens = if difference.origin.is_explicit() {
            "the gateway keeps its own value (set explicitly)".to_string()
        } else if following {
            "a running gateway follows the server".to_string()
        } else {
            "following is off (openmetadata.followServerConfig), so the gateway keeps its own"
                .to_string()
        };
        findings.warnings.push(format!(
            "drift: {}: gateway {} ({}), server {} ({}); {what_happens}",
            difference.key,
            difference.gateway,
            difference.origin,
            difference.server,
            difference.endpoint
        ));
    }
    if differences.is_empty() {
        findings.notes.push(format!(
            "OpenMetadata's published settings ({}): no difference from the gateway's",
            snapshot.endpoints.join(", ")
        ));
    }
    if let Some(reason) = snapshot.admin_skipped {
        findings.notes.push(format!("the admin-only /api/v1/system/security/config was not read ({reason}): publicKeyUrls, enforcePrincipalDomain, allowedDomains and adminPrincipals not compared"));
    }
}

async fn probe_upstream(config: &Config, findings: &mut Findings) {
    let base = config.upstream.url.to_string();
    let url = format!("{}/api/v1/system/version", base.trim_end_matches('/'));
    let client = match crate::jwks::fetch::build_client(
        config
            .upstream
            .connect_timeout
            .max(std::time::Duration::from_secs(2)),
        config.upstream.ca_file.as_deref(),
    ) {
        Ok(client) => client,
        Err(error) => {
            findings.problems.push(format!("upstream {base}: {error}"));
            return;
        }
    };
    match client.get(&url).send().await {
        Ok(response) => findings.notes.push(format!(
            "upstream {base}: reachable ({} on /api/v1/system/version)",
            response.status()
        )),
        Err(error) => findings
            .problems
            .push(format!("upstream {base}: unreachable: {error}")),
    }
}

/// A finding `doctor` prints as a warning (it does not change the exit code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Warning(pub String);

/// A note naming where the feed cookie key comes from, or a warning when none is configured:
/// then every process draws its own, and a feed reconnect that lands on another replica gets
/// 401. Doctor cannot count replicas; in Kubernetes, where deploy/ runs two or more (its
/// HorizontalPodAutoscaler), the warning says so.
pub fn lint_feed_key(
    feed: &crate::config::FeedConfig,
    in_kubernetes: bool,
) -> Result<String, Warning> {
    let describe =
        |key: &crate::config::FeedKey| format!("{} bytes from {}", key.bytes().len(), key.origin);
    match (&feed.key, &feed.previous_key) {
        (Some(key), None) => Ok(format!("feed cookie key: {}", describe(key))),
        (Some(key), Some(previous)) => Ok(format!(
            "feed cookie key: {}; previous key, still accepted: {}",
            describe(key),
            describe(previous)
        )),
        (None, _) => {
            let context = if in_kubernetes {
                "this runs in Kubernetes, where deploy/ scales the gateway to two or more replicas: "
            } else {
                "with more than one replica, "
            };
            Err(Warning(format!("feed: no feed cookie key configured (feed.keyFile, OM_GATEWAY_FEED_KEY or OM_GATEWAY_FEED_KEY_FILE), so each process draws a random one; {context}a feed reconnect that lands on another replica gets 401 and the UI's activity feed stops until the next page load. Give every replica the same key (at least 32 random bytes, e.g. `openssl rand -base64 32`, from a Secret)")))
        }
    }
}

/// Is this OpenMetadata's default development key? Compared by modulus, so a source that serves
/// it under another kid (or in another document form) is still recognised.
pub fn is_openmetadata_default_key(key: &crate::jwks::ParsedKey) -> bool {
    let default_modulus = crate::jwks::parse::parse_pem(OPENMETADATA_DEFAULT_KEY, None)
        .ok()
        .and_then(|default| default.modulus);
    default_modulus.is_some() && key.modulus == default_modulus
}

/// Warnings about a key URL itself, whatever it serves: a `localhost` URL inside a container (it
/// names the container, not OpenMetadata), and a Google key URL with no audience bound (Google
/// signs tokens for every Google client, so without `aud` any Google account's token would pass).
pub fn lint_key_url(url: &str, audience_bound: bool, in_container: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    let host = url_host(url);
    let loopback = matches!(host.as_str(), "localhost" | "[::1]" | "::1")
        || host.starts_with("127.")
        || host.ends_with(".localhost");
    if in_container && loopback {
        warnings.push(format!("{url}: a localhost key URL inside a container points at the container itself, not at OpenMetadata; use the OpenMetadata service name"));
    }
    let google = host == "googleapis.com" || host.ends_with(".googleapis.com");
    if google && !audience_bound {
        warnings.push(format!("{url}: Google keys sign tokens for every Google client; bind this source to your client id with keySources[].audiences (or set audiences)"));
    }
    warnings
}

/// The lower-cased host of `url`, without port or user info; empty when there is none.
fn url_host(url: &str) -> String {
    let authority = url
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = if host_port.starts_with('[') {
        host_port
            .find(']')
            .and_then(|end| host_port.get(..=end))
            .unwrap_or(host_port)
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.to_ascii_lowercase()
}

/// A note when a source's clock agrees with ours within `allowed`, a warning otherwise: tokens
/// it issues would look expired or not yet valid.
pub fn judge_clock_skew(
    url: &str,
    skew_seconds: i64,
    allowed: std::time::Duration,
) -> Result<String, Warning> {
    if skew_seconds.unsigned_abs() > allowed.as_secs() {
        Err(Warning(format!(
            "{url}: its clock differs from ours by {skew_seconds}s (Date header), more than clockSkew {}s",
            allowed.as_secs()
        )))
    } else {
        Ok(format!("{url}: clock skew {skew_seconds}s"))
    }
}

/// Seconds between a peer's `Date` header and our clock (positive: theirs is ahead).
pub fn clock_skew_seconds(date: &str) -> Option<i64> {
    let theirs = parse_http_date(date)?;
    let ours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    Some(theirs - ours)
}

/// RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`, as Unix seconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut clock = time.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Kubernetes sets KUBERNETES_SERVICE_HOST in every container.
fn running_in_kubernetes() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// Docker leaves /.dockerenv; Kubernetes sets KUBERNETES_SERVICE_HOST.
fn running_in_container() -> bool {
    std::path::Path::new("/.dockerenv").exists()
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}
