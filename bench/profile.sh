#!/usr/bin/env bash
# Where a proxied request's CPU goes: the gateway under valgrind's callgrind (instructions, for
# machines without perf; bench/perf-profile.sh measures time), one worker, a bounded wrk load, and
# the hottest frames per request.
#
# usage: bench/profile.sh [hot|fresh]     (default hot: one token; fresh: a never-seen token each)
# env:   GATEWAY_BIN=path  (skip the release build)   SECONDS_LOAD=10   CONNS=8
#        GWBENCH_DIR=/tmp/gwbench (the shared harness's work dir; setup.sh runs if it is missing)
# Writes $GWBENCH_DIR/profile/<mode>.callgrind and prints two tables (instructions per request):
# the heaviest inclusive frames of the request path and the heaviest self-cost functions.
# Instruction counts, not time: valgrind hides SHA-NI, so SHA-256 shows ~25k instructions per
# request here but takes ~0.5 us on the real CPU.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}
WORK=${GWBENCH_DIR:-/tmp/gwbench}
export GWBENCH_DIR=$WORK
MODE=${1:-hot}
LOAD=${SECONDS_LOAD:-10}
CONNS=${CONNS:-8}
OUT=$WORK/profile
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
mkdir -p "$OUT"

die() { echo "profile.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; } ||
    die "valgrind is needed (apt-get install valgrind)"
if [[ ! -d $WORK ]] || ! command -v wrk >/dev/null; then "$SHARED/setup.sh"; fi
if [[ -z ${GATEWAY_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/om-gateway" "$OUT/om-gateway"
    GATEWAY_BIN=$OUT/om-gateway
fi
if [[ $MODE == fresh ]]; then
    [[ -s $WORK/fresh/tokens.txt ]] || die "fresh needs $WORK/fresh/tokens.txt (bench/run-gateway.sh fresh mints it)"
fi

bench_gateway_yaml false 1 >"$OUT/gateway.yaml"

start_upstream_unless_running
VG_PID=
cleanup() {
    [[ -n $VG_PID ]] && kill -INT "$VG_PID" 2>/dev/null && wait "$VG_PID" 2>/dev/null
    [[ -n $STARTED_UPSTREAM ]] && "$SHARED/servers.sh" stop upstream >/dev/null
    return 0
}
trap cleanup EXIT

PROFILE=$OUT/$MODE.callgrind
rm -f "$PROFILE"
valgrind --tool=callgrind --callgrind-out-file="$PROFILE" \
    "$GATEWAY_BIN" run --config "$OUT/gateway.yaml" >"$OUT/gateway.log" 2>&1 &
VG_PID=$!
for _ in $(seq 300); do
    curl -fs -o /dev/null http://127.0.0.1:19090/readyz && break
    kill -0 "$VG_PID" 2>/dev/null || die "gateway exited; see $OUT/gateway.log"
    sleep 0.2
done
URL=http://127.0.0.1:18080/api/v1/tables
if [[ $MODE == fresh ]]; then
    timeout $((LOAD + 60)) wrk -t1 -c"$CONNS" -d"${LOAD}s" -s "$HERE/fresh.lua" "$URL" -- "$WORK/fresh/tokens.txt" 1 >"$OUT/wrk.txt"
else
    timeout $((LOAD + 60)) wrk -t1 -c"$CONNS" -d"${LOAD}s" -H "Authorization: Bearer $(head -1 "$WORK/tokens/hot.jwt")" "$URL" >"$OUT/wrk.txt"
fi
REQUESTS=$(awk '/requests in/ {print $1}' "$OUT/wrk.txt")
kill -INT "$VG_PID"
wait "$VG_PID" 2>/dev/null || true
VG_PID=
[[ -s $PROFILE ]] || die "no profile written"
echo "== $MODE: $REQUESTS requests under callgrind, 1 worker ($PROFILE)"

python3 - "$PROFILE" "$REQUESTS" <<'PY'
import re, subprocess, sys
profile, requests = sys.argv[1], int(sys.argv[2])
def table(args):
    text = subprocess.run(["callgrind_annotate", *args, profile], capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*)", line)
        if m and "=>" not in line:
            rows.append((int(m.group(1).replace(",", "")), m.group(2)))
    return rows
def short(name):
    name = re.sub(r"^.*?:(?=[A-Za-z_<])", "", name, count=1)   # drop the file
    name = re.sub(r" \[.*\]$", "", name)
    return name[:150]
skip = re.compile(r"jitterentropy|jent_|__rust_begin_short_backtrace|start_thread|thread_start|call_once|"
                  r"main|below main|ld-linux|block_on|cli::run|server::start|RAND_bytes|rand_bytes|CRYPTO_once|pthread_once|entropy")
print(f"\nheaviest inclusive frames (instructions per request, {requests} requests):")
seen = 0
for cost, name in table(["--inclusive=yes"]):
    if skip.search(name) or "tokio::runtime" in name:
        continue
    print(f"  {cost / requests / 1000:7.1f}k  {short(name)}")
    seen += 1
    if seen == 25: break
print("\nheaviest self cost:")
seen = 0
for cost, name in table([]):
    if skip.search(name):
        continue
    print(f"  {cost / requests / 1000:7.1f}k  {short(name)}")
    seen += 1
    if seen == 20: break
PY
