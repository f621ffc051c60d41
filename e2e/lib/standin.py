"""A stand-in OpenMetadata server for the e2e suite (stdlib only).

It answers the part of OpenMetadata's REST API that the official clients use in these tests,
with the shapes the server uses, so the SDK's own pydantic models (generated from OpenMetadata's
JSON schemas) parse every answer:

* ``GET /api/v1/system/version``: ``{"version", "revision", "timestamp"}`` (SystemResource).
* ``GET /api/v1/system/config/jwks``: the keys as JWTTokenGenerator#getJWKSResponse writes them.
* ``GET /api/v1/users/loggedInUser``: the caller's user document (UserResource#getCurrentLoggedInUser).
* For ``services/databaseServices``, ``databases``, ``databaseSchemas``, ``tables``, ``users``
  and ``bots`` (EntityResource): list with paging and the parent filters (``service``,
  ``database``, ``databaseSchema``), ``GET /{id}``, ``GET /name/{fqn}`` (the one path segment
  percent-decoded, as JAX-RS decodes a ``@PathParam``), ``PUT`` (create or update: 201 or 200),
  ``POST`` (create: 201, or 409 when it exists), ``PATCH /{id}`` (JSON Patch), ``DELETE /{id}``.
  Created entities get what the server adds: ``id``, ``fullyQualifiedName`` (names holding a
  ``.`` quoted, FullyQualifiedName#quoteName), ``version`` 0.1 (+0.1 per change), ``updatedAt``,
  ``updatedBy``, ``href``, ``deleted`` and entity references to their parents.
* Errors are ``{"code": <status>, "message": <text>}`` in the server's words
  (CatalogExceptionMessage#entityNotFound: ``<type> instance for <fqn> not found``).

Every other ``/api/`` path answers 404 ``HTTP 404 Not Found`` (Jersey's answer) and is recorded,
so a test sees a client asking for something the stand-in does not know.

Like the server behind the gateway, it trusts the bearer token it is given: it reads the
principal from the token's claims (``email`` before ``@``, else ``sub``) but does not verify
the signature; the gateway in front of it is what these tests exercise. A request to a
non-public path without a token gets the server's 401 ``Not Authorized! Token not present``.

Every request is recorded (method, raw request target, headers, body) in ``received``.
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import json
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple

# Entity type name (EntityReference.type) and the parent reference a create request names by FQN.
COLLECTIONS = {
    "services/databaseServices": ("databaseService", None),
    "databases": ("database", ("service", "services/databaseServices")),
    "databaseSchemas": ("databaseSchema", ("database", "databases")),
    "tables": ("table", ("databaseSchema", "databaseSchemas")),
    "storedProcedures": ("storedProcedure", ("databaseSchema", "databaseSchemas")),
    "users": ("user", None),
    "bots": ("bot", None),
    "services/testConnectionDefinitions": ("testConnectionDefinition", None),
}
# Search indexes (SearchIndex names) by collection, for /api/v1/search/fieldQuery.
SEARCH_INDEXES = {
    "table_search_index": "tables",
    "database_search_index": "databases",
    "database_schema_search_index": "databaseSchemas",
    "database_service_search_index": "services/databaseServices",
    "stored_procedure_search_index": "storedProcedures",
}
# List filters by query parameter, as ListFilter reads them: the parent's FQN.
LIST_FILTERS = {"service", "database", "databaseSchema"}
# Paths the server serves without a token (JwtFilter's excluded paths, the ones used here).
PUBLIC = {"/api/v1/system/version", "/api/v1/system/config/jwks"}
# The steps of the server's testConnections/database/sqlite.json (names and flags).
TEST_CONNECTION_STEPS = {
    "SQLite": [
        {"name": "CheckAccess", "description": "Reach the database.", "mandatory": True, "shortCircuit": True},
        {"name": "GetSchemas", "description": "List the schemas.", "mandatory": True},
        {"name": "GetTables", "description": "List the tables of a schema.", "mandatory": True},
        {"name": "GetViews", "description": "List the views of a schema.", "mandatory": False},
    ],
}
USER_NAMESPACE = uuid.UUID("6f1ed8e4-0b3c-4c35-9d55-6f0d3b8b2c11")


def quote_name(name: str) -> str:
    """FullyQualifiedName#quoteName: a name holding a `.` is wrapped in double quotes."""
    if "." in name and not (name.startswith('"') and name.endswith('"')):
        return f'"{name}"'
    return name


def now_millis() -> int:
    return int(time.time() * 1000)


@dataclass
class Received:
    method: str
    target: str  # the request target exactly as on the request line
    headers: List[Tuple[str, str]]
    body: bytes
    status: int = 0
    unknown: bool = False  # answered 404 because the stand-in does not serve the route

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> Dict[str, List[str]]:
        return urllib.parse.parse_qs(self.target.split("?", 1)[1]) if "?" in self.target else {}

    def header(self, name: str) -> Optional[str]:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name: str) -> List[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Store:
    by_fqn: Dict[str, Dict[str, dict]] = field(default_factory=lambda: {c: {} for c in COLLECTIONS})
    by_id: Dict[str, Tuple[str, str]] = field(default_factory=dict)


class OpenMetadataStandIn:
    def __init__(self, jwks: dict, version: str = "2.0.7"):
        self.jwks = jwks
        self.version = version
        self.store = Store()
        self._seed_test_connection_definitions()
        self.received: List[Received] = []
        self.lock = threading.RLock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="standin", daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/v1/system/config/jwks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests(self, method: Optional[str] = None, path_prefix: str = "") -> List[Received]:
        with self.lock:
            return [r for r in self.received
                    if (method is None or r.method == method) and r.path.startswith(path_prefix)]

    def mark(self) -> int:
        """A position in ``received``; ``since(mark)`` gives what came after it."""
        with self.lock:
            return len(self.received)

    def since(self, mark: int, *, ignore_probes: bool = True) -> List[Received]:
        with self.lock:
            found = self.received[mark:]
        if ignore_probes:
            found = [r for r in found if r.path not in PUBLIC]
        return found

    def unknown_routes(self) -> List[str]:
        with self.lock:
            return [f"{r.method} {r.target}" for r in self.received if r.unknown]

    # --- the API ---------------------------------------------------------------------------

    def _seed_test_connection_definitions(self) -> None:
        """The server loads these at start from its json/data/testConnections/ files and stores
        each as `<serviceType>.testConnectionDefinition`; the ingestion workflow reads the one for
        its source before it runs the test connection steps."""
        for service_type, steps in TEST_CONNECTION_STEPS.items():
            name = f"{service_type}.testConnectionDefinition"
            entity = {
                "id": str(uuid.uuid4()),
                "name": name,
                "fullyQualifiedName": name,
                "displayName": f"{service_type} Test Connection",
                "steps": [dict(step) for step in steps],
                "version": 0.1,
                "updatedAt": now_millis(),
                "updatedBy": "admin",
                "deleted": False,
            }
            self.store.by_fqn["services/testConnectionDefinitions"][name] = entity
            self.store.by_id[entity["id"]] = ("services/testConnectionDefinitions", name)

    def entity(self, collection: str, fqn: str) -> Optional[dict]:
        with self.lock:
            found = self.store.by_fqn[collection].get(fqn)
            return copy.deepcopy(found) if found else None

    def put_entity(self, collection: str, body: dict, principal: str, host: str, *, create_only: bool = False) -> Tuple[int, dict]:
        if collection not in COLLECTIONS:
            raise ApiError(404, "HTTP 404 Not Found")
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            raise ApiError(400, "[name must not be null]")
        with self.lock:
            fqn, parent_refs = self._fqn_and_parents(collection, body, host)
            existing = self.store.by_fqn[collection].get(fqn)
            if existing and create_only:
                raise ApiError(409, "Entity already exists")
            if existing is None:
                entity = {
                    "id": str(uuid.uuid4()),
                    "name": body["name"],
                    "fullyQualifiedName": fqn,
                    "version": 0.1,
                    "updatedAt": now_millis(),
                    "updatedBy": principal,
                    "deleted": False,
                }
                entity.update(self._fields_from_request(collection, body, fqn, parent_refs, host))
                entity["href"] = f"http://{host}/api/v1/{collection}/{entity['id']}"
                self.store.by_fqn[collection][fqn] = entity
                self.store.by_id[entity["id"]] = (collection, fqn)
                return 201, copy.deepcopy(entity)
            updated = copy.deepcopy(existing)
            updated.update(self._fields_from_request(collection, body, fqn, parent_refs, host))
            self._commit_update(collection, existing, updated, principal)
            return 200, copy.deepcopy(self.store.by_fqn[collection][fqn])

    def _commit_update(self, collection: str, existing: dict, updated: dict, principal: str) -> None:
        ignored = ("version", "updatedAt", "updatedBy", "changeDescription")
        before = {k: v for k, v in existing.items() if k not in ignored}
        after = {k: v for k, v in updated.items() if k not in ignored}
        if before != after:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            updated["version"] = round(existing["version"] + 0.1, 1)
            updated["updatedAt"] = now_millis()
            updated["updatedBy"] = principal
            updated["changeDescription"] = {
                "fieldsAdded": [], "fieldsDeleted": [],
                "fieldsUpdated": [{"name": name} for name in changed],
                "previousVersion": existing["version"],
            }
        self.store.by_fqn[collection][existing["fullyQualifiedName"]] = updated

    def _fqn_and_parents(self, collection: str, body: dict, host: str) -> Tuple[str, dict]:
        _, parent = COLLECTIONS[collection]
        name = quote_name(body["name"])
        if parent is None:
            refs: dict = {}
            if collection == "bots" and body.get("botUser"):
                user = self.store.by_fqn["users"].get(quote_name(body["botUser"]))
                if user is None:
                    raise ApiError(404, f"user instance for {body['botUser']} not found")
                refs["botUser"] = self._reference("users", user, host)
            return name, refs
        field_name, parent_collection = parent
        parent_fqn = body.get(field_name)
        if not isinstance(parent_fqn, str):
            raise ApiError(400, f"[{field_name} must not be null]")
        parent_entity = self.store.by_fqn[parent_collection].get(parent_fqn)
        if parent_entity is None:
            raise ApiError(404, f"{COLLECTIONS[parent_collection][0]} instance for {parent_fqn} not found")
        refs = {field_name: self._reference(parent_collection, parent_entity, host)}
        # Grandparents, as the server fills them in: a schema names its service, a table its
        # database and service.
        for inherited in ("service", "database"):
            if inherited in parent_entity and inherited != field_name:
                refs[inherited] = parent_entity[inherited]
        service_type = parent_entity.get("serviceType")
        if service_type:
            refs["serviceType"] = service_type
        return f"{parent_fqn}.{name}", refs

    def _fields_from_request(self, collection: str, body: dict, fqn: str, parent_refs: dict, host: str) -> dict:
        fields = {k: copy.deepcopy(v) for k, v in body.items() if v is not None}
        # Owners, domains and data products come as references (or names) in requests; the
        # server resolves them. None are used here: keep them as lists of references or drop.
        for key in ("owners", "domains", "dataProducts"):
            if key in fields and not all(isinstance(item, dict) for item in fields[key]):
                fields.pop(key)
        fields.update(parent_refs)
        if collection == "tables":
            fields["columns"] = [_column_with_fqn(column, fqn) for column in fields.get("columns", [])]
            fields.setdefault("tableType", "Regular")
        if collection == "users":
            fields.setdefault("email", f"{body['name']}@open-metadata.org")
            fields.setdefault("isBot", False)
            fields.setdefault("isAdmin", False)
        return fields

    def _reference(self, collection: str, entity: dict, host: str) -> dict:
        reference = {
            "id": entity["id"],
            "type": COLLECTIONS[collection][0],
            "name": entity["name"],
            "fullyQualifiedName": entity["fullyQualifiedName"],
            "deleted": entity.get("deleted", False),
            "href": f"http://{host}/api/v1/{collection}/{entity['id']}",
        }
        for optional in ("displayName", "description"):
            if entity.get(optional):
                reference[optional] = entity[optional]
        return reference

    def list_entities(self, collection: str, query: Dict[str, List[str]]) -> dict:
        limit = int(query.get("limit", ["10"])[0])
        include = query.get("include", ["non-deleted"])[0]
        with self.lock:
            entities = list(self.store.by_fqn[collection].values())
            for name in LIST_FILTERS & set(query):
                wanted = query[name][0]
                entities = [e for e in entities if e.get(name, {}).get("fullyQualifiedName") == wanted]
            if include == "non-deleted":
                entities = [e for e in entities if not e.get("deleted")]
            elif include == "deleted":
                entities = [e for e in entities if e.get("deleted")]
            start = 0
            if "after" in query:
                start = int(base64.b64decode(query["after"][0]).decode())
            page = entities[start:start + limit]
            paging = {"total": len(entities)}
            if start + limit < len(entities):
                paging["after"] = base64.b64encode(str(start + limit).encode()).decode()
            if start > 0:
                paging["before"] = base64.b64encode(str(max(0, start - limit)).encode()).decode()
            return {"data": copy.deepcopy(page), "paging": paging}

    def bulk_put(self, collection: str, requests: list, principal: str, host: str) -> dict:
        """PUT /<collection>/bulk: each create request as a PUT, one Response per request."""
        if not isinstance(requests, list):
            raise ApiError(400, "the bulk request must be a list of create requests")
        succeeded, failed = [], []
        for request in requests:
            try:
                status, entity = self.put_entity(collection, request, principal, host)
                succeeded.append({"request": entity["fullyQualifiedName"], "status": status})
            except ApiError as error:
                name = request.get("name") if isinstance(request, dict) else None
                failed.append({"request": name, "message": error.message, "status": error.status})
        return _bulk_result(succeeded, failed)

    def delete_stale(self, collection: str, request: dict) -> dict:
        """DELETE /<collection>/deleteStale: soft-delete what the scope holds and the connector
        did not report (`seenFqns`)."""
        scope_type, scope_fqn = request["scopeEntityType"], request["scopeFqn"]
        seen = set(request.get("seenFqns") or [])
        deleted = []
        with self.lock:
            for entity in self.store.by_fqn[collection].values():
                if entity.get(scope_type, {}).get("fullyQualifiedName") != scope_fqn:
                    continue
                if entity["fullyQualifiedName"] not in seen and not entity.get("deleted"):
                    entity["deleted"] = True
                    deleted.append({"request": entity["fullyQualifiedName"], "status": 200})
        return _bulk_result(deleted, [])

    def search_field(self, query: Dict[str, List[str]]) -> dict:
        """GET /api/v1/search/fieldQuery: the search index's answer (hits with `_source`)."""
        index = query.get("index", ["table_search_index"])[0]
        collection = SEARCH_INDEXES.get(index)
        if collection is None:
            raise ApiError(400, f"Failed to find index {index}")
        field_name = query.get("fieldName", ["fullyQualifiedName"])[0]
        pattern = query.get("fieldValue", [""])[0]
        include_deleted = query.get("deleted", ["false"])[0] == "true"
        start = int(query.get("from", ["0"])[0])
        size = int(query.get("size", ["10"])[0])
        with self.lock:
            matches = [copy.deepcopy(e) for e in self.store.by_fqn[collection].values()
                       if fnmatch.fnmatchcase(str(e.get(field_name, "")), pattern)
                       and bool(e.get("deleted")) == include_deleted]
        hits = [{"_index": index, "_id": e["id"], "_score": 1.0, "_source": e} for e in matches[start:start + size]]
        return {"took": 1, "timed_out": False,
                "hits": {"total": {"value": len(matches), "relation": "eq"}, "max_score": 1.0, "hits": hits}}

    def by_id(self, entity_id: str) -> Tuple[str, dict]:
        with self.lock:
            if entity_id not in self.store.by_id:
                raise ApiError(404, f"entity instance for {entity_id} not found")
            collection, fqn = self.store.by_id[entity_id]
            return collection, self.store.by_fqn[collection][fqn]

    def patch(self, collection: str, entity_id: str, operations: list, principal: str) -> dict:
        with self.lock:
            found_collection, existing = self.by_id(entity_id)
            if found_collection != collection:
                raise ApiError(404, f"{COLLECTIONS[collection][0]} instance for {entity_id} not found")
            updated = copy.deepcopy(existing)
            for operation in operations:
                _apply_patch(updated, operation)
            self._commit_update(collection, existing, updated, principal)
            return copy.deepcopy(self.store.by_fqn[collection][existing["fullyQualifiedName"]])

    def delete(self, collection: str, entity_id: str, hard: bool) -> dict:
        with self.lock:
            found_collection, existing = self.by_id(entity_id)
            if found_collection != collection:
                raise ApiError(404, f"{COLLECTIONS[collection][0]} instance for {entity_id} not found")
            if hard:
                del self.store.by_fqn[collection][existing["fullyQualifiedName"]]
                del self.store.by_id[entity_id]
            else:
                existing["deleted"] = True
            return copy.deepcopy(existing)

    def user_for(self, claims: dict, host: str) -> dict:
        """The caller's user (created on first sight: the stand-in has no user database)."""
        name = principal_of(claims)
        with self.lock:
            user = self.store.by_fqn["users"].get(quote_name(name))
            if user is None:
                body = {
                    "name": name,
                    "email": claims.get("email") or f"{name}@open-metadata.org",
                    "isBot": bool(claims.get("isBot")),
                    "isAdmin": name == "admin",
                }
                self.put_entity("users", body, name, host)
                user = self.store.by_fqn["users"][quote_name(name)]
                # Deterministic ids, so a test can know a user's id before asking.
                del self.store.by_id[user["id"]]
                user["id"] = str(user_id(name))
                user["href"] = f"http://{host}/api/v1/users/{user['id']}"
                self.store.by_id[user["id"]] = ("users", user["fullyQualifiedName"])
            return copy.deepcopy(user)


def _bulk_result(succeeded: list, failed: list) -> dict:
    """BulkOperationResult (type/bulkOperationResult.json)."""
    if not failed:
        status = "success"
    elif succeeded:
        status = "partialSuccess"
    else:
        status = "failure"
    return {
        "status": status,
        "numberOfRowsProcessed": len(succeeded) + len(failed),
        "numberOfRowsPassed": len(succeeded),
        "numberOfRowsFailed": len(failed),
        "successRequest": succeeded,
        "failedRequest": failed,
    }


def user_id(name: str) -> uuid.UUID:
    return uuid.uuid5(USER_NAMESPACE, name)


def principal_of(claims: dict) -> str:
    """JwtFilter's principal with jwtPrincipalClaims [email, preferred_username, sub]."""
    for claim in ("email", "preferred_username", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return value.split("@", 1)[0]
    raise ApiError(401, "Not Authorized! Invalid JWT token, none of the principal claims are present")


def _column_with_fqn(column: dict, parent_fqn: str) -> dict:
    column = dict(column)
    column["fullyQualifiedName"] = f"{parent_fqn}.{quote_name(column['name'])}"
    if column.get("children"):
        column["children"] = [_column_with_fqn(child, column["fullyQualifiedName"]) for child in column["children"]]
    return column


def _apply_patch(document: dict, operation: dict) -> None:
    """RFC 6902 add / replace / remove (what the SDK's patch helpers send)."""
    op, path = operation.get("op"), operation.get("path", "")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
    if not parts:
        raise ApiError(400, f"bad JSON patch path {path!r}")
    target = document
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    last = parts[-1]
    if op in ("add", "replace"):
        if isinstance(target, list):
            if last == "-":
                target.append(operation["value"])
            elif op == "add":
                target.insert(int(last), operation["value"])
            else:
                target[int(last)] = operation["value"]
        else:
            target[last] = operation["value"]
    elif op == "remove":
        if isinstance(target, list):
            del target[int(last)]
        else:
            target.pop(last, None)
    else:
        raise ApiError(400, f"unsupported JSON patch op {op!r}")


def _decode_claims(token: str) -> dict:
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise ApiError(401, "Not Authorized! Invalid token") from error


class _Server(ThreadingHTTPServer):
    # The gateway opens one upstream connection per concurrent request; the default listen
    # backlog of 5 would drop SYNs under load and stall them for seconds of TCP retransmits.
    request_queue_size = 512


class _Handler(BaseHTTPRequestHandler):
    standin: OpenMetadataStandIn
    protocol_version = "HTTP/1.1"
    server_version = "openmetadata-standin"

    def log_message(self, format, *args):  # noqa: A002 - quiet; requests are recorded instead
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = Received(self.command, self.path, list(self.headers.items()), body)
        with self.standin.lock:
            self.standin.received.append(record)
        try:
            status, answer = self._route(record)
        except ApiError as error:
            status, answer = error.status, {"code": error.status, "message": error.message}
        except (ValueError, KeyError, TypeError) as error:
            status, answer = 400, {"code": 400, "message": f"Unable to process JSON: {error}"}
        record.status = status
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _handle

    def _route(self, record: Received):
        standin = self.standin
        path = record.path
        query = record.query
        host = self.headers.get("Host", standin.address)
        if path == "/api/v1/system/version":
            return 200, {"version": standin.version, "revision": "e2e-standin", "timestamp": now_millis()}
        if path == "/api/v1/system/config/jwks":
            return 200, standin.jwks
        if not path.startswith("/api/"):
            return 200, {"ui": True}
        authorization = self.headers.get("Authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "Not Authorized! Token not present")
        claims = _decode_claims(token.strip())
        principal = principal_of(claims)
        standin.user_for(claims, host)

        if path.rstrip("/") == "/api/v1/users/loggedInUser" and record.method == "GET":
            return 200, standin.user_for(claims, host)

        if path == "/api/v1/search/fieldQuery" and record.method == "GET":
            return 200, standin.search_field(query)
        collection, rest = _split_collection(path)
        if collection is None:
            record.unknown = True
            raise ApiError(404, "HTTP 404 Not Found")
        method = record.method
        if rest == [] and method == "GET":
            return 200, standin.list_entities(collection, query)
        if rest == [] and method in ("PUT", "POST"):
            document = json.loads(record.body or b"null")
            return standin.put_entity(collection, document, principal, host, create_only=method == "POST")
        if rest == ["bulk"] and method == "PUT":
            return 200, standin.bulk_put(collection, json.loads(record.body), principal, host)
        if rest == ["deleteStale"] and method == "DELETE":
            return 200, standin.delete_stale(collection, json.loads(record.body))
        if len(rest) == 2 and rest[0] == "name" and method == "GET":
            fqn = urllib.parse.unquote(rest[1])
            entity = standin.entity(collection, fqn)
            if entity is None or (entity.get("deleted") and query.get("include", ["non-deleted"])[0] == "non-deleted"):
                raise ApiError(404, f"{COLLECTIONS[collection][0]} instance for {fqn} not found")
            return 200, entity
        if len(rest) == 1 and method == "GET":
            found_collection, entity = standin.by_id(rest[0])
            if found_collection != collection:
                raise ApiError(404, f"{COLLECTIONS[collection][0]} instance for {rest[0]} not found")
            return 200, copy.deepcopy(entity)
        if len(rest) == 1 and method == "PATCH":
            return 200, standin.patch(collection, rest[0], json.loads(record.body), principal)
        if len(rest) == 1 and method == "DELETE":
            hard = query.get("hardDelete", ["false"])[0] == "true"
            return 200, standin.delete(collection, rest[0], hard)
        record.unknown = True
        raise ApiError(404, "HTTP 404 Not Found")


def _split_collection(path: str):
    """``/api/v1/<collection>/<rest...>`` with the raw (still encoded) segments of ``rest``."""
    if not path.startswith("/api/v1/"):
        return None, []
    tail = path[len("/api/v1/"):].rstrip("/")
    for collection in sorted(COLLECTIONS, key=len, reverse=True):
        if tail == collection:
            return collection, []
        if tail.startswith(collection + "/"):
            return collection, tail[len(collection) + 1:].split("/")
    return None, []
