"""Real daemons for the server tests: ``rpcd serve`` subprocesses on free 127.0.0.1 ports.

``start_daemon(root, env)`` runs ``python -m rpcd serve ROOT --listen 127.0.0.1:0``, reads the
URL the daemon announces (the kernel picked a free port, so there is no race), waits for
``/readyz`` and returns a ``Daemon``; ``stop()`` sends SIGTERM and checks the exit code is 0.
``make_tree(dest)`` is a copy of the example tree plus test peers (token, password, cert).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xmlrpc.client
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tree_helpers import REPO, copy_example

from rpcd.secrets_hash import scrypt_hash, token_sha256

LOOPBACK_TOKEN = "rpcd-dev-loopback-token"
OUTSIDER_TOKEN = "outsider-token-0123456789abcdef"
BASIC_USER, BASIC_PASSWORD = "basic-user", "basic-password-0123"
MOODLE_USER, MOODLE_PASSWORD = "moodle-uni-b", "example-password-uni-b"
SESSION_KEY = "test-session-key-0123456789abcdef0123456789"
#: The test daemons' access-log batching interval (seconds); ``Daemon.logs`` waits it out.
ACCESS_LOG_FLUSH = "0.05"

TEST_PEERS = """\
version = 1

[[peer]]
id = "outsider"
institutions = ["college-c"]
auth = "token"
token_sha256 = "{outsider}"

[[peer]]
id = "basic-user"
institutions = ["uni-a"]
auth = "userpass"
username = "{basic_user}"
password_hash = "{basic_hash}"
{cert_peer}"""

CERT_PEER = """
[[peer]]
id = "cert-peer"
institutions = ["uni-a"]
auth = "cert"
fingerprint_sha256 = "{fingerprint}"
"""


def make_tree(dest: Path, client_cert_der: bytes | None = None) -> Path:
    """The example tree plus the test peers (a cert peer when a client certificate is given)."""
    root = copy_example(dest)
    cert_peer = ""
    if client_cert_der is not None:
        cert_peer = CERT_PEER.format(fingerprint=hashlib.sha256(client_cert_der).hexdigest())
    # A cheap scrypt cost keeps the tests fast; the format is what production peers use.
    text = TEST_PEERS.format(
        outsider=token_sha256(OUTSIDER_TOKEN),
        basic_user=BASIC_USER,
        basic_hash=scrypt_hash(BASIC_PASSWORD, n=2**10),
        cert_peer=cert_peer,
    )
    (root / "services.d" / "zz-test-peers.toml").write_text(text, encoding="utf-8")
    return root


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    url: str
    log: Path
    ssl_context: ssl.SSLContext | None = None
    stopped: bool = field(default=False)

    @property
    def rpc(self) -> str:
        return self.url + "/RPC2"

    def proxy(
        self, headers: list[tuple[str, str]] | None = None, **kw: Any
    ) -> xmlrpc.client.ServerProxy:
        return xmlrpc.client.ServerProxy(
            self.rpc,
            allow_none=True,
            use_builtin_types=True,
            headers=headers or [],
            context=kw.pop("context", self.ssl_context),
            **kw,
        )

    def token_proxy(self, token: str = LOOPBACK_TOKEN) -> xmlrpc.client.ServerProxy:
        return self.proxy([("Authorization", f"Bearer {token}")])

    def basic_proxy(self, user: str, password: str) -> xmlrpc.client.ServerProxy:
        value = base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.proxy([("Authorization", f"Basic {value}")])

    def post(
        self,
        path: str,
        data: bytes,
        content_type: str = "text/xml",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """A raw POST; returns (status, headers, body) for any status."""
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST",
            headers={"Content-Type": content_type, **(headers or {})},
        )
        return _open(request, self.ssl_context)

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return _open(
            urllib.request.Request(self.url + path, headers=dict(headers or {})), self.ssl_context
        )

    def metric_samples(self) -> list[Sample]:
        """Every sample the daemon's ``/metrics`` shows now (name, labels, value)."""
        _, _, body = self.get("/metrics")
        return [
            s for family in text_string_to_metric_families(body.decode()) for s in family.samples
        ]

    def alive(self) -> bool:
        try:
            return self.get("/healthz")[0] == 200
        except OSError:
            return False

    def logs(self) -> str:
        """What the daemon logged so far, access lines of calls already answered included:
        they are written in batches, ``ACCESS_LOG_FLUSH`` seconds apart (waited for here)."""
        if not self.stopped:
            time.sleep(float(ACCESS_LOG_FLUSH) + 0.15)
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _open(
    request: urllib.request.Request, context: ssl.SSLContext | None
) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def start_daemon(
    root: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    *,
    prefix: list[str] | None = None,
    listen: str = "127.0.0.1:0",
) -> Daemon:
    """Start ``rpcd serve`` on ``root`` and wait until it is ready.

    ``prefix`` replaces the interpreter (e.g. a wrapper that sets process limits).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RPCD_")}
    full_env.update(
        {
            "RPCD_LOOPBACK_TOKEN": LOOPBACK_TOKEN,
            "RPCD_STRICT_SECRETS": "false",
            "RPCD_SESSION_KEY": SESSION_KEY,
            "RPCD_ACCESS_LOG_FLUSH": ACCESS_LOG_FLUSH,
            "PYTHONPATH": str(REPO),
        }
    )
    full_env.update(env or {})
    args = [*(prefix or [sys.executable]), "-m", "rpcd", "serve", str(root), "--listen", listen]
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log_file, text=True, env=full_env, cwd=REPO
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("rpcd: listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"rpcd serve did not start: {line!r}\n{log.read_text()}")
    daemon = Daemon(proc, line.split()[-1], log, ssl_context)
    deadline = time.monotonic() + 20
    while daemon.get("/readyz")[0] != 200:
        if time.monotonic() > deadline:
            daemon.stop()
            raise RuntimeError("rpcd serve never became ready")
        time.sleep(0.05)
    return daemon


@contextlib.contextmanager
def running(
    root: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[Daemon]:
    """A daemon for the length of a ``with`` (a module-scoped fixture's body); stopped cleanly."""
    daemon = start_daemon(root, log, env, ssl_context)
    try:
        yield daemon
    finally:
        rc = daemon.stop()
    assert rc == 0, f"rpcd exited {rc}:\n{daemon.logs()}"


@contextlib.contextmanager
def example_daemon(base: Path, env: Mapping[str, str] | None = None) -> Iterator[Daemon]:
    """A daemon on the example tree (``make_tree``) in ``base``, with ``env`` settings."""
    with running(make_tree(base / "tree"), base / "rpcd.log", env) as daemon:
        yield daemon


def xml_call(method: str, params_xml: str = "") -> bytes:
    """A raw methodCall with hand-written param XML (for what xmlrpc.client cannot send)."""
    params = f"<params>{params_xml}</params>" if params_xml else "<params/>"
    head = f'<?xml version="1.0"?><methodCall><methodName>{method}</methodName>'
    return f"{head}{params}</methodCall>".encode()


def fault_of(body: bytes) -> tuple[int, str]:
    """(faultCode, faultString) of a fault response, via the standard library's parser."""
    try:
        xmlrpc.client.loads(body)
    except xmlrpc.client.Fault as fault:
        return fault.faultCode, fault.faultString
    raise AssertionError(f"not a fault: {body[:200]!r}")
