"""Key pairs, tokens and the gateway as a subprocess, for the e2e parts (stdlib only).

* ``KeyPair.generate(dir, kid)``: an RSA-2048 key pair made with the ``openssl`` CLI, and its
  public half as OpenMetadata's ``/api/v1/system/config/jwks`` serves it.
* ``KeyPair.token(...)``: a token minted by ``om-gateway token`` (the gateway's own CLI).
* ``Gateway(config_yaml, dir)``: ``om-gateway run --config <file>`` listening on 127.0.0.1:0;
  the addresses come from its ``om-gateway serving`` log line, readiness from ``/readyz``.

The binary is ``$OM_GATEWAY_BIN`` (``e2e/run.sh`` sets it), else ``target/debug/om-gateway``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]


def gateway_binary() -> str:
    binary = os.environ.get("OM_GATEWAY_BIN") or str(REPO / "target" / "debug" / "om-gateway")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"no gateway binary at {binary}: run `cargo build` or set OM_GATEWAY_BIN")
    return binary


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds.
    A ``RuntimeError`` from the predicate (the process being waited for exited) ends the wait at
    once; other errors are retried and the last one is reported."""
    deadline = time.monotonic() + timeout
    last_error: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except RuntimeError:
            raise
        except Exception as error:  # noqa: BLE001 - keep polling; report the last error
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"{what} not within {timeout:.0f}s" + (f" (last error: {last_error})" if last_error else ""))


class KeyPair:
    def __init__(self, private_pem: Path, kid: str, modulus: bytes):
        self.private_pem = private_pem
        self.kid = kid
        self.modulus = modulus

    @classmethod
    def generate(cls, directory: Path, kid: str) -> "KeyPair":
        private_pem = directory / f"{kid}.pem"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private_pem)],
            check=True, capture_output=True)
        text = subprocess.run(["openssl", "rsa", "-in", str(private_pem), "-noout", "-modulus"],
                              check=True, capture_output=True, text=True).stdout.strip()
        modulus = bytes.fromhex(text.split("=", 1)[1])
        return cls(private_pem, kid, modulus)

    def openmetadata_jwk(self) -> dict:
        """The key as OpenMetadata serves it: JWTTokenGenerator#getJWKSResponse writes
        ``Base64.getUrlEncoder().encodeToString(BigInteger#toByteArray())``, so ``n`` carries the
        sign byte (a leading zero) and ``=`` padding; ``kty`` is the key's algorithm name; no
        ``alg`` or ``use``."""
        n = self.modulus if self.modulus[0] < 0x80 else b"\x00" + self.modulus
        return {
            "kty": "RSA",
            "kid": self.kid,
            "n": base64.urlsafe_b64encode(n).decode(),
            "e": base64.urlsafe_b64encode((65537).to_bytes(3, "big")).decode(),
        }

    def token(self, sub: str, *, bot: bool = False, expires: str = "1h", roles: Sequence[str] = (),
              email: Optional[str] = None, token_type: Optional[str] = None, kid: Optional[str] = None) -> str:
        command = [gateway_binary(), "token", "--private-key", str(self.private_pem), "--kid", kid or self.kid,
                   "--sub", sub, f"--expires={expires}"]
        if bot:
            command.append("--bot")
        if roles:
            command += ["--roles", ",".join(roles)]
        if email:
            command += ["--email", email]
        if token_type:
            command += ["--token-type", token_type]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def jwks(*keys: KeyPair) -> dict:
    return {"keys": [key.openmetadata_jwk() for key in keys]}


def claims_of(token: str) -> dict:
    """The (unverified) claims of a JWT."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class Gateway:
    """``om-gateway run`` with a configuration written from ``config_yaml``.

    ``server.listen`` and ``server.adminListen`` default to 127.0.0.1:0 unless the YAML sets a
    ``server:`` block of its own (then it must set both)."""

    def __init__(self, config_yaml: str, directory: Path, name: str = "gateway", env: Optional[dict] = None):
        self.directory = directory
        self.config_path = directory / f"{name}.yaml"
        self.log_path = directory / f"{name}.log"
        if "\nserver:" not in "\n" + config_yaml:
            config_yaml = "server:\n  listen: 127.0.0.1:0\n  adminListen: 127.0.0.1:0\n" + config_yaml
        self.config_path.write_text(config_yaml)
        self._log = open(self.log_path, "wb")
        environment = dict(os.environ)
        environment.setdefault("OM_GATEWAY_LOG", "info")
        environment.update(env or {})
        # The configuration decides everything: no OM_GATEWAY_*/AUTHENTICATION_* from the caller.
        for variable in list(environment):
            if variable.startswith(("AUTHENTICATION_", "AUTHORIZER_")) or variable in (
                    "OM_GATEWAY_CONFIG", "OM_GATEWAY_OPENMETADATA_CONFIG", "OM_GATEWAY_LISTEN",
                    "OM_GATEWAY_ADMIN_LISTEN", "OM_GATEWAY_UPSTREAM_URL", "OM_GATEWAY_LOG_FORMAT"):
                environment.pop(variable)
        self.process = subprocess.Popen([gateway_binary(), "run", "--config", str(self.config_path)],
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=environment)
        try:
            serving = wait_until(self._serving_line, 30, "the gateway's `om-gateway serving` line")
            self.proxy = serving["proxy"]
            self.admin = serving["admin"]
            wait_until(self._ready, 30, "the gateway's /readyz 200")
        except BaseException:
            self.stop()
            raise

    def _serving_line(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {self.process.returncode}: {self.log()[-3000:]}")
        for line in self.log().splitlines():
            if "om-gateway serving" not in line:
                continue
            record = json.loads(line)
            fields = record.get("fields", record)
            return {"proxy": fields["proxy"], "admin": fields["admin"]}
        return None

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {self.process.returncode}: {self.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{self.admin}/readyz", timeout=2) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    @property
    def port(self) -> int:
        return int(self.proxy.rsplit(":", 1)[1])

    def url(self, path: str = "", scheme: str = "http") -> str:
        return f"{scheme}://{self.proxy}{path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def gateway_config(upstream: str, jwks_url: str, *, extra: str = "", preset: bool = True) -> str:
    """A gateway configuration in front of ``upstream`` trusting ``jwks_url``, with the shipped
    OpenMetadata preset routes (config/openmetadata-preset.yaml) appended verbatim."""
    text = (
        f"upstream:\n  url: {upstream}\n"
        "authenticationConfiguration:\n"
        f"  publicKeyUrls: [ {jwks_url} ]\n"
        "  jwtPrincipalClaims: [ email, preferred_username, sub ]\n"
        "authorizerConfiguration:\n"
        "  adminPrincipals: [ admin ]\n"
        "  principalDomain: open-metadata.org\n"
        + extra
    )
    if preset:
        text += "\n" + (REPO / "config" / "openmetadata-preset.yaml").read_text()
    return text
