"""OpenMetadata's Python SDK (openmetadata-ingestion) through the gateway.

What a user of the SDK does: build an ``OpenMetadata`` client with ``authProvider: openmetadata``
and a ``jwtToken``, pointed at the gateway instead of the server, and call it. Each case checks
what the SDK user sees (the entity, or the exact error message) and what reached the stand-in
OpenMetadata server behind the gateway (the request byte for byte, the identity headers, or
nothing at all for a refusal).

Run by ``e2e/run.sh sdk`` under the suite's virtualenv.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from gateway import Gateway, KeyPair, claims_of, gateway_config, jwks  # noqa: E402
from harness import case, check, cleanup, equal, main  # noqa: E402
from standin import OpenMetadataStandIn  # noqa: E402

from metadata.__version__ import get_client_version  # noqa: E402
from metadata.generated.schema.api.createBot import CreateBot  # noqa: E402
from metadata.generated.schema.api.data.createDatabase import CreateDatabaseRequest  # noqa: E402
from metadata.generated.schema.api.data.createDatabaseSchema import CreateDatabaseSchemaRequest  # noqa: E402
from metadata.generated.schema.api.data.createTable import CreateTableRequest  # noqa: E402
from metadata.generated.schema.api.services.createDatabaseService import CreateDatabaseServiceRequest  # noqa: E402
from metadata.generated.schema.api.teams.createUser import CreateUserRequest  # noqa: E402
from metadata.generated.schema.entity.bot import Bot  # noqa: E402
from metadata.generated.schema.entity.data.database import Database  # noqa: E402
from metadata.generated.schema.entity.data.table import Column, DataType, Table  # noqa: E402
from metadata.generated.schema.entity.services.connections.database.mysqlConnection import MysqlConnection  # noqa: E402
from metadata.generated.schema.entity.services.connections.metadata.openMetadataConnection import (  # noqa: E402
    AuthProvider,
    OpenMetadataConnection,
)
from metadata.generated.schema.entity.services.databaseService import (  # noqa: E402
    DatabaseConnection,
    DatabaseService,
    DatabaseServiceType,
)
from metadata.generated.schema.security.client.openMetadataJWTClientConfig import (  # noqa: E402
    OpenMetadataJWTClientConfig,
)
from metadata.ingestion.ometa.client import APIError  # noqa: E402
from metadata.ingestion.ometa.ometa_api import OpenMetadata  # noqa: E402

PART = "sdk"
S: dict = {}


def setup() -> None:
    directory = Path(tempfile.mkdtemp(prefix="e2e-sdk-"))
    S["dir"] = directory
    key = KeyPair.generate(directory, "e2e-om-key")
    S["key"] = key
    # A key the gateway does not trust, once under the trusted kid and once under its own.
    S["foreign"] = KeyPair.generate(directory, "e2e-foreign-key")
    # The server's version is the SDK's major.minor.patch, as a matching server reports it.
    S["standin"] = standin = OpenMetadataStandIn(jwks(key), version=".".join(get_client_version().split(".")[:3]))
    S["gateway"] = Gateway(gateway_config(standin.url, standin.jwks_url), directory)
    # OpenMetadata's bot tokens carry "exp": null.
    S["bot_token"] = key.token("ingestion-bot", bot=True, expires="never")
    S["admin_token"] = key.token("admin", roles=["Admin"])
    seed_catalogue(standin)


def teardown() -> None:
    if "gateway" in S:
        S["gateway"].stop()
    if "standin" in S:
        S["standin"].stop()
    if "dir" in S:
        cleanup(S["dir"], [S["gateway"].log_path] if "gateway" in S else [])


def seed_catalogue(standin: OpenMetadataStandIn) -> None:
    """A service, database, schema and tables, put straight into the stand-in's store."""
    host = standin.address
    standin.put_entity("services/databaseServices", {"name": "warehouse", "serviceType": "Mysql"}, "admin", host)
    standin.put_entity("databases", {"name": "sales", "service": "warehouse"}, "admin", host)
    standin.put_entity("databaseSchemas", {"name": "public", "database": "warehouse.sales"}, "admin", host)
    for name in ("customers", "orders", "invoices", "a/b", "dotted.name"):
        standin.put_entity("tables", {
            "name": name,
            "databaseSchema": "warehouse.sales.public",
            "columns": [{"name": "id", "dataType": "INT"}, {"name": "note", "dataType": "VARCHAR", "dataLength": 64}],
        }, "admin", host)


def client(token: str) -> OpenMetadata:
    connection = OpenMetadataConnection(
        hostPort=S["gateway"].url("/api"),
        authProvider=AuthProvider.openmetadata,
        securityConfig=OpenMetadataJWTClientConfig(jwtToken=token),
    )
    return OpenMetadata(connection)


def api_error(call) -> APIError:
    try:
        call()
    except APIError as error:
        return error
    raise AssertionError("the call succeeded; expected the SDK to raise APIError")


def refused(token: str, call, status: int) -> str:
    """Run ``call(client)`` with ``token``: it must raise APIError with ``status`` and reach
    nothing behind the gateway. Returns the message the SDK user sees."""
    standin = S["standin"]
    metadata = client(token)
    mark = standin.mark()
    error = api_error(lambda: call(metadata))
    equal(error.status_code, status, "HTTP status the SDK saw")
    equal(error.code, status, "`code` in the JSON body")
    equal(standin.since(mark), [], "requests that reached the upstream")
    return str(error)


def through_gateway(received) -> None:
    check(received.header("X-Forwarded-For") is not None,
          f"{received.method} {received.target} did not come through the gateway (no X-Forwarded-For)")


@case
def client_construction_checks_the_server_version_through_the_gateway():
    standin = S["standin"]
    mark = standin.mark()
    metadata = client(S["bot_token"])
    versions = [r for r in standin.received[mark:] if r.path == "/api/v1/system/version"]
    check(versions, "the SDK's version check did not reach the server")
    through_gateway(versions[-1])
    check(metadata.server_version == standin.version, f"server version {metadata.server_version}")


@case
def health_check_passes():
    equal(client(S["bot_token"]).health_check(), True, "health_check()")


@case
def list_tables_pages_with_a_bot_token():
    standin = S["standin"]
    metadata = client(S["bot_token"])
    mark = standin.mark()
    first = metadata.list_entities(Table, limit=2)
    equal(first.total, 5, "paging.total")
    equal([t.name.root for t in first.entities], ["customers", "orders"], "first page")
    check(first.after is not None, "no `after` cursor on the first page")
    second = metadata.list_entities(Table, limit=2, after=first.after)
    equal([t.name.root for t in second.entities], ["invoices", "a/b"], "second page")
    seen = standin.since(mark)
    equal([r.target for r in seen], ["/api/v1/tables?limit=2", f"/api/v1/tables?limit=2&after={first.after}"],
          "requests the upstream received")
    for received in seen:
        through_gateway(received)
        equal(received.header("Authorization"), f"Bearer {S['bot_token']}", "Authorization upstream")
        equal(received.header("X-Auth-Request-User"), "ingestion-bot", "X-Auth-Request-User")
        equal(received.header("X-Auth-Request-Is-Bot"), "true", "X-Auth-Request-Is-Bot")
        equal(received.header("X-Auth-Request-Token-Type"), "BOT", "X-Auth-Request-Token-Type")


@case
def bot_token_without_expiry_is_accepted():
    token = S["key"].token("e2e-never-bot", bot=True, expires="never")
    check("exp" in claims_of(token) and claims_of(token)["exp"] is None, f"claims {claims_of(token)}")
    tables = client(token).list_entities(Table, limit=1)
    equal(len(tables.entities), 1, "tables listed with a bot token that has \"exp\": null")


@case
def personal_token_without_expiry_is_refused():
    # allowTokensWithoutExpiry: bots (the default): "exp": null is a bot's privilege.
    token = S["key"].token("alice", expires="never")
    message = refused(token, lambda m: m.list_entities(Table, limit=1), 401)
    check(message.startswith("Not Authorized! Invalid token."), f"message: {message!r}")


@case
def get_table_by_name_with_fields():
    standin = S["standin"]
    mark = standin.mark()
    table = client(S["bot_token"]).get_by_name(Table, "warehouse.sales.public.customers", fields=["tableConstraints"])
    check(table is not None, "get_by_name returned None")
    equal(table.fullyQualifiedName.root, "warehouse.sales.public.customers", "fullyQualifiedName")
    equal([c.name.root for c in table.columns], ["id", "note"], "columns")
    equal(table.databaseSchema.fullyQualifiedName, "warehouse.sales.public", "databaseSchema reference")
    equal([r.target for r in standin.since(mark)],
          ["/api/v1/tables/name/warehouse.sales.public.customers?fields=tableConstraints"], "upstream request")


@case
def get_by_name_of_an_unknown_entity_is_none():
    # The server's 404 passes through unchanged; the SDK turns it into None.
    equal(client(S["bot_token"]).get_by_name(Table, "warehouse.sales.public.nope"), None, "get_by_name")


@case
def get_by_name_with_a_quoted_fqn():
    # A name holding `.` is quoted in its FQN; the SDK percent-encodes the quotes.
    standin = S["standin"]
    mark = standin.mark()
    table = client(S["bot_token"]).get_by_name(Table, 'warehouse.sales.public."dotted.name"')
    check(table is not None, "get_by_name returned None")
    equal(table.name.root, "dotted.name", "name")
    equal([r.target for r in standin.since(mark)],
          ["/api/v1/tables/name/warehouse.sales.public.%22dotted.name%22"], "upstream request")


@case
def get_by_name_with_a_slash_in_the_name():
    # The SDK quotes FQNs with safe="": `/` in a name travels as %2F. The server decodes the one
    # path segment (a JAX-RS @PathParam), so the gateway must pass %2F on byte for byte.
    standin = S["standin"]
    mark = standin.mark()
    table = client(S["bot_token"]).get_by_name(Table, "warehouse.sales.public.a/b")
    check(table is not None, "get_by_name returned None")
    equal(table.name.root, "a/b", "name")
    equal([r.target for r in standin.since(mark)], ["/api/v1/tables/name/warehouse.sales.public.a%2Fb"],
          "upstream request")


@case
def create_or_update_sends_the_json_body_upstream():
    standin = S["standin"]
    metadata = client(S["bot_token"])
    request = CreateDatabaseServiceRequest(
        name="e2e_mysql",
        serviceType=DatabaseServiceType.Mysql,
        connection=DatabaseConnection(config=MysqlConnection(username="reader", hostPort="mysql:3306")),
    )
    mark = standin.mark()
    created = metadata.create_or_update(request)
    check(isinstance(created, DatabaseService), f"create_or_update returned {type(created)}")
    equal(created.fullyQualifiedName.root, "e2e_mysql", "fullyQualifiedName")
    equal(created.version.root, 0.1, "version")
    sent = standin.since(mark)
    equal([(r.method, r.target, r.status) for r in sent], [("PUT", "/api/v1/services/databaseServices", 201)],
          "upstream requests")
    check(sent[0].header("Content-Type", ).startswith("application/json"), f"Content-Type {sent[0].header('Content-Type')}")
    # The body the SDK serialised arrived unchanged.
    expected = json.loads(request.model_dump_json(context={"mask_secrets": False}, by_alias=True))
    equal(sent[0].json(), expected, "the JSON body upstream")

    mark = standin.mark()
    request.description = "Updated through the gateway"
    updated = metadata.create_or_update(request)
    equal(updated.id.root, created.id.root, "id after update")
    equal(updated.description.root, "Updated through the gateway", "description after update")
    equal(updated.version.root, 0.2, "version after update")
    equal([(r.method, r.status) for r in standin.since(mark)], [("PUT", 200)], "upstream requests for the update")


@case
def create_then_conflict_and_patch():
    standin = S["standin"]
    metadata = client(S["bot_token"])
    request = CreateDatabaseRequest(name="e2e_created", service="warehouse")
    database = metadata.create(request)
    check(isinstance(database, Database), f"create returned {type(database)}")
    equal(database.service.fullyQualifiedName, "warehouse", "service reference")
    # The server's 409 reaches the SDK user unchanged.
    error = api_error(lambda: metadata.create(request))
    equal((error.status_code, str(error)), (409, "Entity already exists"), "second create")
    schema = metadata.create_or_update(CreateDatabaseSchemaRequest(name="staging", database="warehouse.e2e_created"))
    table = metadata.create_or_update(CreateTableRequest(
        name="events", databaseSchema=schema.fullyQualifiedName.root,
        columns=[Column(name="id", dataType=DataType.BIGINT)]))
    mark = standin.mark()
    patched = metadata.patch_description(entity=Table, source=table, description="Events, patched")
    check(patched is not None, "patch_description returned None")
    equal(patched.description.root, "Events, patched", "description after PATCH")
    sent = standin.since(mark)
    patches = [r for r in sent if r.method == "PATCH"]
    equal(len(patches), 1, f"PATCH requests upstream (all: {[(r.method, r.target) for r in sent]})")
    equal(patches[0].header("Content-Type"), "application/json-patch+json", "PATCH Content-Type")
    check({"op": "add", "path": "/description", "value": "Events, patched"} in patches[0].json(),
          f"JSON patch {patches[0].json()}")


@case
def expired_token_gets_expired_token():
    token = S["key"].token("ingestion-bot", bot=True, expires="-1h")
    equal(refused(token, lambda m: m.list_entities(Table, limit=1), 401), "Expired token!", "message")


@case
def token_signed_by_a_foreign_key_under_the_trusted_kid():
    token = S["foreign"].token("ingestion-bot", bot=True, kid=S["key"].kid)
    equal(refused(token, lambda m: m.get_by_name(Table, "warehouse.sales.public.customers"), 401),
          "Not Authorized! Invalid token. Token verification failed. Public key mismatch.", "message")


@case
def token_signed_by_a_foreign_key_under_its_own_kid():
    token = S["foreign"].token("ingestion-bot", bot=True)
    message = refused(token, lambda m: m.list_entities(Table, limit=1), 401)
    check(message.startswith("Not Authorized! Token signing key not found in configured public keys"),
          f"message: {message!r}")


@case
def missing_token_gets_token_not_present():
    # An empty jwtToken (an unset environment variable in a workflow file, say).
    equal(refused("", lambda m: m.list_entities(Table, limit=1), 401), "Not Authorized! Token not present", "message")


@case
def route_forbidden_by_the_preset_names_the_rule():
    # config/openmetadata-preset.yaml: only admins write bots.
    standin = S["standin"]
    admin = client(S["admin_token"])
    admin.create_or_update(CreateUserRequest(name="e2e-bot-user", email="e2e-bot-user@open-metadata.org", isBot=True))
    request = CreateBot(name="e2e-bot", botUser="e2e-bot-user")
    message = refused(S["bot_token"], lambda m: m.create_or_update(request), 403)
    equal(message, "Forbidden: route `bots-write-admin` requires a role among [Admin]", "message")
    # The same request with an admin's token goes through.
    mark = standin.mark()
    bot = admin.create_or_update(request)
    check(isinstance(bot, Bot), f"create_or_update returned {type(bot)}")
    equal(bot.botUser.name, "e2e-bot-user", "botUser reference")
    sent = standin.since(mark)
    equal([(r.method, r.target) for r in sent], [("PUT", "/api/v1/bots")], "upstream requests")
    equal(sent[0].header("X-Auth-Request-User"), "admin", "X-Auth-Request-User")


if __name__ == "__main__":
    main(PART, setup, teardown)
