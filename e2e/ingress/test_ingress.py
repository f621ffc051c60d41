"""Ingress controllers in front of the stand-in server, with the gateway as their auth service.

* Caddy's ``forward_auth`` (the Debian package; the same semantics as Traefik's ForwardAuth:
  ``X-Forwarded-Method`` and ``X-Forwarded-Uri``, the auth answer's headers copied with
  ``copy_headers``), configured as a user would from the README's Traefik snippet.
* nginx ``auth_request`` with the shipped ``deploy/nginx/om-gateway-auth.conf``, only the three
  addresses marked CHANGE replaced. (tests/it/forward_auth.rs checks its path tricks; here: what
  a user does, a good token through and a bad one refused.)

Each case checks the answer the client gets and what the stand-in behind the ingress received.
Run by ``e2e/run.sh ingress`` (it installs caddy and nginx-light).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

from gateway import REPO, Gateway, KeyPair, gateway_config, jwks, wait_until  # noqa: E402
from harness import case, check, cleanup, equal, main  # noqa: E402
from standin import OpenMetadataStandIn  # noqa: E402

PART = "ingress"
S: dict = {}
IDENTITY = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Roles", "X-Auth-Request-Is-Bot",
            "X-Auth-Request-Token-Type"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(address: str, method: str, target: str, headers: dict = None):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, response.headers, body


class Daemon:
    """A reverse proxy in the foreground, killed at teardown."""

    def __init__(self, name: str, command: list, address: str, directory: Path, env: dict = None):
        self.name = name
        self.address = address
        self.log_path = directory / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=dict(os.environ, **(env or {})))
        wait_until(self._answers, 20, f"{name} answering on {address}")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.log()[-2000:]}")
        try:
            return request(self.address, "GET", "/api/v1/system/version")[0] == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_caddy(directory: Path, gateway: str, upstream: str) -> Daemon:
    port = free_port()
    caddyfile = directory / "Caddyfile"
    headers = " ".join(IDENTITY)
    caddyfile.write_text(f"""\
{{
\tadmin off
\tauto_https off
}}

http://127.0.0.1:{port} {{
\tforward_auth {gateway} {{
\t\turi /_gateway/auth
\t\tcopy_headers {headers}
\t}}
\treverse_proxy {upstream}
}}
""")
    home = directory / "caddy-home"
    home.mkdir()
    return Daemon("caddy", ["caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                  f"127.0.0.1:{port}", directory,
                  env={"HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)})


def nginx_binary() -> str:
    for candidate in ("nginx", "/usr/sbin/nginx"):
        if shutil.which(candidate):
            return shutil.which(candidate)
    raise RuntimeError("nginx is not installed (apt-get install nginx-light)")


def start_nginx(directory: Path, gateway: str, upstream: str) -> Daemon:
    port = free_port()
    site = (REPO / "deploy" / "nginx" / "om-gateway-auth.conf").read_text()
    for shipped, ours in (("server om-gateway:8080;", f"server {gateway};"),
                          ("server openmetadata:8585;", f"server {upstream};"),
                          ("listen 80;", f"listen 127.0.0.1:{port};")):
        check(shipped in site, f"deploy/nginx/om-gateway-auth.conf no longer has `{shipped}`")
        site = site.replace(shipped, ours)
    root = directory / "nginx"
    root.mkdir()
    config = root / "nginx.conf"
    config.write_text(
        f"daemon off;\nworker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log info;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n  access_log {root}/access.log;\n  client_body_temp_path {root}/body;\n"
        f"  proxy_temp_path {root}/proxy;\n  fastcgi_temp_path {root}/fastcgi;\n  uwsgi_temp_path {root}/uwsgi;\n"
        f"  scgi_temp_path {root}/scgi;\n{site}\n}}\n")
    return Daemon("nginx", [nginx_binary(), "-p", str(root), "-e", str(root / "error.log"), "-c", str(config)],
                  f"127.0.0.1:{port}", directory)


def setup() -> None:
    directory = Path(tempfile.mkdtemp(prefix="e2e-ingress-"))
    S["dir"] = directory
    key = KeyPair.generate(directory, "e2e-om-key")
    S["key"] = key
    S["standin"] = standin = OpenMetadataStandIn(jwks(key))
    S["gateway"] = gateway = Gateway(gateway_config(standin.url, standin.jwks_url), directory)
    S["caddy"] = start_caddy(directory, gateway.proxy, standin.address)
    S["nginx"] = start_nginx(directory, gateway.proxy, standin.address)
    S["alice"] = key.token("alice", roles=["DataConsumer"])


def teardown() -> None:
    for name in ("caddy", "nginx", "gateway", "standin"):
        if name in S:
            S[name].stop()
    if "dir" in S:
        cleanup(S["dir"], [S[n].log_path for n in ("gateway", "caddy", "nginx") if n in S])


def allowed_with_identity(ingress: str) -> None:
    standin = S["standin"]
    mark = standin.mark()
    forged = {"X-Auth-Request-User": "admin", "X-Auth-Request-Roles": "Admin", "X-Auth-Request-Is-Bot": "true"}
    status, _, body = request(S[ingress].address, "GET", "/api/v1/tables?limit=1",
                              dict(forged, Authorization=f"Bearer {S['alice']}"))
    equal(status, 200, f"status through {ingress} ({body[:200]!r})")
    check("data" in json.loads(body), f"not the stand-in's list answer: {body[:200]!r}")
    seen = standin.since(mark)
    equal([(r.method, r.target) for r in seen], [("GET", "/api/v1/tables?limit=1")], "requests upstream")
    identity = {name: seen[0].header_all(name) for name in IDENTITY}
    equal(identity, {
        "X-Auth-Request-User": ["alice"],
        "X-Auth-Request-Email": ["alice@open-metadata.org"],
        "X-Auth-Request-Roles": ["DataConsumer"],
        "X-Auth-Request-Is-Bot": ["false"],
        "X-Auth-Request-Token-Type": ["PERSONAL_ACCESS"],
    }, f"identity headers the stand-in received through {ingress} (forged ones sent: {forged})")
    equal(seen[0].header("Authorization"), f"Bearer {S['alice']}", "Authorization upstream")


def refused(ingress: str, method: str, target: str, token: str, status: int):
    """The request must get ``status`` and reach nothing behind the ingress; (headers, body)."""
    standin = S["standin"]
    mark = standin.mark()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    got, response_headers, body = request(S[ingress].address, method, target, headers)
    equal(got, status, f"status through {ingress} ({body[:200]!r})")
    equal(standin.since(mark), [], f"requests that reached the stand-in through {ingress}")
    if status == 401:
        check((response_headers.get("WWW-Authenticate") or "").startswith('Bearer realm="om-gateway"'),
              f"WWW-Authenticate: {response_headers.get('WWW-Authenticate')!r}")
    return response_headers, body


def refused_body(*args) -> bytes:
    return refused(*args)[1]


@case
def caddy_good_token_reaches_the_server_with_identity():
    allowed_with_identity("caddy")


def forged_roles_do_not_survive(ingress: str) -> None:
    # A token without roles: the gateway answers an empty X-Auth-Request-Roles, which must
    # replace the client's own copy on the way to the server.
    standin = S["standin"]
    mark = standin.mark()
    status, _, _ = request(S[ingress].address, "GET", "/api/v1/tables?limit=1",
                           {"Authorization": f"Bearer {S['key'].token('bob')}", "X-Auth-Request-Roles": "Admin"})
    equal(status, 200, f"status through {ingress}")
    seen = standin.since(mark)
    equal(len(seen), 1, "requests upstream")
    check(seen[0].header_all("X-Auth-Request-Roles") in ([], [""]),
          f"X-Auth-Request-Roles upstream through {ingress}: {seen[0].header_all('X-Auth-Request-Roles')}")


@case
def caddy_forged_roles_do_not_survive_a_token_without_roles():
    forged_roles_do_not_survive("caddy")


@case
def caddy_expired_token_gets_401():
    # Caddy hands the auth service's answer to the client as it is: the gateway's JSON.
    body = json.loads(refused_body("caddy", "GET", "/api/v1/tables", S["key"].token("alice", expires="-1h"), 401))
    equal(body, {"code": 401, "message": "Expired token!"}, "the gateway's answer through caddy")


@case
def caddy_missing_token_gets_401():
    body = json.loads(refused_body("caddy", "GET", "/api/v1/tables", "", 401))
    equal(body["message"], "Not Authorized! Token not present", "message")


@case
def caddy_route_rule_judges_the_original_method():
    body = json.loads(refused_body("caddy", "DELETE", "/api/v1/bots/0d3c4a8e-7b5e-4d3f-9a1b-2c3d4e5f6a7b", S["alice"], 403))
    equal(body["message"], "Forbidden: route `bots-write-admin` requires a role among [Admin]", "message")


@case
def caddy_encoded_path_is_judged_after_normalisation():
    body = json.loads(refused_body("caddy", "DELETE", "/api/v1/%62ots/0d3c4a8e-7b5e-4d3f-9a1b-2c3d4e5f6a7b", S["alice"], 403))
    check("bots-write-admin" in body["message"], f"message: {body['message']!r}")


@case
def caddy_public_path_needs_no_token():
    status, _, body = request(S["caddy"].address, "GET", "/api/v1/system/version")
    equal(status, 200, "status")
    check("version" in json.loads(body), f"body {body!r}")


@case
def caddy_public_path_carries_no_identity_upstream():
    # A public path has no principal. Caddy's copy_headers (2.6, Debian's) turns a header the
    # auth answer lacks into its unexpanded placeholder, `{http.reverse_proxy.header.X-...}`, so
    # the gateway must answer all five headers, empty, as it does for a token without a claim.
    standin = S["standin"]
    mark = standin.mark()
    status, _, _ = request(S["caddy"].address, "GET", "/signin", {"X-Auth-Request-User": "admin"})
    equal(status, 200, "status")
    seen = standin.since(mark)
    equal(len(seen), 1, "requests upstream")
    identity = {name: seen[0].header_all(name) for name in IDENTITY}
    equal({name: values for name, values in identity.items() if values not in ([], [""])}, {},
          "identity headers with a value upstream for a public path")


@case
def nginx_good_token_reaches_the_server_with_identity():
    allowed_with_identity("nginx")


@case
def nginx_forged_roles_do_not_survive_a_token_without_roles():
    forged_roles_do_not_survive("nginx")


@case
def nginx_bad_signature_gets_401():
    foreign = KeyPair.generate(S["dir"], "e2e-foreign")
    # auth_request answers with nginx's own 401 page; the snippet passes the gateway's challenge.
    headers, _ = refused("nginx", "GET", "/api/v1/tables", foreign.token("alice", kid=S["key"].kid), 401)
    equal(headers.get("WWW-Authenticate"), 'Bearer realm="om-gateway", error="invalid_token"', "WWW-Authenticate")


if __name__ == "__main__":
    main(PART, setup, teardown)
