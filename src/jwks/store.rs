//! The KeyStore: per-source state, the merged kid index, background refresh, single-flight
//! refetch on an unknown kid, stale limits, and notice of keys that went away.
//!
//! Requests read an immutable `KeyIndex` snapshot (an `Arc` swapped under a short lock), so a slow
//! or hostile source never blocks a request whose kid is already known.

use super::fetch::{build_client, fetch, FetchError, Fetched};
use super::parse::{parse_key_document, parse_key_file, ParsedKey};
use super::usage::{KeyUsage, RetiredKidReport, UsageReport};
use super::{JwksConfig, KeyFileConfig, KeySourceConfig};
use crate::metrics::Metrics;
use jsonwebtoken::Algorithm;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Which issuers and audiences a source's keys may vouch for; empty lists bind nothing.
#[derive(Debug, Clone, Default)]
pub struct KeyBinding {
    pub url: Arc<str>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
}

/// A trusted key, tied to the source it came from.
#[derive(Debug)]
pub struct VerifyingKey {
    pub key: ParsedKey,
    pub binding: Arc<KeyBinding>,
    pub fetched_at: SystemTime,
}

/// The merged view requests read.
#[derive(Debug, Default)]
struct KeyIndex {
    by_kid: HashMap<String, Vec<Arc<VerifyingKey>>>,
    kidless: Vec<Arc<VerifyingKey>>,
    total: usize,
}

/// Keys that left a source, so the verified-token cache can drop what they signed.
pub type RemovalListener = Box<dyn Fn(&[String]) + Send + Sync>;

#[derive(Debug, Default)]
struct SourceState {
    keys: Vec<Arc<VerifyingKey>>,
    etag: Option<String>,
    /// When the last fetch ended, whatever its outcome: the unknown-kid floor counts from here,
    /// so requests that arrive while a fetch is in flight wait for it instead of being refused.
    last_finished: Option<Instant>,
    last_success: Option<SystemTime>,
    last_success_at: Option<Instant>,
    next_refresh: Option<Instant>,
    consecutive_failures: u32,
    last_error: Option<String>,
    last_date_header: Option<String>,
    skipped: Vec<String>,
}

struct Source {
    binding: Arc<KeyBinding>,
    /// A source whose client could not be built reports why on every fetch.
    client: Result<reqwest::Client, Arc<crate::tls::HttpClientError>>,
    state: Mutex<SourceState>,
    /// Held for the duration of a fetch (scheduled, unknown-kid or forced): concurrent refetches
    /// of one source wait here, then find the fresh result and do not fetch again.
    fetch_lock: tokio::sync::Mutex<()>,
}

/// What /readyz and /keys show of a source.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    pub url: String,
    pub state: &'static str,
    pub keys: usize,
    pub kids: Vec<String>,
    /// Unix seconds of the last successful fetch (a 304 counts): when the keys were last known good.
    pub last_success: Option<u64>,
    pub etag: Option<String>,
    /// Unix seconds of the next scheduled fetch.
    pub next_refresh: Option<u64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub skipped_keys: Vec<String>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub date_header: Option<String>,
}

/// Why a fetch happens. Scheduled ones are planned above the floor already and skip when another
/// fetch moved the schedule on; unknown-kid ones respect the floor; forced ones always fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FetchReason {
    Scheduled,
    UnknownKid,
    Forced,
}

pub struct KeyStore {
    sources: Vec<Arc<Source>>,
    file_keys: Vec<Arc<VerifyingKey>>,
    index: RwLock<Arc<KeyIndex>>,
    config: JwksConfig,
    metrics: Arc<Metrics>,
    listeners: Mutex<Vec<RemovalListener>>,
    /// Bumped before removal listeners run, so a verification that raced a removal can tell.
    removals: AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Which keys still verify tokens, for whom, and which retired kids are still presented.
    usage: KeyUsage,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("publicKeyFiles: {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

impl KeyStore {
    /// Build the store and load `publicKeyFiles` now (a broken file is a startup error).
    /// URL sources start empty; call [`KeyStore::start`] to fetch them in the background.
    pub fn new(
        key_sources: &[KeySourceConfig],
        key_files: &[KeyFileConfig],
        config: JwksConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<KeyStore>, KeyStoreError> {
        let mut file_keys = Vec::new();
        for file in key_files {
            let path = file.path.display().to_string();
            let contents = std::fs::read(&file.path).map_err(|error| KeyStoreError::KeyFile {
                path: path.clone(),
                reason: error.to_string(),
            })?;
            let document = parse_key_file(&contents, file.kid.clone()).map_err(|error| {
                KeyStoreError::KeyFile {
                    path: path.clone(),
                    reason: error.to_string(),
                }
            })?;
            if document.keys.is_empty() {
                return Err(KeyStoreError::KeyFile {
                    path,
                    reason: format!("no usable key ({})", document.skipped.join("; ")),
                });
            }
            let binding = Arc::new(KeyBinding {
                url: Arc::from(format!("file://{path}")),
                issuers: file.issuers.clone(),
                ..KeyBinding::default()
            });
            for key in document.keys {
                file_keys.push(Arc::new(VerifyingKey {
                    key,
                    binding: binding.clone(),
                    fetched_at: SystemTime::now(),
                }));
            }
        }
        let sources = key_sources
            .iter()
            .map(|source| {
                Arc::new(Source {
                    binding: Arc::new(KeyBinding {
                        url: Arc::from(source.url.as_str()),
                        issuers: source.issuers.clone(),
                        audiences: source.audiences.clone(),
                    }),
                    client: build_client(config.fetch_timeout, source.ca_file.as_deref())
                        .map_err(Arc::new),
                    state: Mutex::new(SourceState::default()),
                    fetch_lock: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        let store = Arc::new(KeyStore {
            sources,
            file_keys,
            index: RwLock::new(Arc::new(KeyIndex::default())),
            config,
            usage: KeyUsage::new(&metrics),
            metrics,
            listeners: Mutex::new(Vec::new()),
            removals: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        store.rebuild_index();
        Ok(store)
    }

    /// Spawn one refresh loop per URL source. Serving need not wait: /readyz reports progress.
    pub fn start(self: &Arc<Self>) {
        let mut tasks = lock(&self.tasks);
        for source in &self.sources {
            let store = Arc::downgrade(self);
            let source = source.clone();
            tasks.push(tokio::spawn(refresh_loop(store, source)));
        }
    }

    /// Fetch every source once, concurrently, and wait (used by `doctor`, `inspect` and tests).
    pub async fn refresh_all_now(self: &Arc<Self>) {
        let mut joins = tokio::task::JoinSet::new();
        for source in self.sources.clone() {
            let store = self.clone();
            joins.spawn(async move { store.refresh_source(&source, FetchReason::Forced).await });
        }
        while joins.join_next().await.is_some() {}
    }

    /// Call `listener` with the thumbprints of keys that leave any source.
    pub fn on_keys_removed(&self, listener: RemovalListener) {
        lock(&self.listeners).push(listener);
    }

    /// Changes whenever keys leave a source. A cache that stores a verification result compares
    /// this before and after, and drops the entry if a removal slipped in between.
    pub fn removal_generation(&self) -> u64 {
        self.removals.load(Ordering::SeqCst)
    }

    /// Keys that carry `kid`.
    pub fn keys_for_kid(&self, kid: &str) -> Vec<Arc<VerifyingKey>> {
        self.snapshot().by_kid.get(kid).cloned().unwrap_or_default()
    }

    /// Keys without a kid (PEM files), tried for tokens with no kid or an unknown one.
    pub fn kidless_keys(&self) -> Vec<Arc<VerifyingKey>> {
        self.snapshot().kidless.clone()
    }

    /// How many keys are trusted now, across every source.
    pub fn key_count(&self) -> usize {
        self.snapshot().total
    }

    /// Every trusted key, for /keys.
    pub fn all_keys(&self) -> Vec<Arc<VerifyingKey>> {
        let snapshot = self.snapshot();
        let mut keys: Vec<_> = snapshot.by_kid.values().flatten().cloned().collect();
        keys.extend(snapshot.kidless.iter().cloned());
        keys
    }

    /// A token named a kid nobody knows: look again at each source that may vouch for `issuer`.
    /// A fetch of that source already in flight (scheduled ones included) is waited for, not
    /// repeated; otherwise one is started, unless the source finished a fetch less than
    /// `minRefreshInterval` ago. Everyone who arrives meanwhile shares that one fetch. Returns
    /// once those fetches end (each bounded by `fetchTimeout`).
    ///
    /// Issue 14: the floor used to count from the *start* of a fetch and was checked before
    /// waiting, so a burst that arrived while the fetch bringing its new key was in flight got
    /// 401 at once instead of waiting for it.
    pub async fn refetch_for_unknown_kid(self: &Arc<Self>, issuer: Option<&str>) {
        let floor = self.config.min_refresh_interval;
        let mut fetches = Vec::new();
        for source in &self.sources {
            let binding = &source.binding;
            if !binding.issuers.is_empty()
                && !issuer.is_some_and(|iss| binding.issuers.iter().any(|i| i == iss))
            {
                continue;
            }
            // The common case of a flood of unknown kids: nothing in flight, fetched recently.
            // No task needed; the answer is the index as it is.
            if source.fetch_lock.try_lock().is_ok()
                && finished_recently(&lock(&source.state), floor)
            {
                continue;
            }
            let store = self.clone();
            let source = source.clone();
            // Spawned, not polled here: a fetch goes on (and still counts for the floor and for
            // whoever waits behind it) if this request goes away.
            fetches.push(tokio::spawn(async move {
                store.refresh_source(&source, FetchReason::UnknownKid).await
            }));
        }
        for fetch in fetches {
            let _ = fetch.await;
        }
    }

    /// A token was accepted on the key `kid` from `source` (its `Principal`'s `kid` and
    /// `key_source`), for `principal_name`; `first_sight`: not answered from the token cache.
    /// Feeds `om_gateway_token_verifications_total` and the drain view on `/keys`.
    pub fn record_use(
        &self,
        kid: Option<&str>,
        source: &str,
        principal_name: &str,
        first_sight: bool,
    ) {
        self.usage
            .record_use(kid, source, principal_name, first_sight);
    }

    /// A token named `kid` and, after any refetch, no key has it. Counted when `kid` is one no
    /// source publishes any more (`om_gateway_retired_kid_presentations_total`).
    pub fn record_unknown_kid(&self, kid: &str) {
        self.usage.record_presented(kid);
    }

    /// The drain view of one trusted key: verifications, last use, principals in the last 24 h.
    pub fn key_usage(&self, kid: Option<&str>, source: &str) -> Option<UsageReport> {
        self.usage.report(kid, source)
    }

    /// Carry the drain view over from the store this one replaces (a reload that changed key
    /// sources or files), once the reload is sure to happen: `previous` records nothing more.
    pub fn adopt_usage(&self, previous: &KeyStore) {
        self.usage.adopt(&previous.usage);
        self.rebuild_index();
    }

    /// Kids no source publishes any more (remembered since they left, at most
    /// `usage::MAX_RETIRED_KIDS`), most recently retired first.
    pub fn retired_kids(&self) -> Vec<RetiredKidReport> {
        self.usage.retired()
    }

    /// Per-source state for /readyz, /keys and `doctor`.
    pub fn status(&self) -> Vec<SourceStatus> {
        let mut statuses: Vec<SourceStatus> = self
            .sources
            .iter()
            .map(|source| {
                let state = lock(&source.state);
                let label = match (
                    &state.last_success,
                    state.consecutive_failures,
                    state.keys.is_empty(),
                ) {
                    (None, 0, _) => "loading",
                    (None, _, _) => "failing",
                    (Some(_), 0, _) => "ok",
                    (Some(_), _, false) => "stale",
                    (Some(_), _, true) => "failing",
                };
                SourceStatus {
                    url: source.binding.url.to_string(),
                    state: label,
                    etag: state.etag.clone(),
                    next_refresh: state.next_refresh.map(|due| {
                        unix_seconds(
                            SystemTime::now() + due.saturating_duration_since(Instant::now()),
                        )
                    }),
                    keys: state.keys.len(),
                    kids: state
                        .keys
                        .iter()
                        .map(|k| k.key.kid.clone().unwrap_or_default())
                        .collect(),
                    last_success: state.last_success.map(unix_seconds),
                    last_error: state.last_error.clone(),
                    consecutive_failures: state.consecutive_failures,
                    skipped_keys: state.skipped.clone(),
                    issuers: source.binding.issuers.clone(),
                    audiences: source.binding.audiences.clone(),
                    date_header: state.last_date_header.clone(),
                }
            })
            .collect();
        if !self.file_keys.is_empty() {
            let mut urls: Vec<String> = self
                .file_keys
                .iter()
                .map(|k| k.binding.url.to_string())
                .collect();
            urls.dedup();
            for url in urls {
                let keys: Vec<_> = self
                    .file_keys
                    .iter()
                    .filter(|k| *k.binding.url == *url)
                    .collect();
                statuses.push(SourceStatus {
                    url,
                    state: "ok",
                    etag: None,
                    next_refresh: None,
                    keys: keys.len(),
                    kids: keys
                        .iter()
                        .map(|k| k.key.kid.clone().unwrap_or_default())
                        .collect(),
                    last_success: keys.first().map(|k| unix_seconds(k.fetched_at)),
                    last_error: None,
                    consecutive_failures: 0,
                    skipped_keys: Vec::new(),
                    issuers: Vec::new(),
                    audiences: Vec::new(),
                    date_header: None,
                });
            }
        }
        statuses
    }

    fn snapshot(&self) -> Arc<KeyIndex> {
        match self.index.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    async fn refresh_source(&self, source: &Source, reason: FetchReason) {
        // Waiting here is waiting for the fetch in flight, whoever started it.
        let _single_flight = source.fetch_lock.lock().await;
        let etag = {
            let state = lock(&source.state);
            // Whoever held the lock before us may have fetched already: then there is nothing to do.
            let already_done = match reason {
                FetchReason::UnknownKid => {
                    finished_recently(&state, self.config.min_refresh_interval)
                }
                FetchReason::Scheduled => {
                    state.next_refresh.is_some_and(|due| due > Instant::now())
                }
                FetchReason::Forced => false,
            };
            if already_done {
                return;
            }
            state.etag.clone()
        };
        let url = source.binding.url.clone();
        let outcome = match &source.client {
            Ok(client) => fetch(client, &url, etag.as_deref(), self.config.fetch_timeout).await,
            Err(reason) => Err(FetchError::Transport(reason.to_string())),
        };
        let removed = match outcome {
            Ok(Fetched::NotModified { max_age, date }) => {
                self.record_success(source, None, None, max_age, date, "not_modified");
                Vec::new()
            }
            Ok(Fetched::Document {
                body,
                etag,
                max_age,
                date,
            }) => match parse_key_document(&body) {
                // Every key broken (short RSA, bad base64...): a fault at the source, not a
                // rotation to zero keys, so the last good keys stay (for maxStale).
                Ok(document) if document.keys.is_empty() && !document.skipped.is_empty() => self
                    .record_failure(
                        source,
                        format!("no usable key: {}", document.skipped.join("; ")),
                        "no_usable_key",
                    ),
                Ok(document) => {
                    let fetched_at = SystemTime::now();
                    let keys = document
                        .keys
                        .into_iter()
                        .map(|key| {
                            Arc::new(VerifyingKey {
                                key,
                                binding: source.binding.clone(),
                                fetched_at,
                            })
                        })
                        .collect();
                    lock(&source.state).skipped = document.skipped;
                    self.record_success(source, Some(keys), etag, max_age, date, "ok")
                }
                Err(error) => self.record_failure(
                    source,
                    format!("unusable document: {error}"),
                    "invalid_document",
                ),
            },
            Err(error) => {
                let label = error.label();
                self.record_failure(source, error.to_string(), label)
            }
        };
        lock(&source.state).last_finished = Some(Instant::now());
        self.rebuild_index();
        if !removed.is_empty() {
            self.removals.fetch_add(1, Ordering::SeqCst);
            tracing::info!(url = %url, removed = removed.len(), "keys left their source; dropping tokens they signed from the cache");
            for listener in lock(&self.listeners).iter() {
                listener(&removed);
            }
        }
    }

    /// Returns the thumbprints of keys that are gone.
    fn record_success(
        &self,
        source: &Source,
        new_keys: Option<Vec<Arc<VerifyingKey>>>,
        etag: Option<String>,
        max_age: Option<Duration>,
        date: Option<String>,
        result: &str,
    ) -> Vec<String> {
        let url = &*source.binding.url;
        let mut state = lock(&source.state);
        let mut removed = Vec::new();
        if let Some(keys) = new_keys {
            removed = state
                .keys
                .iter()
                .filter(|old| {
                    !keys
                        .iter()
                        .any(|new: &Arc<VerifyingKey>| new.key.thumbprint == old.key.thumbprint)
                })
                .map(|old| old.key.thumbprint.clone())
                .collect();
            state.keys = keys;
            state.etag = etag;
        }
        let now = SystemTime::now();
        state.last_success = Some(now);
        state.last_success_at = Some(Instant::now());
        state.consecutive_failures = 0;
        state.last_error = None;
        state.last_date_header = date;
        let interval = interval_after_success(max_age, &self.config);
        state.next_refresh = Some(Instant::now() + interval);
        self.metrics
            .jwks_fetch_total
            .with_label_values(&[url, result])
            .inc();
        self.metrics
            .jwks_keys
            .with_label_values(&[url])
            .set(state.keys.len() as i64);
        self.metrics
            .jwks_last_success_timestamp_seconds
            .with_label_values(&[url])
            .set(unix_seconds(now) as f64);
        tracing::debug!(url, keys = state.keys.len(), result, "key source fetched");
        removed
    }

    fn record_failure(&self, source: &Source, error: String, label: &str) -> Vec<String> {
        let url = &*source.binding.url;
        let mut state = lock(&source.state);
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        let now = Instant::now();
        let mut due = now + backoff_after_failure(state.consecutive_failures, &self.config);
        // Try again by the time the last good keys would expire, so they are dropped on time
        // rather than up to a whole backoff late.
        if let (Some(success), false) = (state.last_success_at, state.keys.is_empty()) {
            let stale_deadline =
                (success + self.config.max_stale).max(now + self.config.min_refresh_interval);
            due = due.min(stale_deadline);
        }
        state.next_refresh = Some(due);
        self.metrics
            .jwks_fetch_total
            .with_label_values(&[url, label])
            .inc();
        tracing::warn!(url, error = %error, failures = state.consecutive_failures, "key source fetch failed; keeping its last good keys");
        state.last_error = Some(error);
        let expired = state
            .last_success_at
            .is_some_and(|at| at.elapsed() > self.config.max_stale);
        if expired && !state.keys.is_empty() {
            tracing::warn!(
                url,
                keys = state.keys.len(),
                max_stale = ?self.config.max_stale,
                "key source failing for longer than maxStale; dropping its last good keys"
            );
            self.metrics
                .jwks_keys_dropped_total
                .with_label_values(&[url])
                .inc();
            let removed = state
                .keys
                .drain(..)
                .map(|key| key.key.thumbprint.clone())
                .collect();
            self.metrics.jwks_keys.with_label_values(&[url]).set(0);
            return removed;
        }
        Vec::new()
    }

    fn rebuild_index(&self) {
        let mut index = KeyIndex::default();
        let all_keys = self
            .sources
            .iter()
            .flat_map(|source| lock(&source.state).keys.clone())
            .chain(self.file_keys.iter().cloned());
        for key in all_keys {
            index.total += 1;
            match &key.key.kid {
                Some(kid) => index.by_kid.entry(kid.clone()).or_default().push(key),
                None => index.kidless.push(key),
            }
        }
        let published: Vec<(Option<&str>, &str)> = index
            .by_kid
            .values()
            .flatten()
            .chain(index.kidless.iter())
            .map(|key| (key.key.kid.as_deref(), &*key.binding.url))
            .collect();
        let loading: Vec<&str> = self
            .sources
            .iter()
            .filter(|source| lock(&source.state).last_success.is_none())
            .map(|source| &*source.binding.url)
            .collect();
        self.usage.sync(&published, &loading);
        drop(published);
        let fresh = Arc::new(index);
        match self.index.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    fn next_refresh_of(&self, source: &Source) -> Option<Instant> {
        lock(&source.state).next_refresh
    }
}

impl Drop for KeyStore {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl VerifyingKey {
    /// May this key verify a token signed with `algorithm`? A key that states its `alg` verifies
    /// only that; one that does not (PEM files, older OpenMetadata JWKS) only `default_algorithm`.
    pub fn permits_algorithm(&self, algorithm: Algorithm, default_algorithm: Algorithm) -> bool {
        match self.key.algorithm {
            Some(stated) => stated == algorithm,
            None => algorithm == default_algorithm,
        }
    }

    /// May this key vouch for a token from `issuer` with audiences `audiences`?
    pub fn permits_claims(&self, issuer: Option<&str>, audiences: &[&str]) -> bool {
        let binding = &self.binding;
        let issuer_ok = binding.issuers.is_empty()
            || issuer.is_some_and(|iss| binding.issuers.iter().any(|b| b == iss));
        let audience_ok = binding.audiences.is_empty()
            || audiences
                .iter()
                .any(|aud| binding.audiences.iter().any(|b| b == aud));
        issuer_ok && audience_ok
    }
}

async fn refresh_loop(store: Weak<KeyStore>, source: Arc<Source>) {
    loop {
        let Some(strong) = store.upgrade() else {
            return;
        };
        let due = strong.next_refresh_of(&source);
        // An unknown-kid fetch may move the schedule while we sleep: look again on waking
        // instead of fetching at the old time.
        if let Some(due) = due.filter(|due| *due > Instant::now()) {
            drop(strong);
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        strong.refresh_source(&source, FetchReason::Scheduled).await;
    }
}

/// When to fetch again after a success: the shorter of `refreshInterval` and the source's
/// Cache-Control max-age, never under `minRefreshInterval`, up to 10 % earlier (jitter).
pub fn interval_after_success(max_age: Option<Duration>, config: &JwksConfig) -> Duration {
    let interval = max_age
        .map_or(config.refresh_interval, |age| {
            age.min(config.refresh_interval)
        })
        .max(config.min_refresh_interval);
    jitter(interval).max(config.min_refresh_interval)
}

/// When to fetch again after `failures` failures in a row: doubling from `minRefreshInterval`
/// (at least 100 ms) up to `refreshInterval`, so a dead source is neither hammered nor forgotten.
pub fn backoff_after_failure(failures: u32, config: &JwksConfig) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    config
        .min_refresh_interval
        .max(Duration::from_millis(100))
        .saturating_mul(1 << exponent)
        .min(config.refresh_interval.max(config.min_refresh_interval))
}

/// Did the source's last fetch end less than `floor` ago?
fn finished_recently(state: &SourceState, floor: Duration) -> bool {
    state.last_finished.is_some_and(|at| at.elapsed() < floor)
}

/// Up to 10 % earlier, so many gateways started together do not fetch in lockstep.
fn jitter(interval: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = f64::from(nanos % 1000) / 10_000.0; // 0 ..= 0.0999
    interval.mul_f64(1.0 - fraction)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A poisoned lock means a panic elsewhere; the data is still usable for our purposes.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
