"""``GET /metrics`` parsed with prometheus-client's own parser counts exactly what the test did."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import xmlrpc.client
from pathlib import Path
from typing import Any

from ops_helpers import AUTH, Ops, served
from prometheus_client.parser import text_string_to_metric_families
from server_helpers import MOODLE_PASSWORD, MOODLE_USER, OUTSIDER_TOKEN, make_tree
from tree_helpers import REPO

from rpcd.connections.runner import Attempt, CallError, CallOutcome
from rpcd.server.ops import metrics as m

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(ops: Ops) -> tuple[str, Samples]:
    response = await ops.client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = await response.text()
    return text, parse(text)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def exercise(ops: Ops) -> None:
    for i in range(3):
        assert await ops.xmlrpc("hello.add", i, 1) == i + 1
    for _ in range(2):
        answer = await ops.jsonrpc("hello.helloWorld", ["Ada", "Lovelace"])
        assert answer["result"] == "Hello, Ada Lovelace!"
    bad = await ops.xmlrpc("hello.add", "one", 2)
    assert isinstance(bad, xmlrpc.client.Fault) and bad.faultCode == -32602
    for _ in range(2):  # a caller-chosen name must never become a label value
        unknown = await ops.xmlrpc("evil.attackerChosenName")
        assert isinstance(unknown, xmlrpc.client.Fault) and unknown.faultCode == -32601
    calls = [{"methodName": "hello.add", "params": [1, 2]}] * 2
    assert await ops.xmlrpc("system.multicall", calls) == [[3], [3]]
    # Sessions: a good login, a failed one (HTTP 401), a logout with the session.
    login = await ops.xmlrpc("system.login", MOODLE_USER, MOODLE_PASSWORD, headers={})
    assert isinstance(login, dict) and "sessionid" in login
    failed = await ops.xmlrpc("system.login", MOODLE_USER, "wrong-password", headers={})
    assert failed == 401
    _, samples = await scrape(ops)
    assert value(samples, "rpcd_sessions_active") == 1
    session = basic(login["sessionid"], login["kp3"])
    assert await ops.xmlrpc("system.logout", headers=session) == {"GOODBYE": "XOXO"}


def test_metrics_count_what_was_done(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> tuple[str, Samples, str]:
        async with served(root) as ops:
            await exercise(ops)
            result = await ops.reloader.reload()
            assert result.ok
            (root / "services.d" / "broken.toml").write_text("version = 1\n[service\n")
            assert not (await ops.reloader.reload()).ok
            text, samples = await scrape(ops)
            return text, samples, ops.holder.current.catalog.content_hash

    text, samples, live_hash = asyncio.run(run())
    req = "rpcd_requests_total"
    assert value(samples, req, protocol="xmlrpc", method="hello.add") == 3 + 1 + 2
    assert value(samples, req, protocol="jsonrpc", method="hello.helloWorld") == 2
    assert value(samples, req, protocol="xmlrpc", method="unknown") == 2
    assert value(samples, req, protocol="xmlrpc", method="system.multicall") == 1
    assert value(samples, req, protocol="xmlrpc", method="system.login") == 2
    assert value(samples, req, protocol="xmlrpc", method="system.logout") == 1
    assert "attackerChosenName" not in text
    assert value(samples, "rpcd_faults_total", code="-32602") == 1
    assert value(samples, "rpcd_faults_total", code="-32601") == 2
    hist = "rpcd_request_duration_seconds_count"
    assert value(samples, hist, method="hello.add") == 6
    assert (
        value(samples, "rpcd_request_duration_seconds_bucket", method="hello.add", le="+Inf") == 6
    )
    assert value(samples, "rpcd_logins_total", result="ok") == 1
    assert value(samples, "rpcd_logins_total", result="failed") == 1
    assert value(samples, "rpcd_sessions_active") == 0  # logged out
    assert value(samples, "rpcd_reloads_total", result="ok") == 1
    assert value(samples, "rpcd_reloads_total", result="failed") == 1
    info = [k for k in samples if k[0] == "rpcd_catalog_info"]
    assert info == [("rpcd_catalog_info", frozenset({("content_hash", live_hash)}))]


def test_outbound_and_bounded_fault_codes() -> None:
    metrics = m.Metrics()
    outcome = CallOutcome(
        ok=True,
        result=1,
        connection="moodle_users/uni-b",
        attempts=[
            Attempt("moodle_users/uni-a", False, error=CallError("down", -32300), latency_ms=20.0),
            Attempt("moodle_users/uni-b", True, 1, latency_ms=5.0),
        ],
    )
    metrics.observe_outbound(outcome)
    for code in range(m.MAX_FAULT_CODES + 10):  # a remote can send any code
        metrics.observe_call("xmlrpc", "hello.findUser", 0.01, 10_000 + code)
    samples = parse(metrics.exposition().decode())
    out = "rpcd_outbound_calls_total"
    assert value(samples, out, connection="moodle_users/uni-a", result="error") == 1
    assert value(samples, out, connection="moodle_users/uni-b", result="ok") == 1
    dur = "rpcd_outbound_duration_seconds_sum"
    assert abs(value(samples, dur, connection="moodle_users/uni-a") - 0.020) < 1e-9
    codes = {dict(k[1])["code"] for k in samples if k[0] == "rpcd_faults_total"}
    assert len(codes) == m.MAX_FAULT_CODES + 1 and "other" in codes
    assert value(samples, "rpcd_faults_total", code="other") == 10


def test_each_app_has_its_own_registry() -> None:
    a, b = m.Metrics(), m.Metrics()
    a.reload(True)
    sa: Any = parse(a.exposition().decode())
    sb: Any = parse(b.exposition().decode())
    assert value(sa, "rpcd_reloads_total", result="ok") == 1
    assert value(sb, "rpcd_reloads_total", result="ok") == 0


# -- what /metrics may show, and to whom (issue 12, point 7) ---------------------------------

#: Published names and guesses that callers without the right to call them send below.
PROBED = ("hello.helloWorld", "hello.sum", "hello.add", "evil.guess", "nope.guess")


def test_method_labels_never_come_from_unauthorized_callers(tmp_path: Path) -> None:
    """A caller without credentials (401) or without the grant (-32601) must not learn from
    ``/metrics`` which names exist: its calls are labelled ``unauthenticated`` / ``unknown``,
    on the inline path (helloWorld, add) and the pooled one (sum) alike."""
    root = make_tree(tmp_path / "tree")
    outsider = {"Authorization": f"Bearer {OUTSIDER_TOKEN}"}

    async def run() -> tuple[str, Samples]:
        async with served(root) as ops:
            for name in ("hello.helloWorld", "hello.sum", "evil.guess"):
                assert await ops.xmlrpc(name, "a", "b", headers={}) == 401
            response = await ops.client.post(
                "/jsonrpc", json={"jsonrpc": "2.0", "id": 1, "method": "hello.add", "params": []}
            )
            assert response.status == 401
            for name in ("hello.add", "hello.sum", "nope.guess"):
                fault = await ops.xmlrpc(name, 1, 2, headers=outsider)
                assert isinstance(fault, xmlrpc.client.Fault) and fault.faultCode == -32601
            # Anonymous methods stay themselves: their names are fixed, not the catalog's.
            assert "system.login" in await ops.xmlrpc("system.listMethods", headers={})
            return await scrape(ops)

    text, samples = asyncio.run(run())
    for name in PROBED:
        assert name not in text, name
    req = "rpcd_requests_total"
    assert value(samples, req, protocol="xmlrpc", method="unauthenticated") == 3
    assert value(samples, req, protocol="jsonrpc", method="unauthenticated") == 1
    assert value(samples, req, protocol="xmlrpc", method="unknown") == 3
    assert value(samples, req, protocol="xmlrpc", method="system.listMethods") == 1
    assert value(samples, "rpcd_faults_total", code="401") == 4


METRICS_TOKEN = "metrics-token-0123456789abcdef"


def test_metrics_token_is_asked_for_when_set(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree")

    async def run() -> None:
        async with served(root, metrics_token=METRICS_TOKEN) as ops:
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-0123456789abcdef"},
                {"Authorization": f"Bearer {METRICS_TOKEN}x"},
                {"Authorization": f"Basic {METRICS_TOKEN}"},
                AUTH,  # a peer's token is not the metrics token
            ):
                response = await ops.client.get("/metrics", headers=headers)
                assert response.status == 401, headers
                assert response.headers["WWW-Authenticate"].startswith("Bearer ")
                body = await response.text()
                assert "metrics_token" in body and "rpcd_requests" not in body
            for scheme in ("Bearer", "bearer"):
                response = await ops.client.get(
                    "/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"}
                )
                assert response.status == 200
                assert "rpcd_requests" in await response.text()

    asyncio.run(run())


def test_metrics_token_file_is_checked_at_start(tmp_path: Path) -> None:
    """A token file that is missing or too short stops ``rpcd serve`` with a settings error."""
    root = make_tree(tmp_path / "tree")
    short = tmp_path / "short-token"
    short.write_text("short\n")
    for path, says in ((tmp_path / "missing", "No such file"), (short, "at least 16")):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RPCD_")}
        env.update(PYTHONPATH=str(REPO), RPCD_METRICS_TOKEN_FILE=str(path))
        done = subprocess.run(
            [sys.executable, "-m", "rpcd", "serve", str(root), "--listen", "127.0.0.1:0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        assert "invalid settings: metrics token" in done.stderr and says in done.stderr
        assert "Traceback" not in done.stderr
