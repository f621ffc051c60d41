#!/usr/bin/env bash
# CPU per proxied request of one or more gateway binaries, interleaved with a peer (nginx-plain or
# HAProxy jwt_verify): the A/B behind BENCHMARKS.md's before/after tables.
#
# usage: bench/cpu-per-request.sh ROUNDS BINARY...
# env:   SECONDS_LOAD=5 CONNS=32 WORKERS= (server.workers) ACCESS_LOG=false GWBENCH_DIR=/tmp/gwbench
#        MODE=hot|fresh (fresh: every request a never-seen token from $GWBENCH_DIR/fresh/tokens.txt,
#        which bench/run-gateway.sh fresh mints; the gateway starts with an empty cache each run)
#        PEER=nginx-plain|haproxy-jwt (the peer measured after each round; fresh: haproxy-jwt)
# Per binary and round: start it, 2 s hot warm-up, read utime/stime from /proc/PID/stat, a
# SECONDS_LOAD wrk run (MODE), read again; prints req/s, user/system µs per request and each
# proxy worker thread's CPU ticks (how evenly the connections were spread). The peer is measured
# after each round with the same wrk command, its CPU from its processes.
# Needs the shared harness (../shared/bench/setup.sh); starts and stops the upstream and the
# peer if they were not running. Everything on 127.0.0.1; every run is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED=${SHARED_BENCH:-$(cd "$HERE/../../shared/bench" && pwd)}
WORK=${GWBENCH_DIR:-/tmp/gwbench}
export GWBENCH_DIR=$WORK
ROUNDS=${1:?usage: cpu-per-request.sh ROUNDS BINARY...}
shift
(($#)) || { echo "usage: cpu-per-request.sh ROUNDS BINARY..." >&2; exit 2; }
LOAD=${SECONDS_LOAD:-5}
CONNS=${CONNS:-32}
TICK=$(getconf CLK_TCK)
DIR=$WORK/cpu
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
mkdir -p "$DIR"
[[ -s $WORK/tokens/hot.jwt ]] || "$SHARED/setup.sh"
HOT=$(head -1 "$WORK/tokens/hot.jwt")

bench_gateway_yaml "${ACCESS_LOG:-false}" "${WORKERS:-}" >"$DIR/gateway.yaml"

STARTED=()
PID=
cleanup() {
    [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    local s
    for s in "${STARTED[@]}"; do "$SHARED/servers.sh" stop "$s" >/dev/null || true; done
    return 0
}
trap cleanup EXIT
MODE=${MODE:-hot}
case $MODE in
    hot) PEER=${PEER:-nginx-plain} ;;
    fresh)
        PEER=${PEER:-haproxy-jwt}
        TOKENS=$WORK/fresh/tokens.txt
        [[ -s $TOKENS ]] || { echo "MODE=fresh needs $TOKENS (bench/run-gateway.sh fresh mints it)" >&2; exit 2; }
        ;;
    *) echo "MODE must be hot or fresh" >&2; exit 2 ;;
esac
case $PEER in
    nginx-plain) PEER_PORT=18001 ;;
    haproxy-jwt) PEER_PORT=18002 ;;
    *) echo "PEER must be nginx-plain or haproxy-jwt" >&2; exit 2 ;;
esac
for s in upstream "$PEER"; do
    if ! "$SHARED/servers.sh" status "$s" | grep -q running; then
        "$SHARED/servers.sh" start "$s" >/dev/null
        STARTED+=("$s")
    fi
done

hot() { timeout $(($1 + 30)) wrk -t1 -c"$CONNS" -d"$1s" -H "Authorization: Bearer $HOT" "$2"; }
# The measured load: one token (hot) or a never-seen token per request (fresh).
load() {
    if [[ $MODE == fresh ]]; then
        timeout $(($1 + 30)) wrk -t1 -c"$CONNS" -d"$1s" -s "$HERE/fresh.lua" "$2" -- "$TOKENS"
    else
        hot "$@"
    fi
}
times() { awk '{print $14, $15}' "/proc/$1/stat"; }

for ((r = 1; r <= ROUNDS; r++)); do
    for bin in "$@"; do
        "$bin" run --config "$DIR/gateway.yaml" >"$DIR/gateway.log" 2>&1 &
        PID=$!
        for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:19090/readyz && break; sleep 0.1; done
        hot 2 http://127.0.0.1:18080/api/v1/tables >/dev/null
        read -r u0 s0 < <(times "$PID")
        out=$(load "$LOAD" http://127.0.0.1:18080/api/v1/tables)
        read -r u1 s1 < <(times "$PID")
        # CPU ticks of each proxy worker thread since start: how evenly the load was spread.
        split=$(for t in /proc/"$PID"/task/*; do
            if [[ $(cat "$t/comm") == om-gateway-w* ]]; then awk '{printf "%d/", $14 + $15}' "$t/stat"; fi
        done)
        kill "$PID"
        wait "$PID" 2>/dev/null || true
        PID=
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        awk -v r="$r" -v b="$bin" -v rps="$rps" -v n="$n" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v t="$TICK" \
-v ticks="${split%/}" \
            'BEGIN {printf "round %d  %-40s %9s req/s  user %5.1f us/req  sys %5.1f us/req  worker ticks %s\n", r, b, rps, du / t * 1e6 / n, ds / t * 1e6 / n, ticks}'
    done
    # The peer's processes (nginx: master and workers; HAProxy: one) measured the same way.
    master=$(cat "$WORK/run/$([[ $PEER == haproxy-jwt ]] && echo haproxy || echo nginx-plain).pid")
    peer_pids="$master $( (pgrep -P "$master" || true) | tr '\n' ' ')"
    peer_ticks() {
        local pid user=0 sys=0 u s
        for pid in $peer_pids; do
            [[ -r /proc/$pid/stat ]] || continue
            read -r u s < <(times "$pid")
            user=$((user + u)) sys=$((sys + s))
        done
        echo "$user $sys"
    }
    hot 2 http://127.0.0.1:$PEER_PORT/api/v1/tables >/dev/null
    read -r u0 s0 < <(peer_ticks)
    out=$(load "$LOAD" http://127.0.0.1:$PEER_PORT/api/v1/tables)
    read -r u1 s1 < <(peer_ticks)
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    awk -v r="$r" -v peer="$PEER" -v rps="$rps" -v n="$n" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) -v t="$TICK" \
        'BEGIN {printf "round %d  %-40s %9s req/s  user %5.1f us/req  sys %5.1f us/req\n", r, peer, rps, du / t * 1e6 / n, ds / t * 1e6 / n}'
done
