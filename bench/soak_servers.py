#!/usr/bin/env python3
"""Soak-test stand-ins on 127.0.0.1: a key endpoint that serves whatever JWKS file the soak
script last wrote (so keys can rotate mid-run), and an upstream that answers like OpenMetadata.

usage: soak_servers.py JWKS_FILE PORT_FILE
Writes "jwks_port upstream_port" to PORT_FILE once both listen; runs until killed.
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JWKS_FILE, PORT_FILE = sys.argv[1], sys.argv[2]
BODY = b'{"data":[{"name":"dim_customer"}],"paging":{"total":1}}'


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, body, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Jwks(Quiet):
    def do_GET(self):
        with open(JWKS_FILE, "rb") as handle:
            self.answer(handle.read(), [("Cache-Control", "max-age=5")])


class Upstream(Quiet):
    def do_GET(self):
        self.answer(BODY)

    do_POST = do_GET


def serve(handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


ports = (serve(Jwks), serve(Upstream))
with open(PORT_FILE + ".tmp", "w") as handle:
    handle.write("%d %d\n" % ports)
import os
os.rename(PORT_FILE + ".tmp", PORT_FILE)
threading.Event().wait()
