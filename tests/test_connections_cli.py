"""``rpcd call`` and ``rpcd check`` as subprocesses against a tree pointing at test peers."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import AiohttpPeer, serve
from peers.moodle import PATH, moodle_app
from peers.tree import make_tree, no_secret_in_logs, secret
from peers.xmlrpc_basic import basic_auth_server
from tree_helpers import run_cli

__all__ = ["no_secret_in_logs"]

TOKEN = secret("cli-moodle-token-e4f5a6")
PASSWORD = secret("cli-xmlrpc-pass-b7c8d9")


@pytest.fixture(scope="module")
def moodle() -> Iterator[AiohttpPeer]:
    with serve(moodle_app(TOKEN)) as peer:
        yield peer


@pytest.fixture(scope="module")
def xmlrpc_url() -> Iterator[str]:
    with basic_auth_server("svc", PASSWORD) as url:
        yield url


def rpcd(root: Path, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {"CLI_TOKEN": token, "CLI_USER": "svc", "CLI_PASSWORD": PASSWORD}
    result = run_cli(*args, "--root", str(root), env=env)
    assert (
        TOKEN not in result.stdout + result.stderr and PASSWORD not in result.stdout + result.stderr
    )
    return result


def tree(tmp_path: Path, moodle: AiohttpPeer, xmlrpc_url: str) -> Path:
    return make_tree(
        tmp_path,
        {
            "moodle.toml": f"""
        [class]
        id = "moodle_users"
        plugin = "moodle"
        name = "Moodle users"
        function_param = "wsfunction"
        probe = {{ function = "core_webservice_get_site_info" }}

        [[connection]]
        id = "uni-a"
        enabled = true
        institutions = ["uni-a"]
        auth = "token"
        endpoint = "{moodle.url}{PATH}"
        parameters = {{ moodlewsrestformat = "json" }}
        http_method = "POST"
        credentials = {{ token = {{ env = "CLI_TOKEN" }} }}

        [[connection]]
        id = "dead"
        enabled = true
        priority = 2
        institutions = ["uni-b"]
        auth = "token"
        endpoint = "http://127.0.0.1:9{PATH}"
        credentials = {{ token = {{ env = "CLI_TOKEN" }} }}
        """,
            "calc.toml": f"""
        [class]
        id = "calc_svc"
        plugin = "calc"
        name = "Calculator"
        probe = {{ function = "add", params = [1, 1] }}

        [[connection]]
        id = "stdlib"
        enabled = true
        global = true
        type = "XML-RPC"
        auth = "userpass"
        endpoint = "{xmlrpc_url}"
        credentials = {{ username = {{ env = "CLI_USER" }}, password = {{ env = "CLI_PASSWORD" }} }}
        """,
        },
    )


def test_call_prints_result_and_attempts(
    tmp_path: Path, moodle: AiohttpPeer, xmlrpc_url: str
) -> None:
    root = tree(tmp_path, moodle, xmlrpc_url)
    out = rpcd(
        root,
        "call",
        "moodle_users",
        "core_user_get_users_by_field",
        "--param",
        "field=username",
        "--param",
        "values[0]=ada",
        "--institution",
        "uni-b",
        "--institution",
        "uni-a",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["ok"] and data["connection"] == "moodle_users/uni-a"
    assert data["result"][0]["username"] == "ada"
    assert [a["connection"] for a in data["attempts"]] == ["moodle_users/uni-a"]

    out = rpcd(root, "call", "calc_svc", "add", "2", "40")
    assert out.returncode == 0 and json.loads(out.stdout)["result"] == 42


def test_call_failure_exits_1_with_every_attempt(
    tmp_path: Path, moodle: AiohttpPeer, xmlrpc_url: str
) -> None:
    root = tree(tmp_path, moodle, xmlrpc_url)
    out = rpcd(
        root,
        "call",
        "moodle_users",
        "core_webservice_get_site_info",
        "--institution",
        "uni-a",
        token=secret("cli-wrong-token-000"),
    )
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["attempts"][0]["error"]["errorcode"] == "invalidtoken"
    assert "cli-wrong-token-000" not in out.stdout + out.stderr
    out = rpcd(root, "call", "moodle_users", "f", "--institution", "college-c")
    assert (
        out.returncode == 1 and "applies to college-c" in json.loads(out.stdout)["error"]["message"]
    )
    assert rpcd(root, "call", "nope_class", "f").returncode == 2
    assert rpcd(root, "call", "calc_svc", "add", "1", "--param", "a=1").returncode == 2


def test_check_probes_every_enabled_connection(
    tmp_path: Path, moodle: AiohttpPeer, xmlrpc_url: str
) -> None:
    root = tree(tmp_path, moodle, xmlrpc_url)
    out = rpcd(root, "check")
    assert out.returncode == 1, out.stderr  # moodle_users/dead cannot connect
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["CONNECTION", "OK", "LATENCY", "ERROR"]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert rows["calc_svc/stdlib"].split()[1] == "ok"
    assert rows["moodle_users/uni-a"].split()[1] == "ok"
    assert "FAIL" in rows["moodle_users/dead"] and "cannot connect" in rows["moodle_users/dead"]
    assert lines[-1] == "3 connection(s), 1 failed"
    assert out.stderr == ""  # no progress when stderr is not a terminal

    out = rpcd(root, "check", "calc_svc", "--format", "json")
    assert out.returncode == 0
    (row,) = json.loads(out.stdout)["results"]
    assert row["connection"] == "calc_svc/stdlib" and row["ok"] is True
