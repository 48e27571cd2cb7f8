"""Interop with a second, non-Python client: the npm ``xmlrpc`` package calls a real daemon.

The test starts ``python -m rpcd serve`` on a copy of the example tree on a free 127.0.0.1 port,
waits for ``GET /readyz``, runs ``tests/interop/client.js`` under node (the package comes from
``tests/interop/package.json`` + ``package-lock.json``, installed into the git-ignored
``tests/interop/node_modules`` on first use) and checks what the node client decoded. It is
skipped, with the reason, only where node/npm or the package cannot be installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tree_helpers import REPO, copy_example

INTEROP = Path(__file__).resolve().parent / "interop"
CLIENT_JS = INTEROP / "client.js"
TOKEN = "rpcd-dev-loopback-token"  # services.d/peers.toml: peer "loopback" (sha256 of this)

#: What tests/interop/client.js sends to hello.echo; its decoded answer must be exactly this.
EVERY_TYPE: dict[str, Any] = {
    "text": "  two leading, two trailing  <&> ünïcödé ",
    "count": 42,
    "negative": -7,
    "yes": True,
    "no": False,
    "ratio": 2.5,
    "when": {"$dateTime": "2024-01-02T03:04:05.000Z"},
    "blob": {"$base64": base64.b64encode(bytes([0, 1, 2, 127, 128, 254, 255])).decode()},
    "list": [1, "two", False, 3.25, ["nested", {"deep": "yes"}]],
    "empty_list": [],
    "empty_struct": {},
    "nothing": None,
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _npm_package() -> None:
    """Install the npm ``xmlrpc`` package from the lock file, or skip saying why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("interop: node and npm are not installed (apt-get install nodejs npm)")
    if (INTEROP / "node_modules" / "xmlrpc" / "package.json").is_file():
        return
    command = [npm, "ci"] if (INTEROP / "package-lock.json").is_file() else [npm, "install"]
    try:
        done = subprocess.run(
            [*command, "--no-audit", "--no-fund"],
            cwd=INTEROP,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("interop: `npm ci` in tests/interop timed out (no registry access?)")
    if done.returncode != 0 or not (INTEROP / "node_modules" / "xmlrpc").is_dir():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip("interop: the npm xmlrpc package could not be installed: " + " | ".join(tail))


def _wait_ready(proc: subprocess.Popen[str], base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"rpcd serve exited with {proc.returncode}:\n{out}\n{err}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("rpcd serve did not answer GET /readyz within 15 s")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``rpcd serve`` on a copy of the example tree; yields its base URL."""
    _npm_package()
    root = copy_example(tmp_path_factory.mktemp("interop") / "tree")
    port = _free_port()
    env = {
        **os.environ,
        # examples.hello must be importable; the example tree's outbound secrets are not here.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RPCD_STRICT_SECRETS": "false",
        "RPCD_LOOPBACK_TOKEN": TOKEN,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpcd", "serve", str(root), "--listen", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, base, time.monotonic() + 15)
        yield base
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def calls(daemon: str) -> dict[str, dict[str, Any]]:
    """Run the node client once; its results by call name."""
    done = subprocess.run(
        ["node", str(CLIENT_JS), daemon + "/RPC2", TOKEN],
        cwd=INTEROP,
        env={**os.environ, "TZ": "UTC"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"node client failed:\n{done.stderr}"
    return {c["name"]: c for c in json.loads(done.stdout)["calls"]}


def _ok(calls: dict[str, dict[str, Any]], name: str) -> Any:
    result = calls[name]
    assert result["ok"], f"{name} failed in the node client: {result}"
    return result["value"]


def test_hello_world_and_add(calls: dict[str, dict[str, Any]]) -> None:
    assert _ok(calls, "hello.helloWorld") == "Hello, Ada Lovelace!"
    value = _ok(calls, "hello.add")
    assert value == 5 and isinstance(value, int)


def test_echo_round_trips_every_type_unaltered(calls: dict[str, dict[str, Any]]) -> None:
    echoed = _ok(calls, "hello.echo")
    assert echoed == EVERY_TYPE
    # JSON cannot tell 1 from 1.0; the flags and the integers must still be what was sent.
    assert echoed["yes"] is True and echoed["no"] is False
    when = datetime.fromisoformat(echoed["when"]["$dateTime"])
    assert when == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_sum_returns_a_double(calls: dict[str, dict[str, Any]]) -> None:
    assert _ok(calls, "hello.sum") == pytest.approx(6.5)


def test_list_methods_shows_what_loopback_may_call(calls: dict[str, dict[str, Any]]) -> None:
    methods = _ok(calls, "system.listMethods")
    assert {"hello.helloWorld", "hello.add", "hello.echo", "hello.sum"} <= set(methods)
    assert "system.multicall" in methods
    # directory.people is granted to uni-b and college-c only; loopback acts for uni-a.
    assert not any(m.startswith("directory.people.") for m in methods)


def test_unknown_method_is_fault_32601(calls: dict[str, dict[str, Any]]) -> None:
    fault = calls["hello.noSuchMethod"]
    assert not fault["ok"]
    assert fault["faultCode"] == -32601, fault
    assert "Traceback" not in (fault["faultString"] or "")


def test_multicall_reports_each_fault_alone(calls: dict[str, dict[str, Any]]) -> None:
    first, second = _ok(calls, "system.multicall")
    assert first == [42]
    assert second["faultCode"] == -32601


def test_call_without_credentials_is_refused(calls: dict[str, dict[str, Any]]) -> None:
    anonymous = calls["anonymous hello.add"]
    assert not anonymous["ok"], anonymous
    # SPEC 3: a caller without credentials gets HTTP 401 (with WWW-Authenticate) for hello.add.
    assert anonymous["httpStatus"] == 401, anonymous
