"""The `metadata ingest` CLI through the gateway.

A workflow file shaped like OpenMetadata's own examples (a SQLite source on a file this test
creates, the `metadata-rest` sink, `openMetadataServerConfig` with `authProvider: openmetadata`
and a bot's `jwtToken`) pointed at the gateway. The run must end with 100 % success and leave the
database, schema, tables, columns and the foreign key in the stand-in server; with an expired
token the CLI must fail with the gateway's `Expired token!` and nothing may reach the server.

Run by ``e2e/run.sh ingest`` under the suite's virtualenv (the `metadata` entry point beside
its Python).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from gateway import Gateway, KeyPair, gateway_config, jwks  # noqa: E402
from harness import case, check, cleanup, equal, main  # noqa: E402
from standin import OpenMetadataStandIn  # noqa: E402

from metadata.__version__ import get_client_version  # noqa: E402

PART = "ingest"
S: dict = {}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
METADATA = str(Path(sys.executable).with_name("metadata"))


def setup() -> None:
    directory = Path(tempfile.mkdtemp(prefix="e2e-ingest-"))
    S["dir"] = directory
    key = KeyPair.generate(directory, "e2e-om-key")
    S["key"] = key
    S["standin"] = standin = OpenMetadataStandIn(jwks(key), version=".".join(get_client_version().split(".")[:3]))
    S["gateway"] = Gateway(gateway_config(standin.url, standin.jwks_url), directory)
    database = directory / "shop.db"
    connection = sqlite3.connect(database)
    connection.executescript(
        """
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email VARCHAR(120));
        CREATE TABLE orders (
            id INTEGER PRIMARY KEY,
            customer_id INTEGER NOT NULL REFERENCES customers(id),
            total NUMERIC(10, 2),
            placed_at TIMESTAMP
        );
        CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
        INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com');
        """
    )
    connection.commit()
    connection.close()
    S["database"] = database


def teardown() -> None:
    if "gateway" in S:
        S["gateway"].stop()
    if "standin" in S:
        S["standin"].stop()
    if "dir" in S:
        cleanup(S["dir"], [S["gateway"].log_path] if "gateway" in S else [])


def workflow(token: str, service: str) -> Path:
    path = S["dir"] / f"{service}.yaml"
    path.write_text(f"""\
source:
  type: sqlite
  serviceName: {service}
  serviceConnection:
    config:
      type: SQLite
      databaseMode: {S['database']}
      database: shop
  sourceConfig:
    config:
      type: DatabaseMetadata
      markDeletedTables: true
      includeViews: true
sink:
  type: metadata-rest
  config: {{}}
workflowConfig:
  loggerLevel: INFO
  openMetadataServerConfig:
    hostPort: {S['gateway'].url('/api')}
    authProvider: openmetadata
    securityConfig:
      jwtToken: "{token}"
""")
    return path


def ingest(path: Path) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONWARNINGS="ignore")
    result = subprocess.run([METADATA, "ingest", "-c", str(path)], capture_output=True, text=True,
                            timeout=300, env=environment)
    result.stdout = ANSI.sub("", result.stdout)
    result.stderr = ANSI.sub("", result.stderr)
    return result


def tail(result: subprocess.CompletedProcess) -> str:
    return (result.stdout + result.stderr)[-4000:]


@case
def sqlite_to_metadata_rest_through_the_gateway_succeeds():
    standin = S["standin"]
    token = S["key"].token("ingestion-bot", bot=True, expires="never")
    mark = standin.mark()
    result = ingest(workflow(token, "e2e_sqlite"))
    output = result.stdout + result.stderr
    equal(result.returncode, 0, f"`metadata ingest` exit code; output:\n{tail(result)}")
    check("Workflow Success %: 100.0" in output, f"no 100 % success line:\n{tail(result)}")
    check(not re.search(r"Errors: [1-9]", output), f"errors reported:\n{tail(result)}")
    equal(standin.unknown_routes(), [], "requests the stand-in does not serve")

    service = standin.entity("services/databaseServices", "e2e_sqlite")
    check(service is not None and service["serviceType"] == "SQLite", f"service {service}")
    check(standin.entity("databases", "e2e_sqlite.shop") is not None, "database e2e_sqlite.shop")
    check(standin.entity("databaseSchemas", "e2e_sqlite.shop.main") is not None, "schema e2e_sqlite.shop.main")
    customers = standin.entity("tables", "e2e_sqlite.shop.main.customers")
    orders = standin.entity("tables", "e2e_sqlite.shop.main.orders")
    view = standin.entity("tables", "e2e_sqlite.shop.main.big_orders")
    check(customers and orders and view, "tables customers, orders and the view big_orders")
    equal([c["name"] for c in customers["columns"]], ["id", "name", "email"], "customers' columns")
    equal([c["name"] for c in orders["columns"]], ["id", "customer_id", "total", "placed_at"], "orders' columns")
    equal(view.get("tableType"), "View", "big_orders' tableType")
    foreign_keys = [c for c in orders.get("tableConstraints") or [] if c.get("constraintType") == "FOREIGN_KEY"]
    equal([(c["columns"], c["referredColumns"]) for c in foreign_keys],
          [(["customer_id"], ["e2e_sqlite.shop.main.customers.id"])], "orders' foreign key")

    # Every call reached the server through the gateway, as the bot.
    seen = standin.since(mark)
    check(any(r.method == "PUT" and r.path == "/api/v1/tables/bulk" for r in seen), "no bulk table PUT upstream")
    for received in seen:
        check(received.header("X-Forwarded-For") is not None, f"{received.target} bypassed the gateway")
        equal(received.header("X-Auth-Request-User"), "ingestion-bot", f"X-Auth-Request-User on {received.target}")
        equal(received.header("X-Auth-Request-Is-Bot"), "true", f"X-Auth-Request-Is-Bot on {received.target}")


@case
def a_second_run_updates_in_place():
    standin = S["standin"]
    before = standin.entity("tables", "e2e_sqlite.shop.main.customers")
    result = ingest(workflow(S["key"].token("ingestion-bot", bot=True, expires="never"), "e2e_sqlite"))
    equal(result.returncode, 0, f"second run exit code; output:\n{tail(result)}")
    check("Workflow Success %: 100.0" in result.stdout + result.stderr, f"no 100 % success line:\n{tail(result)}")
    after = standin.entity("tables", "e2e_sqlite.shop.main.customers")
    equal(after["id"], before["id"], "the table's id after a second run")
    equal(after.get("deleted"), False, "the table is not marked deleted")


@case
def expired_token_stops_the_workflow_with_expired_token():
    standin = S["standin"]
    mark = standin.mark()
    result = ingest(workflow(S["key"].token("ingestion-bot", bot=True, expires="-1h"), "e2e_expired"))
    output = result.stdout + result.stderr
    check(result.returncode != 0, f"`metadata ingest` succeeded with an expired token:\n{tail(result)}")
    check("Error initializing metadata: Expired token!" in output, f"the CLI did not say `Expired token!`:\n{tail(result)}")
    equal([r.target for r in standin.since(mark)], [], "requests that reached the upstream")
    equal(standin.entity("services/databaseServices", "e2e_expired"), None, "service created with an expired token")


if __name__ == "__main__":
    main(PART, setup, teardown)
