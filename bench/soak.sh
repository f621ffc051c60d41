#!/usr/bin/env bash
# Bounded soak: steady load through the real gateway binary while keys rotate and the config is
# reloaded with SIGHUP, sampling the gateway's RSS and open fds. Not part of CI.
#
#   bash bench/soak.sh [SECONDS]        # default 120; three equal phases
#
#   phase 1: tokens signed by key A; JWKS serves A
#   rotate:  JWKS serves A and B, SIGHUP, 6 s for the refresh to publish B
#   phase 2: tokens signed by key B
#   rotate:  JWKS serves B only, SIGHUP (A's tokens leave the cache)
#   phase 3: tokens signed by key B
#
# Everything listens on 127.0.0.1. Needs wrk (apt-get install -y wrk), python3, openssl.
# OM_GATEWAY_BIN picks the binary (default: target/release/om-gateway, built if missing).
# Writes samples to $OUT/samples.csv and a summary to stdout ($OUT defaults to a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-120}
phase=$((total / 3))
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
bin=${OM_GATEWAY_BIN:-$target_dir/release/om-gateway}
[ -x "$bin" ] || cargo build --release --locked
connections=${SOAK_CONNECTIONS:-32}

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

jwk() { # PEM public key, kid → JWK
  local modulus
  modulus=$(openssl rsa -pubin -in "$1" -modulus -noout | sed 's/^Modulus=//')
  python3 -c 'import base64,sys; n=bytes.fromhex(sys.argv[1]); print("{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"AQAB\"}" % (sys.argv[2], base64.urlsafe_b64encode(n).rstrip(b"=").decode()))' "$modulus" "$2"
}
keys=tests/fixtures/keys
jwk_a=$(jwk $keys/rsa-a.pub.pem soak-a)
jwk_b=$(jwk $keys/rsa-b.pub.pem soak-b)
echo "{\"keys\":[$jwk_a]}" > "$out/jwks.json"

python3 bench/soak_servers.py "$out/jwks.json" "$out/ports" & pids+=($!)
for _ in $(seq 100); do [ -s "$out/ports" ] && break; sleep 0.1; done
read -r jwks_port upstream_port < "$out/ports"

cat > "$out/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:0, adminListen: 127.0.0.1:0, logFormat: json }
upstream: { url: "http://127.0.0.1:$upstream_port" }
authenticationConfiguration:
  publicKeyUrls: [ "http://127.0.0.1:$jwks_port/jwks.json" ]
jwks: { refreshInterval: 10s, minRefreshInterval: 1s }
tokenCache: { maxEntries: 10000, ttl: 5m }
YAML
OM_GATEWAY_LOG=warn,om_gateway::server=info "$bin" run --config "$out/gateway.yaml" > "$out/gateway.log" 2>&1 & gateway=$!
pids+=($gateway)
# Both addresses come from the "om-gateway serving" log line (the config asks for port 0).
for _ in $(seq 100); do grep -q 'om-gateway serving' "$out/gateway.log" && break; sleep 0.1; done
read -r proxy admin < <(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: event = json.loads(line)
    except ValueError: continue
    if event.get("message") == "om-gateway serving":
        print(event["proxy"].rsplit(":", 1)[1], event["admin"].rsplit(":", 1)[1]); break' "$out/gateway.log")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$admin/readyz" > /dev/null && break; sleep 0.1; done

mint() { # private key, kid, count → file of tokens
  for n in $(seq "$3"); do
    "$bin" token --private-key "$1" --kid "$2" --sub "soak-user-$n" --roles DataConsumer --expires 1h
  done
}
mint $keys/rsa-a.pem soak-a 200 > "$out/tokens-a"
mint $keys/rsa-b.pem soak-b 200 > "$out/tokens-b"

echo "seconds,rss_kib,fds,threads" > "$out/samples.csv"
sample() {
  local start=$SECONDS
  while kill -0 "$gateway" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$gateway/status)
    threads=$(awk '/^Threads/ {print $2}' /proc/$gateway/status)
    fds=$(ls /proc/$gateway/fd | wc -l)
    echo "$((SECONDS - start)),$rss,$fds,$threads" >> "$out/samples.csv"
    sleep 2
  done
}
sample & pids+=($!)

load() { # tokens file, seconds, label
  SOAK_TOKENS="$1" wrk -t2 -c"$connections" -d"$2s" --latency -s bench/soak.lua \
    "http://127.0.0.1:$proxy/" > "$out/wrk-$3.txt" 2>&1
  echo "phase $3: $(grep -E 'requests in' "$out/wrk-$3.txt" | xargs), non-2xx: $(grep -E 'Non-2xx' "$out/wrk-$3.txt" | awk '{print $NF}' || true)$(grep -E 'Socket errors' "$out/wrk-$3.txt" | sed 's/^ */, /' || true)"
}
echo "soak: gateway pid $gateway proxy 127.0.0.1:$proxy admin 127.0.0.1:$admin, ${total}s, $connections connections, out $out"
load "$out/tokens-a" "$phase" 1-key-a
echo "{\"keys\":[$jwk_a,$jwk_b]}" > "$out/jwks.json"; kill -HUP "$gateway"
# Publish before use, as identity providers do: wait out the key endpoint's max-age (5 s) so the
# scheduled refresh picks B up. Signing with B at once would get 401s for up to
# minRefreshInterval (an unknown kid refetches at most that often, by design).
sleep 6
load "$out/tokens-b" "$phase" 2-key-b-rotated-in
echo "{\"keys\":[$jwk_b]}" > "$out/jwks.json"; kill -HUP "$gateway"
load "$out/tokens-b" "$phase" 3-key-a-retired
sleep 2
# After retirement, key A's tokens must be refused.
retired=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(head -1 "$out/tokens-a")" "http://127.0.0.1:$proxy/api/v1/tables")
echo "key A token after retirement: $retired"
echo "reloads: $(curl -s "http://127.0.0.1:$admin/metrics" | grep '^om_gateway_config_reloads_total' | xargs)"
echo "samples (first, last):"; sed -n '2p;$p' "$out/samples.csv"
echo "max rss_kib: $(tail -n +2 "$out/samples.csv" | cut -d, -f2 | sort -n | tail -1), max fds: $(tail -n +2 "$out/samples.csv" | cut -d, -f3 | sort -n | tail -1)"
echo "gateway errors logged: $(grep -c '"level":"ERROR"' "$out/gateway.log" || true)"
