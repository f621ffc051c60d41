#!/usr/bin/env bash
# RUSTC_WRAPPER for .ci/fuzz.sh: adds libFuzzer's coverage instrumentation (LLVM SanitizerCoverage,
# stable flags) to om-gateway's own crates only. Dependencies compile exactly as for `cargo test`,
# so the fuzz build reuses the test build's artifacts instead of rebuilding the world.
rustc="$1"
shift
for argument in "$@"; do
  if [ "$previous" = "--crate-name" ]; then
    case "$argument" in
      om_gateway|om_gateway_fuzz|token|jwks|config|path)
        exec "$rustc" "$@" --cfg fuzzing -Cpasses=sancov-module \
          -Cllvm-args=-sanitizer-coverage-level=4 \
          -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
          -Cllvm-args=-sanitizer-coverage-pc-table \
          -Cllvm-args=-sanitizer-coverage-trace-compares ;;
    esac
  fi
  previous="$argument"
done
exec "$rustc" "$@"
