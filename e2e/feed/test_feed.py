"""The activity feed through the gateway with the real socket.io 4 client and server.

Behind the gateway: ``server.js`` (a socket.io 4 server under ``/api/v1/push/feed`` that
registers connections the way OpenMetadata's WebSocketManager does) in front of the Python
stand-in, which answers ``loggedInUser``. In front: ``client.js`` (socket.io-client 4), which
connects the way the OpenMetadata UI does, with the feed cookie the gateway set on the
``loggedInUser`` answer. The rules checked are the gateway's (src/proxy/feed.rs): the cookie
and the ``userId`` it binds, or nothing gets through.

Run by ``e2e/run.sh feed`` (it installs the npm packages and sets NODE_PATH).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

from gateway import Gateway, KeyPair, gateway_config, jwks, wait_until  # noqa: E402
from harness import case, check, cleanup, equal, main  # noqa: E402
from standin import OpenMetadataStandIn, user_id  # noqa: E402

PART = "feed"
S: dict = {}
ALICE = str(user_id("alice"))
BOB = str(user_id("bob"))


def node_environment() -> dict:
    environment = dict(os.environ)
    modules = os.environ.get("E2E_NODE_MODULES") or str(HERE / "node_modules")
    environment["NODE_PATH"] = modules
    return environment


class FeedServer:
    def __init__(self, standin_address: str):
        environment = node_environment()
        environment["STANDIN"] = standin_address
        self.process = subprocess.Popen(["node", str(HERE / "server.js")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=environment, text=True)
        self.lines: list = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        listening = wait_until(self._listening, 20, "the socket.io server's address")
        self.address = listening

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def _listening(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"server.js exited with {self.process.returncode}: {self.output()}")
        for line in self.output().splitlines():
            if line.startswith('{"listening"'):
                return json.loads(line)["listening"]
        return None

    def output(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def connections(self) -> list:
        with self.lock:
            return [json.loads(line)["connection"] for line in self.lines if line.startswith('{"connection"')]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def setup() -> None:
    directory = Path(tempfile.mkdtemp(prefix="e2e-feed-"))
    S["dir"] = directory
    key = KeyPair.generate(directory, "e2e-om-key")
    S["key"] = key
    S["standin"] = standin = OpenMetadataStandIn(jwks(key))
    S["feed"] = feed = FeedServer(standin.address)
    S["gateway"] = Gateway(gateway_config(f"http://{feed.address}", standin.jwks_url), directory)
    S["alice_token"] = key.token("alice")
    # The UI's first call after sign-in: it earns the feed cookie.
    status, user, cookies = logged_in_user(S["alice_token"])
    check(status == 200, f"loggedInUser through the gateway: {status} {user}")
    S["alice_user"], S["alice_cookies"] = user, cookies


def teardown() -> None:
    for name in ("gateway", "feed", "standin"):
        if name in S:
            S[name].stop()
    if "dir" in S:
        cleanup(S["dir"], [S["gateway"].log_path] if "gateway" in S else [])


def logged_in_user(token: str):
    host, port = S["gateway"].proxy.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/api/v1/users/loggedInUser", headers={"Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    body = response.read()
    cookies = response.headers.get_all("Set-Cookie") or []
    connection.close()
    return response.status, json.loads(body), cookies


def cookie_pair() -> str:
    """What a browser sends back: the name=value part of the gateway's Set-Cookie."""
    feed_cookies = [c for c in S["alice_cookies"] if c.startswith("omgw_feed=")]
    check(len(feed_cookies) == 1, f"Set-Cookie headers: {S['alice_cookies']}")
    return feed_cookies[0].split(";", 1)[0]


def connect(user: str, transports: str, cookie: str = "", headers: dict = None) -> dict:
    command = ["node", str(HERE / "client.js"), S["gateway"].url(), user, transports, cookie]
    if headers:
        command.append(json.dumps(headers))
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env=node_environment())
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    check(lines, f"client.js printed no result (exit {result.returncode}): {result.stdout} {result.stderr}")
    return json.loads(lines[-1])


def refused(user: str, cookie: str, status: int) -> None:
    before = len(S["feed"].connections())
    for transports in ("websocket", "polling"):
        result = connect(user, transports, cookie)
        check(not result["connected"], f"{transports}: connected, expected a refusal: {result}")
        # The ws library says `Unexpected server response: 401`; the polling transport reports
        # the status as the error's description.
        check(str(status) in result.get("description", ""), f"{transports}: expected {status}, got {result}")
    equal(S["feed"].connections()[before:], [], "connections the feed server registered")


@case
def logged_in_user_answer_carries_the_feed_cookie():
    equal(S["alice_user"]["id"], ALICE, "the user id in loggedInUser")
    equal(S["alice_user"]["name"], "alice", "the user name in loggedInUser")
    cookie = [c for c in S["alice_cookies"] if c.startswith("omgw_feed=")][0]
    attributes = [part.strip() for part in cookie.split(";")[1:]]
    check("Path=/api/v1/push/feed" in attributes and "HttpOnly" in attributes and "SameSite=Strict" in attributes,
          f"cookie attributes: {attributes}")
    check(cookie_pair().startswith(f"omgw_feed={ALICE}."), f"cookie binds {cookie_pair()}")


@case
def websocket_with_the_cookie_connects():
    # The UI's own choice: transports ['websocket'].
    result = connect(ALICE, "websocket", cookie_pair())
    check(result["connected"], f"not connected: {result}")
    equal((result["openedOver"], result["upgraded"], result["transport"]), ("websocket", False, "websocket"),
          "transports")
    equal([(m["to"], m["over"]) for m in result["messages"]], [(ALICE, "websocket")], "messages received")
    equal(result["messages"][0]["seen"]["userId"], ALICE, "the user id the server registered")


@case
def polling_then_upgrade_with_the_cookie_connects():
    result = connect(ALICE, "polling,websocket", cookie_pair())
    check(result["connected"], f"not connected: {result}")
    equal(result["openedOver"], "polling", "the transport of the handshake")
    equal(result["upgraded"], "websocket", "the transport upgraded to")
    equal(result["transport"], "websocket", "transport after the upgrade")
    equal([(m["to"], m["over"]) for m in result["messages"]], [(ALICE, "polling"), (ALICE, "websocket")],
          "messages received over polling, then over the upgraded websocket")


@case
def refused_without_the_cookie():
    refused(ALICE, "", 401)


@case
def refused_with_a_forged_cookie():
    forged = cookie_pair()[:-4] + ("AAAA" if not cookie_pair().endswith("AAAA") else "BBBB")
    refused(ALICE, forged, 401)


@case
def refused_with_another_user_id():
    refused(BOB, cookie_pair(), 403)


@case
def a_spoofed_userid_header_never_reaches_the_server():
    # OpenMetadata's feed reads a `UserId` header before the query: the gateway removes it.
    result = connect(ALICE, "websocket", cookie_pair(), {"UserId": BOB})
    check(result["connected"], f"not connected: {result}")
    seen = result["messages"][0]["seen"]
    equal((seen["userId"], seen["userIdHeader"]), (ALICE, None), "what the server registered")


@case
def a_bearer_client_after_its_own_logged_in_user_connects():
    # Non-browser clients send their token; it must have resolved to that id through loggedInUser.
    status, user, _ = logged_in_user(S["key"].token("bob"))
    equal((status, user["id"]), (200, BOB), "bob's loggedInUser")
    bob = {"Authorization": f"Bearer {S['key'].token('bob')}"}
    result = connect(BOB, "websocket", "", bob)
    check(result["connected"], f"not connected: {result}")
    result = connect(ALICE, "websocket", "", bob)
    check(not result["connected"] and "403" in result.get("description", ""), f"bob as alice: {result}")


if __name__ == "__main__":
    main(PART, setup, teardown)
