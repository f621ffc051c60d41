//! Compiled only under `#[cfg(test)]`: the drain view's bookkeeping and its bounds.

use super::usage::{
    KeyUsage, PrincipalWindow, MAX_NAMES, MAX_PRINCIPALS, MAX_RETIRED_KIDS,
    PRINCIPAL_WINDOW_SECONDS,
};
use crate::metrics::Metrics;

const DAY: u64 = PRINCIPAL_WINDOW_SECONDS;
const NOW: u64 = 1_000_000_000;

/// What a window says at `NOW` after `seen` (hash, name, time) were recorded in order.
struct Expect {
    count: usize,
    capped: bool,
    names: Vec<&'static str>,
}

fn check(name: &str, seen: &[(u64, &str, u64)], expected: Expect) -> PrincipalWindow {
    let mut window = PrincipalWindow::default();
    for (hash, principal, at) in seen {
        window.record(*hash, principal, *at);
    }
    assert_eq!(window.count(NOW), expected.count, "{name}: count");
    assert_eq!(window.capped(NOW), expected.capped, "{name}: capped");
    assert_eq!(window.names(NOW), expected.names, "{name}: names");
    let (held, names) = window.held();
    assert!(
        held <= MAX_PRINCIPALS && names <= MAX_NAMES,
        "{name}: bounded"
    );
    window
}

#[test]
fn a_window_counts_distinct_principals_of_the_last_24_hours_within_its_bounds() {
    check(
        "the same principal twice",
        &[(1, "alice", NOW - 10), (1, "alice", NOW - 5)],
        Expect {
            count: 1,
            capped: false,
            names: vec!["alice"],
        },
    );
    check(
        "most recent first",
        &[
            (1, "alice", NOW - 10),
            (2, "bot", NOW - 5),
            (3, "bob", NOW - 7),
        ],
        Expect {
            count: 3,
            capped: false,
            names: vec!["bot", "bob", "alice"],
        },
    );
    check(
        "seen 25 h ago: outside the window",
        &[(1, "alice", NOW - DAY - 3600), (2, "bot", NOW - 60)],
        Expect {
            count: 1,
            capped: false,
            names: vec!["bot"],
        },
    );
    check(
        "seen 25 h ago and again now",
        &[(1, "alice", NOW - DAY - 3600), (1, "alice", NOW)],
        Expect {
            count: 1,
            capped: false,
            names: vec!["alice"],
        },
    );
    let many: Vec<(u64, String, u64)> = (0..MAX_PRINCIPALS as u64 + 500)
        .map(|i| (i, format!("user-{i}"), NOW - 100))
        .collect();
    let many_refs: Vec<(u64, &str, u64)> =
        many.iter().map(|(h, n, t)| (*h, n.as_str(), *t)).collect();
    let full = {
        let mut window = PrincipalWindow::default();
        for (hash, name, at) in &many_refs {
            window.record(*hash, name, *at);
        }
        window
    };
    assert_eq!(
        full.count(NOW),
        MAX_PRINCIPALS,
        "a flood is counted up to the cap"
    );
    assert!(full.capped(NOW), "and says the count is a lower bound");
    assert_eq!(full.names(NOW).len(), MAX_NAMES, "names are capped too");
    assert_eq!(full.held(), (MAX_PRINCIPALS, MAX_NAMES));

    // A day later the flood has left the window: newcomers are counted and named again.
    let mut later = full;
    later.record(u64::MAX, "ingestion-bot", NOW + DAY);
    assert_eq!(later.count(NOW + DAY), 1);
    assert!(!later.capped(NOW + DAY + 200));
    assert_eq!(later.names(NOW + DAY), vec!["ingestion-bot"]);
    assert!(later.held().0 <= MAX_PRINCIPALS);
}

fn usage() -> (KeyUsage, Metrics) {
    let metrics = Metrics::new().unwrap();
    (KeyUsage::new(&metrics), metrics)
}

#[test]
fn a_kid_no_source_publishes_any_more_is_retired_with_its_history_and_watched() {
    let (usage, metrics) = usage();
    usage.sync(&[(Some("old"), "s1"), (Some("new"), "s1")], &[]);
    usage.record_use(Some("old"), "s1", "ingestion-bot", true);
    usage.record_use(Some("old"), "s1", "ingestion-bot", false);
    usage.record_use(Some("new"), "s1", "alice", true);
    // Not in the key set: nothing to count it on.
    usage.record_use(Some("other"), "s1", "mallory", true);
    let old = usage.report(Some("old"), "s1").unwrap();
    assert_eq!(
        (old.verifications, old.principals_last_24h, old.principals),
        (2, 1, vec!["ingestion-bot".to_string()])
    );
    assert!(usage.report(Some("other"), "s1").is_none());
    assert!(usage.retired().is_empty());

    usage.sync(&[(Some("new"), "s1")], &[]);
    assert!(usage.report(Some("old"), "s1").is_none());
    usage.record_presented("old");
    usage.record_presented("old");
    usage.record_presented("never-published");
    let retired = usage.retired();
    assert_eq!(retired.len(), 1);
    let old = &retired[0];
    assert_eq!(old.kid, "old");
    assert_eq!(old.sources, vec!["s1".to_string()]);
    assert_eq!(
        (
            old.presented_since_retired,
            old.verifications,
            old.principals_last_24h
        ),
        (2, 2, 1)
    );
    let text = metrics.render();
    assert!(
        text.contains("om_gateway_retired_kid_presentations_total{kid=\"old\"} 2"),
        "{text}"
    );
    assert!(!text.contains("never-published"), "{text}");
    assert!(!text.contains("other"), "{text}");

    // Published again: no longer retired, and its history continues.
    usage.sync(&[(Some("new"), "s1"), (Some("old"), "s1")], &[]);
    assert!(usage.retired().is_empty());
    assert_eq!(usage.report(Some("old"), "s1").unwrap().verifications, 2);
    assert!(!metrics
        .render()
        .contains("om_gateway_retired_kid_presentations_total{"));
}

#[test]
fn a_kid_that_moves_to_another_source_is_not_retired_and_retired_kids_are_bounded() {
    let (usage, metrics) = usage();
    usage.sync(&[(Some("k"), "s1")], &[]);
    usage.record_use(Some("k"), "s1", "alice", true);
    usage.sync(&[(Some("k"), "s2")], &[]);
    assert!(usage.retired().is_empty(), "still published, by s2");
    let text = metrics.render();
    assert!(
        !text.contains("source=\"s1\""),
        "the gone source's series is removed: {text}"
    );

    // Rotating through many kids keeps at most MAX_RETIRED_KIDS of them, newest first.
    for i in 0..MAX_RETIRED_KIDS + 8 {
        usage.sync(&[(Some(&format!("kid-{i}")), "s1")], &[]);
        usage.record_use(Some(&format!("kid-{i}")), "s1", "bot", true);
    }
    usage.sync(&[], &[]);
    let retired = usage.retired();
    assert_eq!(retired.len(), MAX_RETIRED_KIDS);
    assert_eq!(retired[0].kid, format!("kid-{}", MAX_RETIRED_KIDS + 7));
    let text = metrics.render();
    let series = |name: &str| {
        text.lines()
            .filter(|line| line.starts_with(&format!("{name}{{")))
            .count()
    };
    assert_eq!(
        series("om_gateway_retired_kid_presentations_total"),
        MAX_RETIRED_KIDS
    );
    assert_eq!(
        series("om_gateway_token_verifications_total"),
        MAX_RETIRED_KIDS
    );
}

#[test]
fn a_new_table_adopts_the_history_and_settles_only_what_it_knows() {
    let (previous, metrics) = usage();
    previous.sync(
        &[
            (Some("old"), "file://old.pem"),
            (Some("new"), "https://om/jwks"),
        ],
        &[],
    );
    previous.record_use(Some("old"), "file://old.pem", "ingestion-bot", true);
    previous.record_use(Some("new"), "https://om/jwks", "bob", true);

    // A reload: the file is gone, OpenMetadata's JWKS is still loading in the new store.
    let next = KeyUsage::new(&metrics);
    next.adopt(&previous);
    next.sync(&[], &["https://om/jwks"]);
    let retired = next.retired();
    assert_eq!(retired.len(), 1, "only the file's kid is known to be gone");
    assert_eq!(
        (retired[0].kid.as_str(), retired[0].principals.clone()),
        ("old", vec!["ingestion-bot".to_string()])
    );
    // The old table records nothing any more (its series belong to the new one).
    previous.sync(&[], &[]);
    previous.record_presented("old");
    assert!(previous.retired().is_empty());

    // The source loads: its key keeps its history; the retired kid is still watched.
    next.sync(&[(Some("new"), "https://om/jwks")], &[]);
    let new = next.report(Some("new"), "https://om/jwks").unwrap();
    assert_eq!(
        (new.verifications, new.principals),
        (1, vec!["bob".to_string()])
    );
    next.record_presented("old");
    assert_eq!(next.retired()[0].presented_since_retired, 1);

    // The old file comes back: the kid is published again, with its history and its series.
    next.sync(
        &[
            (Some("new"), "https://om/jwks"),
            (Some("old"), "file://old.pem"),
        ],
        &[],
    );
    assert!(next.retired().is_empty());
    next.record_use(Some("old"), "file://old.pem", "ingestion-bot", false);
    assert_eq!(
        next.report(Some("old"), "file://old.pem")
            .unwrap()
            .verifications,
        2
    );
    assert!(metrics
        .render()
        .contains("om_gateway_token_verifications_total{kid=\"old\",source=\"file://old.pem\"} 2"));
}
