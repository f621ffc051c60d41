//! Values that most principals repeat (issuer, token type, set of roles, the verifying key's kid
//! and thumbprint) are kept once and shared by `Arc`, so a cache of 100,000 principals does not
//! hold 100,000 copies of `open-metadata.org`.
//!
//! The table is bounded: values longer than `MAX_SHARED_BYTES` are never shared, and when
//! `MAX_SHARED_VALUES` are held the table starts over (principals keep the values they
//! already point to). Sharing saves memory; it never changes what a principal says.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many distinct values are kept before the table starts over.
pub(super) const MAX_SHARED_VALUES: usize = 1024;
/// Longer values are stored per principal: sharing is for short, repeated names.
pub(super) const MAX_SHARED_BYTES: usize = 256;

/// Shared copies of repeated strings and role sets, for one configuration generation.
#[derive(Default)]
pub struct SharedValues {
    tables: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    strings: HashSet<Arc<str>>,
    role_sets: HashSet<Arc<[String]>>,
}

/// Hands out shared values; holds the table's lock while one principal is built.
pub struct Sharer<'a> {
    tables: MutexGuard<'a, Tables>,
}

// === impl SharedValues ===

impl SharedValues {
    /// Lock the table once for all the values of one principal.
    pub fn sharer(&self) -> Sharer<'_> {
        Sharer {
            // A panic while holding the lock leaves the table consistent (every step is one
            // `HashSet` call), so a poisoned lock is still usable.
            tables: self
                .tables
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let tables = self.sharer().tables;
        tables.strings.len() + tables.role_sets.len()
    }
}

impl std::fmt::Debug for SharedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedValues").finish_non_exhaustive()
    }
}

// === impl Sharer ===

impl Sharer<'_> {
    /// The shared copy of `text`.
    pub fn string(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.tables.strings.get(text) {
            return shared.clone();
        }
        let fresh: Arc<str> = Arc::from(text);
        if text.len() <= MAX_SHARED_BYTES {
            self.make_room();
            self.tables.strings.insert(fresh.clone());
        }
        fresh
    }

    /// The shared copy of a list of roles.
    pub fn roles(&mut self, roles: Vec<String>) -> Arc<[String]> {
        if let Some(shared) = self.tables.role_sets.get(roles.as_slice()) {
            return shared.clone();
        }
        let bytes: usize = roles.iter().map(String::len).sum();
        let fresh: Arc<[String]> = Arc::from(roles);
        if bytes <= MAX_SHARED_BYTES {
            self.make_room();
            self.tables.role_sets.insert(fresh.clone());
        }
        fresh
    }

    fn make_room(&mut self) {
        if self.tables.strings.len() + self.tables.role_sets.len() >= MAX_SHARED_VALUES {
            self.tables.strings.clear();
            self.tables.role_sets.clear();
        }
    }
}
