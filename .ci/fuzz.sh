#!/usr/bin/env bash
# Bounded, coverage-guided fuzzing of om-gateway's parsers of hostile input, on STABLE Rust.
#
# cargo-fuzz needs nightly only for its sanitizer flags; libFuzzer itself (the libfuzzer-sys
# crate) and LLVM's SanitizerCoverage instrumentation (-Cpasses=sancov-module) work on stable.
# .ci/fuzz-rustc.sh adds that instrumentation to om-gateway's own crates only, so the build reuses
# the dependencies `cargo test` already compiled (same target dir, same dev profile: overflow and
# debug assertions on). Each target then runs FUZZ_SECONDS (default 40 s; five targets < 4 min).
#
#   bash .ci/fuzz.sh                       # all targets, 40 s each
#   FUZZ_SECONDS=300 bash .ci/fuzz.sh path # one target, longer
#
# The corpus starts from fuzz/seeds/<target> and fuzz/regressions/<target> (both committed).
# A crash, panic, failed oracle assertion or input slower than 10 s fails the run, and the input
# is copied to fuzz/regressions/<target>/: commit it; tests/it/fuzz_replay.rs replays it on
# every `cargo test` from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-40}
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(token jwks config path original_url); fi
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

echo "fuzz: building ${targets[*]} (stable rustc, SanitizerCoverage on om-gateway's crates, libFuzzer)"
# No --locked: fuzz/Cargo.lock pins what it has and takes in dependencies main adds later.
RUSTC_WRAPPER="$PWD/.ci/fuzz-rustc.sh" cargo build --manifest-path fuzz/Cargo.toml \
  --target-dir "$target_dir" $(printf -- '--bin %s ' "${targets[@]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in "${targets[@]}"; do
  corpus="$work/corpus-$target"
  artifacts="$work/artifacts-$target"
  mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$target"
  status=0
  "$target_dir/debug/$target" "$corpus" "fuzz/seeds/$target" "fuzz/regressions/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$work/$target.log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: $target FAILED (exit $status) after ${runs:-?} runs:"
    grep -m5 -E "panicked at|^ERROR: libFuzzer|^SUMMARY|ALARM|out-of-memory" "$work/$target.log" || true
    echo "fuzz: the log's end:"
    tail -25 "$work/$target.log"
    for artifact in "$artifacts"/*; do
      [ -e "$artifact" ] || continue
      name="fuzz/regressions/$target/$(basename "$artifact")"
      cp "$artifact" "$name"
      echo "fuzz: saved $name: fix the bug, then commit this file (tests/it/fuzz_replay.rs replays it)"
    done
  else
    echo "fuzz: $target ok: ${runs:-?} runs in ${seconds}s, ${coverage:-cov: ?}, corpus $(ls "$corpus" | wc -l) new inputs"
  fi
done
exit "$failed"
