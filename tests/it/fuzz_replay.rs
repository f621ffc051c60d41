//! Every committed fuzz seed and every crash the fuzzer ever found, replayed through the
//! same target code `.ci/fuzz.sh` fuzzes. A crash file in `fuzz/regressions/<target>/` is a
//! regression test from the moment it is committed.

#[path = "../../fuzz/src/targets.rs"]
pub mod targets;

use std::path::PathBuf;

fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|path| path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep"));
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("readable input");
            (path, bytes)
        })
        .collect()
}

/// Replay seeds and regressions; each input runs in its own catch_unwind so one report names
/// every failing file.
fn replay(target: &str, run: fn(&[u8])) {
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target} has no seed");
    let mut failures = Vec::new();
    for (path, bytes) in seeds.iter().chain(inputs("regressions", target).iter()) {
        if std::panic::catch_unwind(|| run(bytes)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(failures.is_empty(), "{target} fails on: {failures:#?}");
}

#[test]
fn fuzz_seeds_and_regressions_replay_for_token() {
    replay("token", targets::token);
}

#[test]
fn fuzz_seeds_and_regressions_replay_for_jwks() {
    replay("jwks", targets::jwks);
}

#[test]
fn fuzz_seeds_and_regressions_replay_for_config() {
    replay("config", targets::config);
}

#[test]
fn fuzz_seeds_and_regressions_replay_for_path() {
    replay("path", targets::path);
}

#[test]
fn fuzz_seeds_and_regressions_replay_for_original_url() {
    replay("original_url", targets::original_url);
}
