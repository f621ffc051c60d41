# Sourced by bench/profile.sh, bench/perf-profile.sh and bench/cpu-per-request.sh: the gateway
# configuration they measure (the same keys bench/run-gateway.sh writes; BENCHMARKS.md lists it)
# and the shared harness's upstream. Needs $SHARED (../shared/bench) set by the caller.

# bench_gateway_yaml ACCESS_LOG [WORKERS]: the bench configuration on 127.0.0.1:18080 (admin
# :19090) in front of the harness upstream and key server; `server.workers` only if WORKERS is set.
bench_gateway_yaml() {
    local access_log=$1 workers=${2:-}
    cat <<YAML
server:
  listen: 127.0.0.1:18080
  adminListen: 127.0.0.1:19090
  logFormat: json
  accessLog: $access_log
${workers:+  workers: $workers
}upstream:
  url: http://127.0.0.1:18585
authenticationConfiguration:
  provider: custom-oidc
  publicKeyUrls: [ "http://127.0.0.1:18586/jwks.json" ]
  jwtPrincipalClaims: [ email, preferred_username, sub ]
authorizerConfiguration:
  principalDomain: open-metadata.org
tokenCache: { maxEntries: 100000, ttl: 5m }
YAML
}

# start_upstream_unless_running: start the harness upstream if it is not running; STARTED_UPSTREAM
# is 1 when this call started it (so the caller's cleanup stops only what it started).
STARTED_UPSTREAM=
start_upstream_unless_running() {
    if ! "$SHARED/servers.sh" status upstream | grep -q running; then
        "$SHARED/servers.sh" start upstream >/dev/null
        STARTED_UPSTREAM=1
    fi
}
