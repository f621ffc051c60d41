//! Which keys are still in use: the drain view after a rotation. Per key (its kid and source):
//! how many tokens it verified, when it last did, and the distinct principals seen with it in
//! the last 24 h; and the kids no source publishes any more, with how often tokens still present
//! them.
//!
//! Bounded, whatever clients send: entries exist only for keys in the key set and for at most
//! [`MAX_RETIRED_KIDS`] retired kids (a kid that was never published is never recorded, nor a
//! metric label); each entry keeps at most [`MAX_PRINCIPALS`] principals as hashes with a
//! timestamp, and the names of at most [`MAX_NAMES`] of them.
//!
//! Owns the bookkeeping. `store` tells it when the key set changes, `verify` when a key verified
//! a token (every accepted token counts and moves the last use; principals are recorded on a
//! verified-token cache miss, so a principal's time is at most `tokenCache.ttl` old), and
//! `admin` shows it on `/keys`.

use crate::metrics::Metrics;
use prometheus::{IntCounter, IntCounterVec};
use serde::Serialize;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// "Distinct principals in the last 24 h".
pub const PRINCIPAL_WINDOW_SECONDS: u64 = 24 * 3600;
/// Principals remembered per key (as 64-bit hashes with their last time); beyond this, newcomers
/// are not counted until older ones leave the window, and the count says "at least".
pub const MAX_PRINCIPALS: usize = 4096;
/// Principal names kept per key, for `/keys` and `om-gateway keys`.
pub const MAX_NAMES: usize = 50;
/// Retired kids remembered (the oldest retirement is forgotten first).
pub const MAX_RETIRED_KIDS: usize = 32;

/// The usage of every key in one key store.
pub struct KeyUsage {
    table: RwLock<UsageTable>,
    verifications: IntCounterVec,
    presentations: IntCounterVec,
    /// Keyed per process, so principal hashes say nothing outside it.
    hasher: RandomState,
    /// Set when a newer key store took this table over (a reload): from then on this one
    /// records nothing and touches no metric series, which now belong to the newer one.
    disowned: AtomicBool,
}

/// What `/keys` shows of one key's use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub verifications: u64,
    /// Unix seconds; `None`: not used since the gateway started.
    pub last_use: Option<u64>,
    #[serde(rename = "principalsLast24h")]
    pub principals_last_24h: usize,
    /// True when more principals came than are remembered: the count is a lower bound.
    pub principals_capped: bool,
    /// Names of principals seen in the window, most recent first (at most `MAX_NAMES`).
    pub principals: Vec<String>,
}

/// What `/keys` shows of a kid no source publishes any more.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RetiredKidReport {
    pub kid: String,
    /// The sources that published it.
    pub sources: Vec<String>,
    /// Unix seconds when the last source stopped publishing it.
    pub retired_at: u64,
    /// Tokens presenting it since (each refused).
    pub presented_since_retired: u64,
    pub last_presented: Option<u64>,
    /// Its use while it was published, as for a trusted key.
    pub verifications: u64,
    pub last_use: Option<u64>,
    #[serde(rename = "principalsLast24h")]
    pub principals_last_24h: usize,
    pub principals_capped: bool,
    pub principals: Vec<String>,
}

#[derive(Default)]
struct UsageTable {
    /// kid (`""` for keys without one) → one entry per source that publishes it.
    published: HashMap<Box<str>, Vec<Arc<KeyUse>>>,
    /// Oldest retirement first.
    retired: VecDeque<RetiredKid>,
}

struct KeyUse {
    source: Arc<str>,
    verifications: IntCounter,
    last_use: AtomicU64,
    principals: Mutex<PrincipalWindow>,
}

struct RetiredKid {
    kid: Box<str>,
    retired_at: u64,
    uses: Vec<Arc<KeyUse>>,
    presentations: IntCounter,
    presented: AtomicU64,
    last_presented: AtomicU64,
}

/// The principals seen with one key: hash → last time seen (Unix seconds), bounded.
#[derive(Debug, Default)]
pub struct PrincipalWindow {
    seen: HashMap<u64, u64>,
    names: HashMap<u64, Box<str>>,
    /// The last time a principal could not be remembered because the window was full.
    refused_at: Option<u64>,
}

// === impl KeyUsage ===

impl KeyUsage {
    pub fn new(metrics: &Metrics) -> KeyUsage {
        KeyUsage {
            table: RwLock::new(UsageTable::default()),
            verifications: metrics.token_verifications_total.clone(),
            presentations: metrics.retired_kid_presentations_total.clone(),
            hasher: RandomState::new(),
            disowned: AtomicBool::new(false),
        }
    }

    /// Take over `previous`'s table (a reload built a new key store): the drain view goes on.
    /// Then `sync`, which settles what changed. Entries this table made meanwhile for the same
    /// key give way to the earlier ones, which have the history (both count on one series).
    pub fn adopt(&self, previous: &KeyUsage) {
        previous.disowned.store(true, Ordering::SeqCst);
        let taken = std::mem::take(&mut *write(&previous.table));
        let mut table = write(&self.table);
        for (kid, uses) in taken.published {
            let entries = table.published.entry(kid).or_default();
            for key_use in uses {
                entries.retain(|mine| mine.source != key_use.source);
                entries.push(key_use);
            }
        }
        table.retired.extend(taken.retired);
    }

    /// The key set is now `published` (kid, source URL): new keys get an entry, keys whose kid
    /// no source publishes any more become retired kids, a kid published again is no longer one.
    /// Entries of `loading` sources (no successful fetch yet, so their keys are not known) are
    /// kept as they are.
    ///
    /// Metric series of entries that go are removed, so the label set stays bounded. (A reload
    /// that builds a new key store starts a new table; series of keys only the old store had
    /// then stay exported with their last value, as the per-URL JWKS series do.)
    pub fn sync(&self, published: &[(Option<&str>, &str)], loading: &[&str]) {
        if self.disowned.load(Ordering::SeqCst) {
            return;
        }
        let mut current: HashMap<&str, Vec<&str>> = HashMap::new();
        for (kid, source) in published {
            let sources = current.entry(kid.unwrap_or("")).or_default();
            if !sources.contains(source) {
                sources.push(source);
            }
        }
        let mut table = write(&self.table);
        self.retire_what_left(&mut table, &current, loading);
        for (kid, sources) in current {
            self.enter_published(&mut table, kid, &sources);
        }
        while table.retired.len() > MAX_RETIRED_KIDS {
            if let Some(oldest) = table.retired.pop_front() {
                self.forget_retired(&oldest);
            }
        }
    }

    /// Entries whose key is no longer published: a kid no source publishes any more is retired
    /// (with its history); one that moved to another source, or a key without kid, is dropped.
    fn retire_what_left(
        &self,
        table: &mut UsageTable,
        current: &HashMap<&str, Vec<&str>>,
        loading: &[&str],
    ) {
        let now = unix_now();
        for (kid, uses) in std::mem::take(&mut table.published) {
            let sources_now = current.get(&*kid);
            let (kept, gone): (Vec<_>, Vec<_>) = uses.into_iter().partition(|key_use| {
                sources_now.is_some_and(|s| s.contains(&&*key_use.source))
                    || loading.contains(&&*key_use.source)
            });
            if !kept.is_empty() {
                table.published.insert(kid.clone(), kept);
            }
            if gone.is_empty() {
                continue;
            }
            // Still published elsewhere (it moved), or never named by a token (no kid): nothing
            // to drain, nothing to watch.
            if sources_now.is_some() || kid.is_empty() {
                for key_use in &gone {
                    self.forget_series(&kid, key_use);
                }
                continue;
            }
            tracing::info!(kid = %kid, "no key source publishes this kid any more; watching whether tokens still present it");
            let presentations = self.presentations.with_label_values(&[&kid]);
            table.retired.push_back(RetiredKid {
                kid,
                retired_at: now,
                uses: gone,
                presentations,
                presented: AtomicU64::new(0),
                last_presented: AtomicU64::new(0),
            });
        }
    }

    /// `kid` is published by `sources`: each gets an entry; a retired kid published again takes
    /// its history back and is no longer retired.
    fn enter_published(&self, table: &mut UsageTable, kid: &str, sources: &[&str]) {
        let mut revived = table
            .retired
            .iter()
            .position(|retired| *retired.kid == *kid)
            .and_then(|position| table.retired.remove(position));
        let entries = table.published.entry(Box::from(kid)).or_default();
        for source in sources {
            let earlier = revived.as_mut().and_then(|retired| {
                let position = retired.uses.iter().position(|u| &*u.source == *source)?;
                Some(retired.uses.swap_remove(position))
            });
            if let Some(slot) = entries.iter_mut().find(|u| &*u.source == *source) {
                if let Some(earlier) = earlier {
                    *slot = earlier; // the same series: nothing to remove
                }
                continue;
            }
            entries.push(earlier.unwrap_or_else(|| {
                Arc::new(KeyUse {
                    source: Arc::from(*source),
                    verifications: self.verifications.with_label_values(&[kid, source]),
                    last_use: AtomicU64::new(0),
                    principals: Mutex::new(PrincipalWindow::default()),
                })
            }));
        }
        // What is left of it are sources that do not publish it now.
        if let Some(retired) = revived {
            self.forget_retired(&retired);
        }
    }

    /// A token verified with the key `kid` from `source`, for `principal`. `first_sight`: the
    /// token was not in the verified-token cache (then the principal is recorded too).
    pub fn record_use(&self, kid: Option<&str>, source: &str, principal: &str, first_sight: bool) {
        // No `disowned` check: a disowned table is empty, so the lookup finds nothing.
        let table = read(&self.table);
        let Some(key_use) = table
            .published
            .get(kid.unwrap_or(""))
            .and_then(|uses| uses.iter().find(|key_use| &*key_use.source == source))
        else {
            // The key left its source while the token was verified: nothing to count it on.
            return;
        };
        key_use.verifications.inc();
        let now = unix_now();
        // Written at most once a second, so the hot path mostly only reads this line.
        if key_use.last_use.load(Ordering::Relaxed) < now {
            key_use.last_use.fetch_max(now, Ordering::Relaxed);
        }
        if first_sight {
            let hash = self.hasher.hash_one(principal);
            lock(&key_use.principals).record(hash, principal, now);
        }
    }

    /// A token named `kid` and no key has it. Counted only if `kid` is a retired kid.
    pub fn record_presented(&self, kid: &str) {
        let table = read(&self.table);
        if let Some(retired) = table.retired.iter().find(|retired| *retired.kid == *kid) {
            retired.presentations.inc();
            retired.presented.fetch_add(1, Ordering::Relaxed);
            retired
                .last_presented
                .fetch_max(unix_now(), Ordering::Relaxed);
        }
    }

    /// The use of the key `kid` from `source`, if it is in the key set.
    pub fn report(&self, kid: Option<&str>, source: &str) -> Option<UsageReport> {
        let table = read(&self.table);
        let key_use = table
            .published
            .get(kid.unwrap_or(""))?
            .iter()
            .find(|key_use| &*key_use.source == source)?;
        let now = unix_now();
        let window = lock(&key_use.principals);
        Some(UsageReport {
            verifications: key_use.verifications.get(),
            last_use: nonzero(key_use.last_use.load(Ordering::Relaxed)),
            principals_last_24h: window.count(now),
            principals_capped: window.capped(now),
            principals: window.names(now),
        })
    }

    /// Every retired kid, most recently retired first.
    pub fn retired(&self) -> Vec<RetiredKidReport> {
        let table = read(&self.table);
        let now = unix_now();
        table
            .retired
            .iter()
            .rev()
            .map(|retired| {
                let windows: Vec<_> = retired
                    .uses
                    .iter()
                    .map(|key_use| lock(&key_use.principals))
                    .collect();
                let (count, names) = merged_principals(&windows, now);
                RetiredKidReport {
                    kid: retired.kid.to_string(),
                    sources: retired
                        .uses
                        .iter()
                        .map(|key_use| key_use.source.to_string())
                        .collect(),
                    retired_at: retired.retired_at,
                    presented_since_retired: retired.presented.load(Ordering::Relaxed),
                    last_presented: nonzero(retired.last_presented.load(Ordering::Relaxed)),
                    verifications: retired.uses.iter().map(|u| u.verifications.get()).sum(),
                    last_use: nonzero(
                        retired
                            .uses
                            .iter()
                            .map(|u| u.last_use.load(Ordering::Relaxed))
                            .max()
                            .unwrap_or(0),
                    ),
                    principals_last_24h: count,
                    principals_capped: windows.iter().any(|window| window.capped(now)),
                    principals: names,
                }
            })
            .collect()
    }

    fn forget_series(&self, kid: &str, key_use: &KeyUse) {
        let _ = self
            .verifications
            .remove_label_values(&[kid, &key_use.source]);
    }

    /// Remove a retired kid's series (its uses that are published again keep theirs).
    fn forget_retired(&self, retired: &RetiredKid) {
        let _ = self.presentations.remove_label_values(&[&retired.kid]);
        for key_use in &retired.uses {
            self.forget_series(&retired.kid, key_use);
        }
    }
}

/// Distinct principals across several windows (a kid several sources published), and their
/// names, most recent first.
fn merged_principals(
    windows: &[std::sync::MutexGuard<'_, PrincipalWindow>],
    now: u64,
) -> (usize, Vec<String>) {
    let mut hashes = HashSet::new();
    let mut named: HashMap<u64, (u64, &str)> = HashMap::new();
    for window in windows {
        for (hash, seen) in window.recent(now) {
            hashes.insert(hash);
            if let Some(name) = window.names.get(&hash) {
                let entry = named.entry(hash).or_insert((seen, name));
                entry.0 = entry.0.max(seen);
            }
        }
    }
    let mut names: Vec<(u64, &str)> = named.into_values().collect();
    names.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let names = names
        .into_iter()
        .take(MAX_NAMES)
        .map(|(_, name)| name.to_string())
        .collect();
    (hashes.len(), names)
}

// === impl PrincipalWindow ===

impl PrincipalWindow {
    /// `hash` (of principal `name`) was seen at `now`.
    pub fn record(&mut self, hash: u64, name: &str, now: u64) {
        if let Some(seen) = self.seen.get_mut(&hash) {
            *seen = (*seen).max(now);
        } else {
            if self.seen.len() >= MAX_PRINCIPALS {
                self.seen
                    .retain(|_, seen| now.saturating_sub(*seen) < PRINCIPAL_WINDOW_SECONDS);
            }
            if self.seen.len() >= MAX_PRINCIPALS {
                self.refused_at = Some(now);
                return;
            }
            self.seen.insert(hash, now);
        }
        if self.names.contains_key(&hash) {
            return;
        }
        if self.names.len() >= MAX_NAMES {
            let seen = &self.seen;
            self.names.retain(|hash, _| {
                seen.get(hash)
                    .is_some_and(|at| now.saturating_sub(*at) < PRINCIPAL_WINDOW_SECONDS)
            });
        }
        if self.names.len() < MAX_NAMES {
            self.names.insert(hash, Box::from(name));
        }
    }

    /// Distinct principals seen in the 24 h before `now`.
    pub fn count(&self, now: u64) -> usize {
        self.recent(now).count()
    }

    /// Whether some principal in the window could not be remembered.
    pub fn capped(&self, now: u64) -> bool {
        self.refused_at
            .is_some_and(|at| now.saturating_sub(at) < PRINCIPAL_WINDOW_SECONDS)
    }

    /// Names of principals seen in the window, most recent first.
    pub fn names(&self, now: u64) -> Vec<String> {
        let mut names: Vec<(u64, &str)> = self
            .recent(now)
            .filter_map(|(hash, seen)| Some((seen, &**self.names.get(&hash)?)))
            .collect();
        names.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
        names
            .into_iter()
            .map(|(_, name)| name.to_string())
            .collect()
    }

    /// How many principals are held (in or out of the window): the memory bound.
    pub fn held(&self) -> (usize, usize) {
        (self.seen.len(), self.names.len())
    }

    fn recent(&self, now: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.seen
            .iter()
            .filter(move |(_, seen)| now.saturating_sub(**seen) < PRINCIPAL_WINDOW_SECONDS)
            .map(|(hash, seen)| (*hash, *seen))
    }
}

fn nonzero(seconds: u64) -> Option<u64> {
    (seconds > 0).then_some(seconds)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Poisoned locks: every step above leaves the table consistent, so the data is still usable.
fn read(table: &RwLock<UsageTable>) -> RwLockReadGuard<'_, UsageTable> {
    table
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(table: &RwLock<UsageTable>) -> RwLockWriteGuard<'_, UsageTable> {
    table
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock(window: &Mutex<PrincipalWindow>) -> std::sync::MutexGuard<'_, PrincipalWindow> {
    window
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
