"""Preflight before the daemon: ``rpcd validate --resolve-secrets`` refuses what ``rpcd serve``
refuses, ``rpcd check CLASS/ID`` probes one connection, ``check --format json`` is one
document, and a check that checks nothing fails.

Real peers on 127.0.0.1 (tests/peers): a Moodle-like REST server and an XML-RPC server with
Basic auth; the daemon is a real ``rpcd serve`` subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers import AiohttpPeer, serve
from peers.moodle import PATH, moodle_app
from peers.tree import make_tree, no_secret_in_logs, secret
from tree_helpers import REPO

__all__ = ["no_secret_in_logs"]

TOKEN = secret("preflight-moodle-token-1c2d3e")
SHORT = secret("short")  # too short to mask in logs: the daemon refuses it


@pytest.fixture(scope="module")
def moodle() -> Iterator[AiohttpPeer]:
    with serve(moodle_app(TOKEN)) as peer:
        yield peer


def rpcd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RPCD_", "PF_"))}
    result = subprocess.run(
        [sys.executable, "-m", "rpcd", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=REPO,
        timeout=60,
        check=False,
    )
    for value in (TOKEN, SHORT + "\n"):
        assert value not in result.stdout + result.stderr
    return result


def tree(tmp_path: Path, moodle: AiohttpPeer, *, switch: bool = True, probe: bool = True) -> Path:
    probe_line = 'probe = { function = "core_webservice_get_site_info" }' if probe else ""
    return make_tree(
        tmp_path,
        {
            "moodle.toml": f"""
        [class]
        id = "moodle_users"
        plugin = "moodle"
        name = "Moodle users"
        function_param = "wsfunction"
        {probe_line}

        [[connection]]
        id = "uni-a"
        enabled = true
        institutions = ["uni-a"]
        auth = "token"
        endpoint = "{moodle.url}{PATH}"
        parameters = {{ moodlewsrestformat = "json" }}
        http_method = "POST"
        credentials = {{ token = {{ env = "PF_TOKEN" }} }}

        [[connection]]
        id = "off"
        enabled = false
        institutions = ["uni-b"]
        auth = "token"
        endpoint = "{moodle.url}{PATH}"
        parameters = {{ moodlewsrestformat = "json" }}
        http_method = "POST"
        credentials = {{ token = {{ env = "PF_TOKEN" }} }}
        """,
        },
        enabled=switch,
    )


# --- rpcd check ----------------------------------------------------------------------------


def test_check_one_connection_by_class_and_id(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    env = {"PF_TOKEN": TOKEN}
    out = rpcd("check", "moodle_users/uni-a", "--root", str(root), env=env)
    assert out.returncode == 0, out.stderr
    assert [line.split()[0] for line in out.stdout.splitlines()[1:-1]] == ["moodle_users/uni-a"]
    # named on its own, a disabled connection is probed too (to test it before enabling it)
    out = rpcd("check", "moodle_users/off", "--root", str(root), "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    (row,) = json.loads(out.stdout)["results"]
    assert row["connection"] == "moodle_users/off" and row["ok"] is True
    # a bare class probes its enabled connections only
    out = rpcd("check", "moodle_users", "--root", str(root), "--format", "json", env=env)
    assert [r["connection"] for r in json.loads(out.stdout)["results"]] == ["moodle_users/uni-a"]


def test_check_unknown_connection_is_a_usage_error(tmp_path: Path, moodle: AiohttpPeer) -> None:
    out = rpcd("check", "moodle_users/nope", "--root", str(tree(tmp_path, moodle)))
    assert out.returncode == 2
    assert "class 'moodle_users' has no connection 'nope' (it has: off, uni-a)" in out.stderr


def test_check_json_is_one_document(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    out = rpcd("check", "--root", str(root), "--format", "json", env={"PF_TOKEN": "wrong" * 5})
    assert out.returncode == 1  # the peer refuses the token
    document = json.loads(out.stdout)
    assert document["format_version"] == 1
    (row,) = document["results"]
    assert row["ok"] is False and row["error"] and set(row) >= {"connection", "latency_ms"}


@pytest.mark.parametrize(
    ("switch", "probe", "why"),
    [
        (False, True, "disabled by the master switch"),
        (True, False, "no class of these has a probe"),
    ],
)
def test_check_that_checks_nothing_fails(
    tmp_path: Path, moodle: AiohttpPeer, switch: bool, probe: bool, why: str
) -> None:
    root = tree(tmp_path, moodle, switch=switch, probe=probe)
    out = rpcd("check", "--root", str(root), env={"PF_TOKEN": TOKEN})
    assert out.returncode == 1
    assert "nothing checked" in out.stderr and why in out.stderr
    if not switch:  # one connection named on its own is probed all the same
        out = rpcd("check", "moodle_users/uni-a", "--root", str(root), env={"PF_TOKEN": TOKEN})
        assert out.returncode == 0, out.stderr


def test_check_with_no_enabled_connection_fails(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    path = root / "connections.d" / "moodle.toml"
    path.write_text(path.read_text().replace("enabled = true", "enabled = false"))
    out = rpcd("check", "--root", str(root), env={"PF_TOKEN": TOKEN})
    assert out.returncode == 1
    assert "nothing checked: no enabled connection" in out.stderr


# --- rpcd validate --resolve-secrets -------------------------------------------------------


def test_resolve_secrets_catches_what_serve_refuses(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    plain = rpcd("validate", str(root))
    assert plain.returncode == 0, plain.stdout  # the gap: it validates...
    pre = rpcd("validate", "--resolve-secrets", str(root), "--format", "json")
    assert pre.returncode == 1
    found = {(d["rule"], d["severity"], d["path"]) for d in json.loads(pre.stdout)["diagnostics"]}
    assert ("secret-unresolved", "error", "moodle_users/uni-a.credentials.token") in found
    # ...and the disabled one's missing secret is only a warning, as in the daemon
    assert ("secret-unresolved", "warning", "moodle_users/off.credentials.token") in found
    # ...and the daemon refuses to start on it, for the same reason
    served = subprocess.run(
        [sys.executable, "-m", "rpcd", "serve", str(root), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("RPCD_", "PF_"))},
            "RPCD_SESSION_KEY": "k" * 48,
        },
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert served.returncode == 1
    assert "secret-unresolved" in served.stderr and "PF_TOKEN" in served.stderr
    # with the secret set, the preflight passes
    ok = rpcd("validate", "--resolve-secrets", str(root), env={"PF_TOKEN": TOKEN})
    assert ok.returncode == 0, ok.stdout
    assert "valid" in ok.stdout


def test_resolve_secrets_refuses_a_short_secret(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    out = rpcd("validate", "--resolve-secrets", str(root), env={"PF_TOKEN": SHORT})
    assert out.returncode == 1
    assert "error[secret-short]" in out.stdout
    # the development policy, as the daemon's settings say, makes it a warning
    out = rpcd(
        "validate",
        "--resolve-secrets",
        str(root),
        env={"PF_TOKEN": SHORT, "RPCD_SHORT_SECRETS": "warn"},
    )
    assert out.returncode == 0 and "warning[secret-short]" in out.stdout


def test_resolve_secrets_reads_systemd_credentials(tmp_path: Path, moodle: AiohttpPeer) -> None:
    root = tree(tmp_path, moodle)
    path = root / "connections.d" / "moodle.toml"
    path.write_text(path.read_text().replace('env = "PF_TOKEN"', 'credential = "moodle-token"'))
    creds = tmp_path / "creds"
    creds.mkdir()
    out = rpcd(
        "validate", "--resolve-secrets", str(root), env={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert out.returncode == 1 and "credential:moodle-token" in out.stdout
    (creds / "moodle-token").write_text(TOKEN)
    out = rpcd(
        "validate", "--resolve-secrets", str(root), env={"CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert out.returncode == 0, out.stdout


def test_resolve_secrets_with_invalid_settings_is_a_usage_error(
    tmp_path: Path, moodle: AiohttpPeer
) -> None:
    out = rpcd(
        "validate",
        "--resolve-secrets",
        str(tree(tmp_path, moodle)),
        env={"RPCD_SHORT_SECRETS": "sometimes"},
    )
    assert out.returncode == 2
    assert "invalid daemon settings" in out.stderr


def test_enabled_missing_is_an_info_that_keeps_the_tree_valid(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "x.toml": """
        [class]
        id = "moodle_users"
        plugin = "moodle"
        name = "Moodle users"
        function_param = "wsfunction"

        [[connection]]
        id = "uni-a"
        institutions = ["uni-a"]
        auth = "token"
        endpoint = "https://moodle.example/rest"
        credentials = { token = { env = "PF_TOKEN" } }
        """
        },
    )
    out = rpcd("validate", str(root))
    assert out.returncode == 0
    assert "info[enabled-missing]" in out.stdout and "add enabled = true" in out.stdout
    assert "valid: no problems found (1 info)" in out.stdout
    github = rpcd("validate", str(root), "--format", "github")
    assert github.stdout.startswith("::notice ") and "title=rpcd enabled-missing" in github.stdout
