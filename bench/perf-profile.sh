#!/usr/bin/env bash
# Where a proxied request's CPU time goes, on the real CPU: `perf record` (cpu-clock sampling,
# DWARF call graphs) of the gateway under a bounded wrk load, two workers as deployed, and a table
# of frames in µs of gateway CPU per request (kernel and user). Unlike bench/profile.sh
# (callgrind: instructions, SHA-NI hidden), this counts time, syscalls and the kernel included.
#
# usage: bench/perf-profile.sh [hot|fresh]   (hot: one token; fresh: a never-seen token each)
# env:   GATEWAY_BIN=path (else the release build)  SECONDS_LOAD=4  CONNS=32  FREQ=1000
#        ACCESS_LOG=true (the default configuration logs)  GWBENCH_DIR=/tmp/gwbench
# Writes $GWBENCH_DIR/perf/<mode>.data. Needs perf (linux-perf) and the shared harness.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}
WORK=${GWBENCH_DIR:-/tmp/gwbench}
export GWBENCH_DIR=$WORK
MODE=${1:-hot}
LOAD=${SECONDS_LOAD:-4}
CONNS=${CONNS:-32}
FREQ=${FREQ:-1000}
OUT=$WORK/perf
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
mkdir -p "$OUT"

die() { echo "perf-profile.sh: $*" >&2; exit 1; }
command -v perf >/dev/null || die "perf is needed (apt-get install linux-perf)"
[[ -s $WORK/tokens/hot.jwt ]] || "$SHARED/setup.sh"
HOT=$(head -1 "$WORK/tokens/hot.jwt")
TOKENS=$WORK/fresh/tokens.txt
[[ $MODE == hot || -s $TOKENS ]] || die "fresh needs $TOKENS (bench/run-gateway.sh fresh mints it)"
if [[ -z ${GATEWAY_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/om-gateway" "$OUT/om-gateway"
    GATEWAY_BIN=$OUT/om-gateway
fi

bench_gateway_yaml "${ACCESS_LOG:-true}" >"$OUT/gateway.yaml"

start_upstream_unless_running
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    [[ -n $STARTED_UPSTREAM ]] && "$SHARED/servers.sh" stop upstream >/dev/null
    return 0
}
trap cleanup EXIT

"$GATEWAY_BIN" run --config "$OUT/gateway.yaml" >"$OUT/gateway.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:19090/readyz && break; sleep 0.1; done
URL=http://127.0.0.1:18080/api/v1/tables
timeout 40 wrk -t1 -c"$CONNS" -d2s -H "Authorization: Bearer $HOT" "$URL" >/dev/null
DATA=$OUT/$MODE.data
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$PID/stat")
perf record -q -F "$FREQ" -g --call-graph dwarf,16384 -p "$PID" -o "$DATA" -- sleep "$LOAD" 2>/dev/null &
PERF=$!
if [[ $MODE == fresh ]]; then
    out=$(timeout $((LOAD + 30)) wrk -t1 -c"$CONNS" -d"${LOAD}s" -s "$HERE/fresh.lua" "$URL" -- "$TOKENS")
else
    out=$(timeout $((LOAD + 30)) wrk -t1 -c"$CONNS" -d"${LOAD}s" -H "Authorization: Bearer $HOT" "$URL")
fi
wait "$PERF" || true
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
kill "$PID"
wait "$PID" 2>/dev/null || true
PID=
requests=$(awk '/requests in/ {print $1}' <<<"$out")
tick=$(getconf CLK_TCK)
us_per_request=$(awk -v t=$((u1 - u0 + s1 - s0)) -v k="$tick" -v n="$requests" 'BEGIN {printf "%.2f", t / k * 1e6 / n}')
echo "mode $MODE: $requests requests in ${LOAD}s, $(awk '/Requests\/sec/ {print $2}' <<<"$out") req/s; gateway CPU $us_per_request us/request (user+sys, /proc)"
echo

# Percentages of the gateway's samples -> µs per request (samples are spread as CPU time is).
report() { perf report -i "$DATA" "$@" 2>/dev/null | grep -v '^#' | grep -v '^$'; }
to_us() { awk -v us="$us_per_request" '{pct = $1; sub("%", "", pct); $1 = ""; printf "%7.2f us  %6s%%  %s\n", pct * us / 100, pct, $0}'; }
echo "by where the code lives (self time):"
report --no-children -g none --sort dso | head -5 | to_us
echo
echo "named frames (inclusive; they overlap: the judge is inside Gateway::serve, RSA inside the judge):"
report --children -g none --sort sym |
    grep -E "\] (om_gateway::server::listen::Server::serve::\{\{closure\}\}::\{\{closure\}\}::\{\{closure\}\}|om_gateway::server::gateway::Gateway::serve::\{\{closure\}\}|om_gateway::judge::Judge::decide::\{\{closure\}\}|om_gateway::verify::Authenticator::verify::\{\{closure\}\}|aws_lc_0_[0-9_]+_rsa_verify_raw_no_self_test|aws_lc_0_[0-9_]+_sha256_block_data_order_hw|om_gateway::verify::token::decode_unverified|om_gateway::access_log::record|hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_flush|hyper::proto::h1::conn::Conn<I,B,T>::poll_read_head|__GI___writev|__libc_recv|epoll_wait|tokio::runtime::scheduler::current_thread::Context::park)$" |
    sed -E 's/ +[0-9.]+% +\[.\] / /' | to_us | sort -rn
echo
echo "heaviest self time:"
report --no-children -g none --sort sym | head -25 | to_us
