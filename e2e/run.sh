#!/usr/bin/env bash
# The end-to-end suite: OpenMetadata's own clients and real ingress controllers through the
# gateway, against a stand-in OpenMetadata server, all on 127.0.0.1. See e2e/README.md.
#
#   bash e2e/run.sh                  every part
#   bash e2e/run.sh sdk feed         some parts (sdk ingest feed ingress h2load)
#
# Each part installs what it needs (apt-get as root, pip into a virtualenv and npm into a folder
# under $E2E_CACHE, default ~/.cache/om-gateway-e2e, so reruns skip the installs), runs under a
# `timeout`, and prints one PASS/FAIL line per case. The last line is `N passed, M failed`; the
# exit code is 1 when anything failed (a case, an install, a part that timed out or crashed).
#
# OM_GATEWAY_BIN=path uses that binary instead of building target/debug/om-gateway.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)
E2E_CACHE=${E2E_CACHE:-$HOME/.cache/om-gateway-e2e}
PYTHON=${E2E_PYTHON:-python3}
mkdir -p "$E2E_CACHE"
E2E_RESULTS=$(mktemp)
export E2E_RESULTS PYTHONDONTWRITEBYTECODE=1
trap 'rm -f "$E2E_RESULTS"' EXIT

all_parts=(sdk ingest feed ingress h2load)
if [ $# -gt 0 ]; then parts=("$@"); else parts=("${all_parts[@]}"); fi
for part in "${parts[@]}"; do
  case " ${all_parts[*]} " in *" $part "*) ;; *) echo "e2e: unknown part '$part' (parts: ${all_parts[*]})" >&2; exit 2 ;; esac
done
wants() { case " ${parts[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

note() { printf '\n--- e2e: %s (%ss)\n' "$*" "$(( $(date +%s) - started ))"; }
record_fail() { echo "FAIL $1" | tee -a "$E2E_RESULTS"; }
# A key for an install: the pin files without their comments, so a reworded comment reuses it.
hash_of() { grep -hv '^[[:space:]]*#' "$@" | sha256sum | cut -c1-16; }

# --- system packages -----------------------------------------------------------------------
need=()
need_command() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || need+=("$2"); }
need_command openssl openssl
if wants sdk || wants ingest; then
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
fi
if wants feed; then need_command node nodejs; need_command npm npm; fi
if wants ingress; then need_command caddy caddy; need_command nginx nginx-light; fi
if wants h2load; then need_command h2load nghttp2-client; fi
if [ ${#need[@]} -gt 0 ]; then
  note "apt-get install ${need[*]}"
  if [ "$(id -u)" != 0 ]; then
    record_fail "setup::system-packages: missing ${need[*]} and not root, cannot install"
  elif ! { timeout 300 apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    record_fail "setup::system-packages: apt-get install ${need[*]} failed"
  fi
fi

# --- the gateway ---------------------------------------------------------------------------
if [ -z "${OM_GATEWAY_BIN:-}" ]; then
  note "cargo build"
  if timeout 1800 cargo build --quiet --bin om-gateway; then
    export OM_GATEWAY_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/om-gateway"
  else
    record_fail "setup::cargo-build: cargo build failed"
  fi
fi

# --- installs, each once per content of its pin files ------------------------------------
venv=""
python_venv() {
  [ -n "$venv" ] && return 0
  local key dir
  key=$(hash_of e2e/sdk/requirements.txt e2e/sdk/constraints.txt <("$PYTHON" -VV))
  dir="$E2E_CACHE/venv-$key"
  if [ ! -f "$dir/.complete" ]; then
    note "pip install (into $dir)"
    rm -rf "$dir"
    if ! { "$PYTHON" -m venv "$dir" &&
           timeout 900 "$dir/bin/pip" install --quiet --disable-pip-version-check \
             -c e2e/sdk/constraints.txt -r e2e/sdk/requirements.txt; }; then
      rm -rf "$dir"
      return 1
    fi
    touch "$dir/.complete"
  fi
  venv=$dir
}

node_modules() {
  local key dir
  key=$(hash_of e2e/feed/package.json e2e/feed/package-lock.json <(node --version))
  dir="$E2E_CACHE/node-$key"
  if [ ! -f "$dir/.complete" ]; then
    note "npm ci (into $dir)"
    rm -rf "$dir" && mkdir -p "$dir" && cp e2e/feed/package.json e2e/feed/package-lock.json "$dir/" || return 1
    if ! (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      rm -rf "$dir"
      return 1
    fi
    touch "$dir/.complete"
  fi
  export E2E_NODE_MODULES="$dir/node_modules"
}

# --- the parts -----------------------------------------------------------------------------
# run_part NAME SECONDS COMMAND...: a part that times out, crashes before recording a failure,
# or records no case at all, is a failure of its own.
run_part() {
  local name=$1 limit=$2 rc
  shift 2
  note "$name"
  timeout --kill-after=15 "$limit" "$@"
  rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    record_fail "$name::part: timed out after ${limit}s"
  elif [ "$rc" != 0 ] && ! grep -q "^FAIL $name::" "$E2E_RESULTS"; then
    record_fail "$name::part: exited with $rc and no failure recorded"
  elif ! grep -Eq "^(PASS|FAIL) $name::" "$E2E_RESULTS"; then
    record_fail "$name::part: ran no case"
  fi
}

if [ -n "${OM_GATEWAY_BIN:-}" ]; then
  for part in "${parts[@]}"; do
    case $part in
      sdk)
        if python_venv; then run_part sdk 300 "$venv/bin/python" e2e/sdk/test_sdk.py
        else record_fail "sdk::install: pip install of e2e/sdk/requirements.txt failed"; fi ;;
      ingest)
        if python_venv; then run_part ingest 480 "$venv/bin/python" e2e/sdk/test_ingest.py
        else record_fail "ingest::install: pip install of e2e/sdk/requirements.txt failed"; fi ;;
      feed)
        if node_modules; then run_part feed 180 "$PYTHON" e2e/feed/test_feed.py
        else record_fail "feed::install: npm ci of e2e/feed/package-lock.json failed"; fi ;;
      ingress) run_part ingress 180 "$PYTHON" e2e/ingress/test_ingress.py ;;
      h2load) run_part h2load 300 "$PYTHON" e2e/h2load/test_h2load.py ;;
    esac
  done
fi

# --- the verdict ---------------------------------------------------------------------------
passed=$(grep -c '^PASS ' "$E2E_RESULTS")
failed=$(grep -c '^FAIL ' "$E2E_RESULTS")
note "done"
if [ "$failed" -gt 0 ]; then
  echo "failed:"
  grep '^FAIL ' "$E2E_RESULTS" | sed 's/^/  /'
fi
echo "e2e suite took $(( $(date +%s) - started ))s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
