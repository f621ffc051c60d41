#!/usr/bin/env bash
# om-gateway beside nginx, HAProxy and Apache on the shared harness (../shared/bench), plus the two
# things that harness does not measure: a never-seen token on every request ("fresh") and memory.
#
# usage: bench/run-gateway.sh [PHASE...]      phases: shared fresh rss pair (default: shared fresh rss)
#
#   shared  ../shared/bench/run.sh gateway=http://127.0.0.1:18080: hot (one token) and cold
#           (10,000 tokens in rotation) beside direct, nginx-plain, haproxy-jwt, apache-oidc.
#   fresh   every request carries a token minted for this run (bench/mint-tokens.py, kept in
#           $GWBENCH_DIR/fresh): gateway vs haproxy-jwt vs nginx-plain, interleaved; the gateway is
#           restarted before each of its runs so its cache starts empty, and the token file holds
#           more tokens than a run can send (fresh.lua reports a wrap if not).
#   pair    the issue-17 table in one run: two gateways side by side, the default configuration
#           (access log on, JSON lines to a file; :18080) and `accessLog: false` (:18081), beside
#           direct, nginx-plain, nginx-log and haproxy-jwt (PAIR_PEERS), via run.sh; with
#           BARE_RELAY=path (examples/bare_relay, release) also the relay alone, as bare-relay.
#   rss     VmRSS of the gateway idle after start, then after 100,000 distinct tokens went through
#           it (cache full at its default maxEntries 100000), then after a hot run.
#
# env: ROUNDS=3 DURATION=10s (shared, passed to run.sh with the rest of its knobs)
#      FRESH_ROUNDS=3 FRESH_DURATION=5s FRESH_TOKENS=200000 CONNS=32 THREADS=1
#      ACCESS_LOG=off|on   (on: the gateway logs every request to stdout, written to a file)
#      GATEWAY_BIN=path    (skip the build and use this binary)
#      WORKERS=            (server.workers for the gateway, if set; default one per CPU)
#      GWBENCH_DIR=/tmp/gwbench
# Everything listens on 127.0.0.1; every load run is bounded (wrk -d, wrapped in timeout).
# Stops what it started (gateway by pid, servers via servers.sh) on exit.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}
WORK=${GWBENCH_DIR:-/tmp/gwbench}
export GWBENCH_DIR=$WORK
PHASES=${*:-shared fresh rss}
FRESH_ROUNDS=${FRESH_ROUNDS:-3}
FRESH_DURATION=${FRESH_DURATION:-5s}
FRESH_TOKENS=${FRESH_TOKENS:-200000}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
ACCESS_LOG=${ACCESS_LOG:-off}
GW_PORT=18080
ADMIN_PORT=19090
GW_URL=http://127.0.0.1:$GW_PORT/api/v1/tables
GWD=$WORK/gw
API=/api/v1/tables

die() { echo "run-gateway.sh: $*" >&2; exit 1; }
log() { echo "== $*"; }

# ---------------------------------------------------------------- prerequisites
if [[ ! -d $WORK ]] || ! command -v wrk >/dev/null || ! command -v haproxy >/dev/null; then
    log "setting up the shared harness ($SHARED/setup.sh)"
    "$SHARED/setup.sh"
fi
mkdir -p "$GWD" "$WORK/fresh"

if [[ -n ${GATEWAY_BIN:-} ]]; then
    BIN=$GATEWAY_BIN
else
    log "building the gateway (release)"
    (cd "$ROOT" && cargo build --release --quiet)
    # Copy it: a shared CARGO_TARGET_DIR may be rebuilt by someone else while we measure.
    cp "${CARGO_TARGET_DIR:-$ROOT/target}/release/om-gateway" "$GWD/om-gateway"
    BIN=$GWD/om-gateway
fi

cat >"$GWD/gateway.yaml" <<EOF
# om-gateway configuration for the bench (written by bench/run-gateway.sh)
server:
  listen: 127.0.0.1:$GW_PORT
  adminListen: 127.0.0.1:$ADMIN_PORT
  logFormat: json
upstream:
  url: http://127.0.0.1:18585
authenticationConfiguration:
  provider: custom-oidc
  publicKeyUrls: [ "http://127.0.0.1:18586/jwks.json" ]
  jwtPrincipalClaims: [ email, preferred_username, sub ]
authorizerConfiguration:
  principalDomain: open-metadata.org
tokenCache: { maxEntries: 100000, ttl: 5m }
EOF
if [[ -n ${WORKERS:-} ]]; then
    sed -i "s/^  logFormat: json$/  logFormat: json\n  workers: $WORKERS/" "$GWD/gateway.yaml"
fi
if [[ $ACCESS_LOG == off ]]; then
    if "$BIN" check --config "$GWD/gateway.yaml" >/dev/null 2>&1 &&
        sed 's/^  logFormat: json$/  logFormat: json\n  accessLog: false/' "$GWD/gateway.yaml" >"$GWD/probe.yaml" &&
        "$BIN" check --config "$GWD/probe.yaml" >/dev/null 2>&1; then
        mv "$GWD/probe.yaml" "$GWD/gateway.yaml"
        GW_LOG_FILTER=info
    else
        # No server.accessLog in this build: drop the per-request info lines by log filter.
        rm -f "$GWD/probe.yaml"
        GW_LOG_FILTER="info,om_gateway::access=warn"
    fi
else
    GW_LOG_FILTER=info
fi
"$BIN" check --config "$GWD/gateway.yaml" >/dev/null || die "the bench config does not validate"

# ---------------------------------------------------------------- start / stop
STARTED=()
GW_PID=
stop_gateway() {
    if [[ -n $GW_PID ]] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID"
        for _ in $(seq 100); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$GW_PID" 2>/dev/null && kill -KILL "$GW_PID"
        wait "$GW_PID" 2>/dev/null || true
    fi
    GW_PID=
}
cleanup() {
    stop_gateway
    local k
    for ((k = ${#STARTED[@]} - 1; k >= 0; k--)); do "$SHARED/servers.sh" stop "${STARTED[k]}" || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_server() { # name: start unless running; remember to stop it
    if ! "$SHARED/servers.sh" status "$1" | grep -q running; then
        "$SHARED/servers.sh" start "$1" >/dev/null
        STARTED+=("$1")
    fi
}

start_gateway() {
    stop_gateway
    local env=(OM_GATEWAY_LOG="$GW_LOG_FILTER")
    env "${env[@]}" "$BIN" run --config "$GWD/gateway.yaml" >>"$GWD/gateway.log" 2>&1 &
    GW_PID=$!
    # Ready = /readyz 200 (keys loaded); poll with a deadline.
    for _ in $(seq 200); do
        if curl -fs -o /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz"; then return 0; fi
        kill -0 "$GW_PID" 2>/dev/null || die "gateway exited; see $GWD/gateway.log"
        sleep 0.05
    done
    die "gateway not ready after 10 s; see $GWD/gateway.log"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$GW_PID/status"; }
metric() { # name{labels} -> value
    curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v m="$1" 'index($0, m" ") == 1 {print $2}'
}

HOT=$(head -1 "$WORK/tokens/hot.jwt")
wrk_run() { # url seconds out [script args...]
    local url=$1 d=$2 out=$3
    shift 3
    local cmd=(wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --latency --timeout 5s)
    if (($#)); then cmd+=(-s "$1" "$url" -- "${@:2}"); else cmd+=(-H "Authorization: Bearer $HOT" "$url"); fi
    timeout --kill-after=5 $((d + 60)) "${cmd[@]}" >"$out" 2>&1 || echo "  !! wrk exited with $? ($out)"
}
summ() {
    awk '/Requests\/sec/ {r=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {n=$NF} /wrapped/ {w+=$NF}
         END {printf "%10s req/s  p50 %-9s p99 %-9s non-2xx %s wrapped %d\n", r, p50, p99, (n==""?0:n), w}' "$1"
}
secs() { local v=$1; v=${v%s}; echo "$v"; }

start_server upstream
: >"$GWD/gateway.log"
RESULTS=$WORK/results/gateway-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RESULTS"
cp "$GWD/gateway.yaml" "$RESULTS/"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "uptime: $(uptime)"
    echo "gateway: $("$BIN" --version 2>/dev/null || echo unknown) ($BIN)"
    echo "access log: $ACCESS_LOG (log filter $GW_LOG_FILTER)"
    echo "rustc: $(rustc --version)"
} | tee "$RESULTS/env.txt"

for phase in $PHASES; do
    case $phase in
    shared)
        log "shared harness: run.sh gateway=$GW_URL"
        start_gateway
        "$SHARED/run.sh" "gateway=http://127.0.0.1:$GW_PORT" | tee "$RESULTS/shared.txt"
        stop_gateway
        ;;
    fresh)
        d=$(secs "$FRESH_DURATION")
        ((d >= 1 && d <= 60)) || die "FRESH_DURATION must be 1..60 s"
        tokens=$WORK/fresh/tokens.txt
        have=$( [[ -s $tokens ]] && wc -l <"$tokens" || echo 0)
        if ((have < FRESH_TOKENS)); then
            log "minting $FRESH_TOKENS fresh tokens (RSA-2048 signing; takes a while)"
            python3 "$HERE/mint-tokens.py" --dir "$WORK" --count "$FRESH_TOKENS" --out "$tokens"
        fi
        start_server nginx-plain
        start_server haproxy-jwt
        peers=(gateway haproxy-jwt nginx-plain)
        declare -A url=([gateway]=$GW_URL [haproxy-jwt]=http://127.0.0.1:18002$API [nginx-plain]=http://127.0.0.1:18001$API)
        log "fresh: a never-seen token on every request, ${FRESH_DURATION} x $FRESH_ROUNDS rounds, $(wc -l <"$tokens") tokens"
        for ((r = 1; r <= FRESH_ROUNDS; r++)); do
            for ((k = 0; k < ${#peers[@]}; k++)); do
                p=${peers[(k + r - 1) % ${#peers[@]}]}
                # An empty cache for every gateway run; the hot warm-up caches one token only.
                [[ $p == gateway ]] && start_gateway
                wrk_run "${url[$p]}" 2 "$RESULTS/fresh.warmup.$p.r$r.txt"
                sleep 1
                wrk_run "${url[$p]}" "$d" "$RESULTS/fresh.$p.r$r.txt" "$HERE/fresh.lua" "$tokens" "$THREADS"
                if [[ $p == gateway ]]; then
                    misses=$(metric 'om_gateway_token_cache_requests_total{result="miss"}')
                    echo "  (gateway cache misses this run: ${misses:-?})" >>"$RESULTS/fresh.$p.r$r.txt"
                fi
                printf '  r%d %-12s %s' "$r" "$p" "$(summ "$RESULTS/fresh.$p.r$r.txt")"
                echo
            done
        done
        stop_gateway
        python3 - "$RESULTS" <<'PY' | tee "$RESULTS/fresh.md"
import glob, os, re, statistics, sys
res = sys.argv[1]
def parse(path):
    t = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    def lat(p):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, t, re.M)
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1, "ms": 1000, "s": 1e6}[u]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", t)
    wrapped = sum(int(x) for x in re.findall(r"wrapped (\d+) times", t))
    return rps, lat(50), lat(99), int(non2xx.group(1)) if non2xx else 0, wrapped
rows = {}
for f in sorted(glob.glob(os.path.join(res, "fresh.*.r*.txt"))):
    if ".warmup." in f: continue
    peer = os.path.basename(f).split(".")[1]
    rows.setdefault(peer, []).append(parse(f))
med = {p: statistics.median(r[0] for r in v) for p, v in rows.items()}
print("| peer | mode | req/s (median) | p50 | p99 | non-2xx | wrapped | vs nginx-plain | vs haproxy-jwt | req/s per round |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
fmt = lambda us: f"{us/1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"
for p in ("gateway", "haproxy-jwt", "nginx-plain"):
    if p not in rows: continue
    v = rows[p]
    print(f"| {p} | fresh | {med[p]:.0f} | {fmt(statistics.median(r[1] for r in v))} | {fmt(statistics.median(r[2] for r in v))} | "
          f"{sum(r[3] for r in v)} | {sum(r[4] for r in v)} | {med[p]/med.get('nginx-plain', float('nan')):.2f}× | "
          f"{med[p]/med.get('haproxy-jwt', float('nan')):.2f}× | {' / '.join(f'{r[0]:.0f}' for r in v)} |")
PY
        ;;
    pair)
        # gateway-log: the bench config with the access log on (the default); gateway-nolog: the
        # same on :18081 / :19091 with `accessLog: false`.
        sed '/^  accessLog: false$/d' "$GWD/gateway.yaml" >"$GWD/gateway-log.yaml"
        sed -e "s/^  listen: 127.0.0.1:$GW_PORT$/  listen: 127.0.0.1:18081/" \
            -e "s/^  adminListen: 127.0.0.1:$ADMIN_PORT$/  adminListen: 127.0.0.1:19091/" \
            -e 's/^  logFormat: json$/  logFormat: json\n  accessLog: false/' \
            "$GWD/gateway-log.yaml" >"$GWD/gateway-nolog.yaml"
        "$BIN" check --config "$GWD/gateway-log.yaml" >/dev/null || die "gateway-log.yaml does not validate"
        "$BIN" check --config "$GWD/gateway-nolog.yaml" >/dev/null || die "gateway-nolog.yaml does not validate"
        cp "$GWD/gateway-log.yaml" "$GWD/gateway-nolog.yaml" "$RESULTS/"
        OM_GATEWAY_LOG=info "$BIN" run --config "$GWD/gateway-nolog.yaml" >"$GWD/gateway-nolog.log" 2>&1 &
        NOLOG_PID=$!
        trap 'kill -TERM $NOLOG_PID 2>/dev/null; cleanup' EXIT
        saved=$GWD/gateway.yaml.saved
        cp "$GWD/gateway.yaml" "$saved"
        cp "$GWD/gateway-log.yaml" "$GWD/gateway.yaml"
        GW_LOG_FILTER=info start_gateway
        cp "$saved" "$GWD/gateway.yaml"
        for _ in $(seq 200); do curl -fs -o /dev/null http://127.0.0.1:19091/readyz && break; sleep 0.05; done
        log "pair: gateway-log=:$GW_PORT (access log to $GWD/gateway.log) gateway-nolog=:18081"
        extra=()
        BARE_PID=
        if [[ -n ${BARE_RELAY:-} ]]; then
            # The relay alone (examples/bare_relay.rs): no auth, so it fails the auth check;
            # FORCE=1 loads it anyway (every other peer passes or is open).
            BARE_LISTEN=127.0.0.1:18082 BARE_READY=127.0.0.1:19092 "$BARE_RELAY" >"$GWD/bare-relay.log" 2>&1 &
            BARE_PID=$!
            trap 'kill -TERM $NOLOG_PID $BARE_PID 2>/dev/null; cleanup' EXIT
            for _ in $(seq 200); do curl -fs -o /dev/null http://127.0.0.1:19092/ && break; sleep 0.05; done
            extra=("bare-relay=http://127.0.0.1:18082")
            log "pair: bare-relay=:18082 ($BARE_RELAY)"
        fi
        FORCE=${BARE_RELAY:+1} PEERS=${PAIR_PEERS:-direct nginx-plain nginx-log haproxy-jwt} "$SHARED/run.sh" \
            "gateway-log=http://127.0.0.1:$GW_PORT" "gateway-nolog=http://127.0.0.1:18081" "${extra[@]}" | tee "$RESULTS/pair.txt"
        stop_gateway
        kill -TERM "$NOLOG_PID" ${BARE_PID:+"$BARE_PID"} 2>/dev/null || true
        wait "$NOLOG_PID" 2>/dev/null || true
        [[ -n $BARE_PID ]] && { wait "$BARE_PID" 2>/dev/null || true; }
        ;;
    rss)
        tokens=$WORK/fresh/tokens.txt
        [[ -s $tokens ]] || die "rss needs $tokens (run the fresh phase first)"
        head -100000 "$tokens" >"$WORK/fresh/100k.txt"
        start_gateway
        sleep 2
        idle=$(rss_kib)
        # Send the 100k tokens once (fresh.lua wraps after them: later requests are hits).
        n=0
        for _ in 1 2 3 4 5 6; do
            wrk_run "$GW_URL" 10 "$RESULTS/rss.load.txt" "$HERE/fresh.lua" "$WORK/fresh/100k.txt" 1
            n=$(metric 'om_gateway_token_cache_requests_total{result="miss"}')
            [[ ${n%.*} -ge 100000 ]] && break
        done
        sleep 2
        full=$(rss_kib)
        wrk_run "$GW_URL" 5 "$RESULTS/rss.hot.txt"
        hot=$(rss_kib)
        {
            echo "| state | VmRSS |"
            echo "|---|---:|"
            echo "| idle, 2 s after ready (keys loaded) | $((idle / 1024)) MiB ($idle KiB) |"
            echo "| after 100,000 distinct tokens (cache misses: $n) | $((full / 1024)) MiB ($full KiB) |"
            echo "| then 5 s hot load | $((hot / 1024)) MiB ($hot KiB) |"
        } | tee "$RESULTS/rss.md"
        stop_gateway
        ;;
    *) die "unknown phase '$phase' (shared fresh rss)" ;;
    esac
done
log "results in $RESULTS"
