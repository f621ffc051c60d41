#!/usr/bin/env bash
# Bounded, coverage-guided fuzzing of om-gateway's parsers of hostile input, on STABLE Rust.
#
# cargo-fuzz needs nightly only for its sanitizer flags; libFuzzer itself (the libfuzzer-sys
# crate) and LLVM's SanitizerCoverage instrumentation (-Cpasses=sancov-module) work on stable.
# So this script builds the targets in fuzz/ with the same coverage flags cargo-fuzz passes for
# `--sanitizer none`, and runs each for FUZZ_SECONDS (default 40 s, four targets: under 3 min).
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
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(token jwks config path); fi
host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-$PWD/fuzz/target}

# --target keeps these flags off build scripts and proc macros (they need no coverage).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cdebug-assertions -Coverflow-checks"
echo "fuzz: building ${targets[*]} for $host (stable, SanitizerCoverage + libFuzzer)"
cargo build --locked --release --manifest-path fuzz/Cargo.toml --target "$host" \
  --target-dir "$target_dir" $(printf -- '--bin %s ' "${targets[@]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
for target in "${targets[@]}"; do
  corpus="$work/corpus-$target"
  artifacts="$work/artifacts-$target"
  mkdir -p "$corpus" "$artifacts" "fuzz/regressions/$target"
  status=0
  "$target_dir/$host/release/$target" "$corpus" "fuzz/seeds/$target" "fuzz/regressions/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$work/$target.log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$work/$target.log" | tail -1 || true)
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz: $target FAILED (exit $status) after ${runs:-?} runs; the log's end:"
    tail -40 "$work/$target.log"
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
