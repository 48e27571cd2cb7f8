"""A newcomer's first call: the README's commands against a real daemon on the example tree.

The example tree's ``rpcd_loopback`` class points at the daemon's own ``/RPC2`` (port 8080,
what ``make run`` listens on). Here the daemon listens on a free port, and the copy's
``connections.d/loopback.toml`` is rewritten to that port; nothing else changes. The commands
run as subprocesses, from the tree's directory, exactly as printed in the README.

Then rpcd's outbound XML-RPC client against rpcd's own server: ``connections_for`` + ``call``
with i8, nil, nested structs and arrays, and a fault arriving as ``RemoteFault`` with its code.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import LOOPBACK_TOKEN, Daemon, running
from tree_helpers import REPO, copy_example

from rpcd.config import build
from rpcd.connections import Transport, connections_for
from rpcd.errors import RemoteFault
from rpcd.secrets import resolve_catalog

LOOPBACK_FILE = Path("connections.d") / "loopback.toml"
EXAMPLE_ENDPOINT = 'endpoint = "http://127.0.0.1:8080/RPC2"'

#: The README's "first call", as a newcomer types it (with ``make run`` going elsewhere).
README_COMMANDS = [
    "export RPCD_LOOPBACK_TOKEN=rpcd-dev-loopback-token",
    ".venv/bin/rpcd call rpcd_loopback hello.helloWorld Ada Lovelace --institution uni-a",
    ".venv/bin/rpcd check rpcd_loopback",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory.mktemp("loopback") / "tree")


@pytest.fixture(scope="module")
def daemon(tree: Path) -> Iterator[Daemon]:
    with running(tree, tree.parent / "rpcd.log") as d:
        # The CLI reads the tree itself; the daemon never calls its own loopback class.
        path = tree / LOOPBACK_FILE
        text = path.read_text(encoding="utf-8")
        assert text.count(EXAMPLE_ENDPOINT) == 1, "the example loopback endpoint moved"
        path.write_text(text.replace(EXAMPLE_ENDPOINT, f'endpoint = "{d.rpc}"'), encoding="utf-8")
        yield d


def newcomer_env(token: str | None = LOOPBACK_TOKEN) -> dict[str, str]:
    """A shell without rpcd settings, plus what the README's ``export`` line sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPCD_")}
    env["PYTHONPATH"] = str(REPO)
    if token is not None:
        env["RPCD_LOOPBACK_TOKEN"] = token
    return env


def rpcd_command(line: str) -> list[str]:
    """``.venv/bin/rpcd ARGS`` → this interpreter's ``rpcd`` script (the same venv)."""
    argv = shlex.split(line)
    assert argv[0] == ".venv/bin/rpcd", line
    script = Path(sys.executable).parent / "rpcd"
    head = [str(script)] if script.exists() else [sys.executable, "-m", "rpcd"]
    return head + argv[1:]


def run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        rpcd_command(line), cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_readme_export_matches_the_dev_token() -> None:
    from rpcd.devrun import DEV_TOKEN

    assert README_COMMANDS[0] == f"export RPCD_LOOPBACK_TOKEN={DEV_TOKEN}"
    assert DEV_TOKEN == LOOPBACK_TOKEN


def test_readme_prints_these_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for line in README_COMMANDS:
        assert re.search(rf"^{re.escape(line)}\s*(#.*)?$", readme, re.M), f"README lacks: {line}"


def test_first_call_prints_the_greeting(daemon: Daemon, tree: Path) -> None:
    out = run(README_COMMANDS[1], tree, newcomer_env())
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] is True
    assert data["result"] == "Hello, Ada Lovelace!"
    assert data["connection"] == "rpcd_loopback/local"
    assert [a["connection"] for a in data["attempts"]] == ["rpcd_loopback/local"]
    assert LOOPBACK_TOKEN not in out.stdout + out.stderr
    assert "peer=loopback rpc_method=hello.helloWorld" in daemon.logs()


def test_check_probes_the_loopback(daemon: Daemon, tree: Path) -> None:
    out = run(README_COMMANDS[2], tree, newcomer_env())
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["CONNECTION", "OK", "LATENCY", "ERROR"]
    assert lines[1].split()[:2] == ["rpcd_loopback/local", "ok"]
    assert lines[-1] == "1 connection(s), 0 failed"


def test_without_the_export_the_call_names_the_variable(daemon: Daemon, tree: Path) -> None:
    out = run(README_COMMANDS[1], tree, newcomer_env(token=None))
    assert out.returncode == 1
    assert "RPCD_LOOPBACK_TOKEN" in json.loads(out.stdout)["error"]["message"]


def test_a_wrong_token_is_refused(daemon: Daemon, tree: Path) -> None:
    wrong = "not-the-loopback-token-000"
    out = run(README_COMMANDS[1], tree, newcomer_env(token=wrong))
    assert out.returncode == 1
    assert wrong not in out.stdout + out.stderr
    assert json.loads(out.stdout)["error"]["errorcode"] == "http-401"


# --------------------------------------------- rpcd's XML-RPC client against rpcd's server


def call_loopback(
    tree: Path, monkeypatch: pytest.MonkeyPatch, function: str, params: Any, token: str
) -> Any:
    monkeypatch.setenv("RPCD_LOOPBACK_TOKEN", token)
    result = build(tree)
    assert result.catalog is not None
    store, _ = resolve_catalog(result.catalog)

    async def go() -> Any:
        async with Transport.open() as transport:
            (conn,) = connections_for(
                result.catalog, "rpcd_loopback", ["uni-a"], secrets=store, transport=transport
            )
            assert conn.protocol == "XML-RPC" and conn.auth_type == "token" and conn.is_global
            return await conn.call(function, params)

    return asyncio.run(go())


@pytest.mark.parametrize(
    "value",
    [
        2**40,
        -(2**63),
        2**63 - 1,
        None,
        {"a": [1, {"b": None, "c": [2**33, "x", 1.5, True]}], "empty": {}},
        [[], [[]], {"k": []}],
        "ünïcödé <&>",
    ],
    ids=repr,
)
def test_rpcd_client_echoes_through_rpcd_server(
    daemon: Daemon, tree: Path, monkeypatch: pytest.MonkeyPatch, value: Any
) -> None:
    assert call_loopback(tree, monkeypatch, "hello.echo", [value], LOOPBACK_TOKEN) == value


def test_rpcd_client_positional_and_struct_params(
    daemon: Daemon, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert call_loopback(tree, monkeypatch, "hello.add", [2**31 - 1, 1], LOOPBACK_TOKEN) == 2**31
    # A mapping is sent as one struct.
    assert call_loopback(tree, monkeypatch, "hello.echo", {"k": None}, LOOPBACK_TOKEN) == {
        "k": None
    }


def test_application_fault_is_a_remote_fault_with_its_code(
    daemon: Daemon, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RemoteFault) as info:
        call_loopback(tree, monkeypatch, "hello.sum", [["x"]], LOOPBACK_TOKEN)
    assert info.value.code == 4001
    assert info.value.message == "sum takes an array of numbers"


def test_unknown_method_fault_and_wrong_token(
    daemon: Daemon, tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RemoteFault) as info:
        call_loopback(tree, monkeypatch, "hello.noSuchMethod", [], LOOPBACK_TOKEN)
    assert info.value.code == -32601
    wrong = "not-the-loopback-token-000"
    with pytest.raises(RemoteFault) as err:  # anonymous: hello.* is 401 over HTTP
        call_loopback(tree, monkeypatch, "hello.helloWorld", ["Ada", "Lovelace"], wrong)
    assert err.value.errorcode == "http-401"
    assert wrong not in str(err.value)
