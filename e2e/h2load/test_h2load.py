"""HTTP/2 load through the gateway with h2load (nghttp2), bounded in request count.

* h2c with prior knowledge (h2load's default for http:// URIs) and HTTP/2 over TLS (the
  gateway's ``server.tls`` with a self-signed certificate made here with openssl, ALPN h2):
  every request 2xx, none failed, errored or timed out, and exactly that many requests reached
  the stand-in server.
* The same load with a token signed by a key the gateway does not trust: every stream answered
  401 by the gateway, none reset or errored, nothing forwarded.

Traffic stays on 127.0.0.1. Run by ``e2e/run.sh h2load`` (it installs nghttp2-client).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from gateway import Gateway, KeyPair, gateway_config, jwks  # noqa: E402
from harness import case, check, cleanup, equal, main  # noqa: E402
from standin import OpenMetadataStandIn  # noqa: E402

PART = "h2load"
S: dict = {}
REQUESTS = 2000
CLIENTS = 4
STREAMS = 16  # concurrent streams per connection
TARGET = "/api/v1/tables/name/warehouse.sales.public.customers?fields=columns"


def setup() -> None:
    directory = Path(tempfile.mkdtemp(prefix="e2e-h2load-"))
    S["dir"] = directory
    key = KeyPair.generate(directory, "e2e-om-key")
    S["key"] = key
    S["foreign"] = KeyPair.generate(directory, "e2e-foreign")
    S["standin"] = standin = OpenMetadataStandIn(jwks(key))
    host = standin.address
    standin.put_entity("services/databaseServices", {"name": "warehouse", "serviceType": "Mysql"}, "admin", host)
    standin.put_entity("databases", {"name": "sales", "service": "warehouse"}, "admin", host)
    standin.put_entity("databaseSchemas", {"name": "public", "database": "warehouse.sales"}, "admin", host)
    standin.put_entity("tables", {"name": "customers", "databaseSchema": "warehouse.sales.public",
                                  "columns": [{"name": "id", "dataType": "INT"}]}, "admin", host)
    S["h2c"] = Gateway(gateway_config(standin.url, standin.jwks_url), directory, name="h2c")
    cert, private_key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(private_key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    tls = (f"server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\n"
           f"  tls:\n    certFile: {cert}\n    keyFile: {private_key}\n")
    S["tls"] = Gateway(tls + gateway_config(standin.url, standin.jwks_url), directory, name="tls")
    S["token"] = key.token("ingestion-bot", bot=True, expires="never")


def teardown() -> None:
    for name in ("h2c", "tls", "standin"):
        if name in S:
            S[name].stop()
    if "dir" in S:
        cleanup(S["dir"], [S[n].log_path for n in ("h2c", "tls") if n in S])


def h2load(url: str, token: str) -> dict:
    command = ["h2load", "-n", str(REQUESTS), "-c", str(CLIENTS), "-m", str(STREAMS),
               "-H", f"Authorization: Bearer {token}", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    output = result.stdout + result.stderr
    requests = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                         r"(\d+) errored, (\d+) timeout", output)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", output)
    protocol = re.search(r"Application protocol: (\S+)", output)
    check(requests and codes, f"h2load output not understood (exit {result.returncode}):\n{output[-3000:]}")
    names = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    stats = dict(zip(names, map(int, requests.groups())))
    stats.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups())))
    stats["protocol"] = protocol.group(1) if protocol else None
    stats["exit"] = result.returncode
    stats["output"] = output
    return stats


def forwarded_since(mark: int) -> int:
    return len([r for r in S["standin"].since(mark) if r.target == TARGET])


def all_succeeded(gateway: Gateway, scheme: str, protocol: str) -> None:
    mark = S["standin"].mark()
    stats = h2load(gateway.url(TARGET, scheme=scheme), S["token"])
    summary = {k: v for k, v in stats.items() if k != "output"}
    equal(stats["protocol"], protocol, f"application protocol ({summary})")
    equal((stats["done"], stats["2xx"], stats["failed"], stats["errored"], stats["timeout"], stats["exit"]),
          (REQUESTS, REQUESTS, 0, 0, 0, 0), f"done, 2xx, failed, errored, timeout, exit ({summary})")
    equal(forwarded_since(mark), REQUESTS, "requests that reached the stand-in")


def all_refused(gateway: Gateway, scheme: str) -> None:
    mark = S["standin"].mark()
    token = S["foreign"].token("ingestion-bot", bot=True, kid=S["key"].kid)
    stats = h2load(gateway.url(TARGET, scheme=scheme), token)
    summary = {k: v for k, v in stats.items() if k != "output"}
    # Every stream answered (401), none reset or errored: h2load counts a 4xx as `failed`.
    equal((stats["done"], stats["4xx"], stats["2xx"], stats["5xx"], stats["errored"], stats["timeout"]),
          (REQUESTS, REQUESTS, 0, 0, 0, 0), f"done, 4xx, 2xx, 5xx, errored, timeout ({summary})")
    equal(forwarded_since(mark), 0, "requests that reached the stand-in")
    metrics = gateway.metrics()
    check(re.search(r'om_gateway_auth_decisions_total\{[^}]*reason="bad_signature"[^}]*\} (\d+)', metrics)
          and int(re.search(r'om_gateway_auth_decisions_total\{[^}]*reason="bad_signature"[^}]*\} (\d+)',
                            metrics).group(1)) >= REQUESTS,
          "om_gateway_auth_decisions_total{reason=\"bad_signature\"} below the request count")


@case
def h2c_prior_knowledge_all_succeed():
    all_succeeded(S["h2c"], "http", "h2c")


@case
def h2_over_tls_all_succeed():
    all_succeeded(S["tls"], "https", "h2")


@case
def h2c_bad_token_every_stream_401():
    all_refused(S["h2c"], "http")


@case
def h2_over_tls_bad_token_every_stream_401():
    all_refused(S["tls"], "https")


if __name__ == "__main__":
    main(PART, setup, teardown)
